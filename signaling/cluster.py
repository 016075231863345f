"""Scale-out over Redis: several signaling processes serve one set of swarms.

Design (docs/signaling.md, "Scale-out"): every process keeps its own sockets and its own peers in
its :class:`~signaling.registry.InMemorySwarmRegistry`, publishes each change to them, and keeps a
replica of the other processes' peers (:class:`~signaling.replica.RemoteMembers`) to pair with.
Redis holds:

- ``<prefix>nodes`` (set) and ``<prefix>alive:<node>`` (string, TTL ``node_ttl_s``, refreshed every
  ``heartbeat_interval_s``): which processes are alive;
- ``<prefix>members:<node>`` (hash, TTL ``node_ttl_s``): that process's peers, one JSON record
  each, read by a process that (re)joins;
- ``<prefix>bind:<peer_id hex>`` (string ``node|conn_id``, TTL ``peer_ttl_s``, refreshed on
  announce): the cluster-wide peer_id binding; a binding whose process is dead is free;
- channel ``<prefix>events``: member changes (``U`` up, ``D`` down, ``H`` hello, ``B`` bye);
- channel ``<prefix>node:<node>``: offers and answers relayed to that process's connections.

Writes never block a message: they are queued and sent in one pipeline per loop turn. The only
awaited call on the message path is :meth:`RedisCluster.claim`, once per peer_id new to a
connection. When Redis fails (an error or a command slower than ``redis_timeout_s``), the process
is *degraded*: it forgets the other processes' peers, pairs its own alone, skips claims, and
retries every ``redis_retry_s``; once back, it publishes all of its peers and bindings again and
reloads everyone else's.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from signaling.config import SignalingConfig
from signaling.errors import PeerIdTaken
from signaling.metrics import SignalingMetrics
from signaling.peerkey import is_keyed
from signaling.registry import InMemorySwarmRegistry
from signaling.replica import (
    BadRecord,
    ByteTotals,
    MemberChange,
    PeerRecord,
    RemoteMembers,
    decode_record,
    encode_record,
    node_of,
    record_field,
)
from signaling.service import RelayInfo, Send, SendKind

logger = logging.getLogger(__name__)

# Bind KEYS[1] to ARGV[1] ("node|conn") for ARGV[2] ms unless it is bound to another connection
# of a live process (ARGV[3] is the liveness key prefix, ARGV[4] this node: a stale binding of our
# own is ours to replace; ARGV[5] "1" forces it: a proven keyed peer_id). Returns {1, previous
# owner or ""} or {0, current owner}.
_CLAIM_LUA = """
local cur = redis.call('GET', KEYS[1])
if cur and cur ~= ARGV[1] and ARGV[5] ~= '1' then
  local node = string.match(cur, '^([^|]*)|')
  if node and node ~= ARGV[4] and redis.call('EXISTS', ARGV[3] .. node) == 1 then
    return {0, cur}
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {1, cur or ''}
"""
_RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""

RelaySink = Callable[[SendKind, str, RelayInfo, str, float], None]
# A queued Redis command: a pipeline method name and its arguments (data, not closures).
_Op = tuple[str, tuple[Any, ...]]


class _Rejoin(Exception):
    """Our liveness key had expired (a long pause): the others dropped us; join again."""


class RedisCluster:
    """The Redis adapter. Runs as one supervisor task; see the module docstring."""

    def __init__(
        self,
        config: SignalingConfig,
        node_id: str,
        registry: InMemorySwarmRegistry,
        metrics: SignalingMetrics,
        on_relay: RelaySink,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert config.redis_url is not None and registry.remote is not None
        self.config = config
        self.node_id = node_id
        self.registry = registry
        self.remote: RemoteMembers = registry.remote
        self.metrics = metrics
        self.on_relay = on_relay
        # called with a new member of another process whose record says it parked offers
        self.on_join: Callable[[PeerRecord], None] | None = None
        # called with a keyed peer_id bound here that another process's member now holds
        self.on_takeover: Callable[[str], None] | None = None
        self.clock = clock
        p = config.redis_prefix
        self._nodes_key = p + "nodes"
        self._alive_prefix = p + "alive:"
        self._members_prefix = p + "members:"
        self._bind_prefix = p + "bind:"
        self._events = p + "events"
        self._own_channel = p + "node:" + node_id
        self._ttl_ms = int(config.node_ttl_s * 1000)
        self._bind_ttl_ms = int(config.peer_ttl_s * 1000)
        self.state = "starting"  # "ok", "degraded", "stopped"
        self.live_nodes = 1
        self.ready = asyncio.Event()  # set whenever joined
        self._stop = asyncio.Event()
        self._ops: list[_Op] = []
        self._queueing = False
        self._wake = asyncio.Event()
        self._cmd: aioredis.Redis | None = None
        self._sub: aioredis.Redis | None = None
        self._claim_sha = ""
        self._release_sha = ""
        self._known: set[str] = set()
        self._loading: dict[str, list[bytes]] = {}
        self._to_load: asyncio.Queue[str] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._pubsub: Any = None
        self._abort = asyncio.Event()
        self._abort = asyncio.Event()

    # -- lifecycle -------------------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self, timeout_s: float = 2.0) -> None:
        """Flush queued writes, say goodbye (others drop our peers at once), disconnect."""
        self._stop.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout_s)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
                with contextlib.suppress(BaseException):
                    await self._task
        self.state = "stopped"

    @property
    def degraded(self) -> bool:
        return self.state != "ok"

    async def _run(self) -> None:
        while not self._stop.is_set():
            rejoin = False
            try:
                await self._join()
                self._set_state("ok")
                await self._serve()
            except _Rejoin:
                logger.warning("cluster: this process was taken as dead; joining again")
                rejoin = True
            except (RedisError, OSError, TimeoutError, BadRecord) as exc:
                if self.state == "ok" or self.state == "starting":
                    logger.warning("cluster: Redis unreachable (%s): degraded", type(exc).__name__)
                    self.metrics.redis_failures.inc()
                self._set_state("degraded")
            finally:
                if self._stop.is_set() and self.state == "ok":
                    await self._goodbye()
                await self._disconnect()
            if not rejoin and not self._stop.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.config.redis_retry_s)

    def _set_state(self, state: str) -> None:
        self.state = state
        self.metrics.cluster_degraded.set(0 if state == "ok" else 1)
        if state == "ok":
            self.ready.set()
            return
        self.ready.clear()
        self._queueing = False
        dropped = len(self._ops)
        if dropped:
            self.metrics.bus_dropped.labels(kind="pending").inc(dropped)
        self._ops = []
        self._known.clear()
        self._loading.clear()
        self.remote.clear()
        self.live_nodes = 1
        self.metrics.cluster_nodes.set(1)

    async def _disconnect(self) -> None:
        for client in (self._sub, self._cmd):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.aclose(), 1.0)
        self._sub = self._cmd = None

    async def _timed(self, aw: Awaitable[Any]) -> Any:
        return await asyncio.wait_for(aw, self.config.redis_timeout_s)

    async def _join(self) -> None:
        url = self.config.redis_url
        assert url is not None
        timeout_s = self.config.redis_timeout_s
        self._cmd = aioredis.Redis.from_url(
            url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s
        )
        cmd = self._cmd
        await self._timed(cmd.ping())
        self._claim_sha = await self._timed(cmd.script_load(_CLAIM_LUA))
        self._release_sha = await self._timed(cmd.script_load(_RELEASE_LUA))
        self._sub = aioredis.Redis.from_url(url, socket_connect_timeout=timeout_s)
        pubsub = self._sub.pubsub(ignore_subscribe_messages=True)
        await self._timed(pubsub.subscribe(self._events, self._own_channel))
        self._pubsub = pubsub
        # From here on, changes are queued after this snapshot of our own members.
        records = self.registry.local_records()
        bindings = self.registry.local_bindings()
        self._queueing = True
        members_key = self._members_prefix + self.node_id
        pipe = cmd.pipeline(transaction=False)
        pipe.delete(members_key)
        for n in range(0, len(records), 1000):
            chunk = records[n : n + 1000]
            pipe.hset(
                members_key,
                mapping={record_field(r.info_hash, r.peer_id): encode_record(r) for r in chunk},
            )
        pipe.pexpire(members_key, self._ttl_ms)
        pipe.set(self._alive_prefix + self.node_id, b"1", px=self._ttl_ms)
        pipe.sadd(self._nodes_key, self.node_id)
        for peer_id, conn_id in bindings:
            pipe.evalsha(*self._claim_args(peer_id, conn_id))
        results = await self._timed(pipe.execute(raise_on_error=False))
        claims = results[len(results) - len(bindings) :]
        conflicts = sum(1 for r in claims if isinstance(r, list) and r and not r[0])
        if conflicts:
            self.metrics.bind_conflicts.inc(conflicts)
            logger.warning("cluster: %d peer_ids are bound on another process too", conflicts)
        await self._timed(cmd.publish(self._events, b"H" + self.node_id.encode()))
        others = {m.decode() for m in await self._timed(cmd.smembers(self._nodes_key))}
        others.discard(self.node_id)
        for node in sorted(others):
            self._loading[node] = []
            self._to_load.put_nowait(node)
        logger.info(
            "cluster: joined as %s (%d local peers, %d other processes listed)",
            self.node_id,
            len(records),
            len(others),
        )

    async def _serve(self) -> None:
        loop = asyncio.get_running_loop()
        self._abort = asyncio.Event()
        tasks = [
            loop.create_task(self._reader()),
            loop.create_task(self._writer()),
            loop.create_task(self._heartbeat()),
            loop.create_task(self._loader()),
        ]
        stopper = loop.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait([*tasks, stopper], return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()  # raises what ended it
        finally:
            # redis-py does not take cancellation well mid-command (a cancelled command can
            # hold the loop for its whole timeout): every task polls ``_abort`` and leaves.
            self._abort.set()
            self._wake.set()
            self._to_load.put_nowait("")
            stopper.cancel()
            await asyncio.gather(*tasks, stopper, return_exceptions=True)
        if self._stop.is_set():
            await self._flush()

    async def _goodbye(self) -> None:
        cmd = self._cmd
        if cmd is None:
            return
        with contextlib.suppress(RedisError, OSError, TimeoutError):
            pipe = cmd.pipeline(transaction=False)
            pipe.delete(self._alive_prefix + self.node_id, self._members_prefix + self.node_id)
            pipe.srem(self._nodes_key, self.node_id)
            pipe.publish(self._events, b"B" + self.node_id.encode())
            await self._timed(pipe.execute())
        logger.info("cluster: left")

    # -- tasks -----------------------------------------------------------------------------------

    async def _flush(self) -> None:
        ops, self._ops = self._ops, []
        if not ops or self._cmd is None:
            return
        pipe = self._cmd.pipeline(transaction=False)
        for name, args in ops:
            getattr(pipe, name)(*args)
        await self._timed(pipe.execute(raise_on_error=False))

    async def _writer(self) -> None:
        while not self._abort.is_set():
            await self._wake.wait()
            self._wake.clear()
            if not self._abort.is_set():
                await self._flush()

    async def _reader(self) -> None:
        own = self._own_channel.encode()
        while not self._abort.is_set():
            message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=0.25)
            if message is None or message.get("type") != "message":
                continue
            data: bytes = message["data"]
            try:
                if message["channel"] == own:
                    self._on_relay(data)
                else:
                    self._on_event(data)
            except (BadRecord, ValueError, KeyError, IndexError) as exc:
                logger.warning("cluster: ignored a bad bus message (%s)", type(exc).__name__)

    async def _loader(self) -> None:
        assert self._cmd is not None
        while not self._abort.is_set():
            node = await self._to_load.get()
            if node not in self._loading or self._abort.is_set():
                continue
            raw = await self._timed(self._cmd.hgetall(self._members_prefix + node))
            alive = await self._timed(self._cmd.exists(self._alive_prefix + node))
            queued = self._loading.pop(node, [])
            if not alive:
                self.remote.drop_node(node)
                continue
            records = []
            for value in raw.values():
                try:
                    records.append(decode_record(value))
                except BadRecord:
                    logger.warning("cluster: ignored a bad member record of %s", node)
            fresh = [r for r in records if r.parked and not self.remote.has(r.info_hash, r.peer_id)]
            self.remote.replace_node(self.clock(), node, records)
            self._known.add(node)
            for rec in fresh:
                self._joined(rec)
            for data in queued:
                self._apply_event(data)
            logger.info("cluster: loaded %d peers of %s", len(records), node)

    async def _heartbeat(self) -> None:
        assert self._cmd is not None
        cmd = self._cmd
        alive_key = self._alive_prefix + self.node_id
        while not self._abort.is_set():
            pipe = cmd.pipeline(transaction=False)
            pipe.exists(alive_key)
            pipe.set(alive_key, b"1", px=self._ttl_ms)
            pipe.sadd(self._nodes_key, self.node_id)
            pipe.pexpire(self._members_prefix + self.node_id, self._ttl_ms)
            pipe.smembers(self._nodes_key)
            was_alive, _, _, _, listed = await self._timed(pipe.execute())
            if not was_alive:
                raise _Rejoin()
            others = sorted({m.decode() for m in listed} - {self.node_id})
            alive: list[int] = []
            if others:
                pipe = cmd.pipeline(transaction=False)
                for node in others:
                    pipe.exists(self._alive_prefix + node)
                alive = await self._timed(pipe.execute())
            live = {node for node, ok in zip(others, alive, strict=True) if ok}
            dead = [node for node in others if node not in live]
            if dead:
                pipe = cmd.pipeline(transaction=False)
                for node in dead:
                    pipe.srem(self._nodes_key, node)
                    pipe.delete(self._members_prefix + node)
                await self._timed(pipe.execute())
            for node in (self._known | set(self._loading)) - live:
                self._forget_node(node, "stopped its heartbeat")
            for node in live - self._known - set(self._loading):
                self._loading[node] = []
                self._to_load.put_nowait(node)
            self.live_nodes = len(live) + 1
            self.metrics.cluster_nodes.set(self.live_nodes)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._abort.wait(), self.config.heartbeat_interval_s)

    def _forget_node(self, node: str, why: str) -> None:
        self._known.discard(node)
        self._loading.pop(node, None)
        dropped = self.remote.drop_node(node)
        logger.info("cluster: process %s %s; dropped its %d peers", node, why, dropped)

    # -- inbound ---------------------------------------------------------------------------------

    def _on_event(self, data: bytes) -> None:
        kind = data[:1]
        if kind in (b"U", b"D"):
            node = data[1 : data.index(b"\n")].decode()
            if node == self.node_id:
                return
            self.metrics.bus_messages.labels(direction="in", kind="member").inc()
            if node in self._loading:
                self._loading[node].append(data)
            elif node in self._known:
                self._apply_event(data)
            else:  # a process we have not loaded yet: load it whole
                self._loading[node] = [data]
                self._to_load.put_nowait(node)
        elif kind == b"H":
            node = data[1:].decode()
            if node != self.node_id:
                self._loading[node] = []
                self._to_load.put_nowait(node)
        elif kind == b"B":
            node = data[1:].decode()
            if node != self.node_id:
                self._forget_node(node, "left")

    def _apply_event(self, data: bytes) -> None:
        head, _, body = data.partition(b"\n")
        node = head[1:].decode()
        if data[:1] == b"U":
            rec = decode_record(body)
            if (
                is_keyed(rec.peer_id)
                and self.registry.owner_of(rec.peer_id) is not None
                and self.on_takeover is not None
            ):
                # only the key's holder binds a keyed peer_id: it moved to that process
                self.on_takeover(rec.peer_id)
            new = not self.remote.has(rec.info_hash, rec.peer_id)
            self.remote.upsert(self.clock(), node, rec)
            if new and rec.parked:
                self._joined(rec)
        else:
            info_hash, peer_id, downloaded, retired = json.loads(body)
            self.remote.remove(node, info_hash, peer_id, int(downloaded), ByteTotals(*retired))

    def _joined(self, rec: PeerRecord) -> None:
        if self.on_join is not None and self.remote.has(rec.info_hash, rec.peer_id):
            self.on_join(rec)

    def _on_relay(self, data: bytes) -> None:
        head, _, body = data.partition(b"\n")
        kind, conn_id, info_hash, from_peer, to_peer, offer_id = json.loads(head)
        if kind not in ("offer", "answer"):
            raise ValueError("unknown relay kind")
        self.metrics.bus_messages.labels(direction="in", kind=kind).inc()
        relay = RelayInfo(info_hash, from_peer, to_peer, offer_id)
        self.on_relay(kind, conn_id, relay, body.decode(), self.clock())

    # -- outbound (ClusterHooks) -----------------------------------------------------------------

    def is_local(self, conn_id: str) -> bool:
        return node_of(conn_id) == self.node_id

    def _enqueue(self, kind: str, *ops: _Op) -> None:
        if not self._queueing or len(self._ops) + len(ops) > self.config.bus_queue_max:
            self.metrics.bus_dropped.labels(kind=kind).inc()
            return
        self._ops.extend(ops)
        self._wake.set()

    def _bind_key(self, peer_id: str) -> str:
        return self._bind_prefix + peer_id.encode("latin-1").hex()

    def _claim_args(self, peer_id: str, conn_id: str, force: bool = False) -> tuple[Any, ...]:
        owner = f"{self.node_id}|{conn_id}"
        return (self._claim_sha, 1, self._bind_key(peer_id), owner, self._bind_ttl_ms,
                self._alive_prefix, self.node_id, "1" if force else "0")  # fmt: skip

    async def claim(self, conn_id: str, peer_id: str, *, force: bool = False) -> None:
        """Bind ``peer_id`` to ``conn_id`` cluster-wide; raise :class:`PeerIdTaken` when another
        live process holds it. Degraded: allowed (this process checks its own bindings)."""
        if self.state != "ok" or self._cmd is None:
            return
        try:
            ok, _owner = await self._timed(
                self._cmd.evalsha(*self._claim_args(peer_id, conn_id, force))
            )
        except (RedisError, OSError, TimeoutError) as exc:
            logger.warning("cluster: claim failed (%s); allowed locally", type(exc).__name__)
            return
        if not ok:
            raise PeerIdTaken("peer_id is bound to a connection on another signaling process")
        # The binding is ours now: any record of this peer_id from another process is stale
        # (its process died, or its "left" event is still on the way).
        if self.remote.owner_conn(peer_id) is not None:
            self.remote.forget_peer_id(peer_id)

    def release(self, conn_id: str, peer_id: str) -> None:
        key = self._bind_key(peer_id)
        owner = f"{self.node_id}|{conn_id}"
        self._enqueue("unbind", ("evalsha", (self._release_sha, 1, key, owner)))

    def publish(self, changes: list[MemberChange]) -> None:
        members_key = self._members_prefix + self.node_id
        tag = self.node_id.encode()
        for change in changes:
            if change.kind == "unbind":
                self.release(change.conn_id, change.peer_id)
                continue
            fld = record_field(change.info_hash, change.peer_id)
            if change.record is not None:
                value = encode_record(change.record)
                self._enqueue(
                    "member",
                    ("hset", (members_key, fld, value)),
                    # refreshes the binding's TTL (and re-binds it after an outage)
                    ("evalsha", self._claim_args(change.peer_id, change.conn_id)),
                    ("publish", (self._events, b"U" + tag + b"\n" + value.encode())),
                )
            else:
                r = change.swarm_retired
                body = json.dumps(
                    [change.info_hash, change.peer_id, change.swarm_downloaded,
                     [r.p2p_down, r.p2p_up, r.cdn]]
                )  # fmt: skip
                self._enqueue(
                    "member",
                    ("hdel", (members_key, fld)),
                    ("publish", (self._events, b"D" + tag + b"\n" + body.encode())),
                )
            self.metrics.bus_messages.labels(direction="out", kind="member").inc()

    def forward(self, item: Send) -> None:
        """A relay for a connection of another process: onto that process's channel."""
        relay = item.relay
        if relay is None or item.kind == "reply":
            return
        head = json.dumps(
            [item.kind, item.conn_id, relay.info_hash, relay.from_peer, relay.to_peer,
             relay.offer_id]
        )  # fmt: skip
        payload = head.encode() + b"\n" + item.text.encode()
        channel = self.config.redis_prefix + "node:" + node_of(item.conn_id)
        self._enqueue(item.kind, ("publish", (channel, payload)))
        self.metrics.bus_messages.labels(direction="out", kind=item.kind).inc()
