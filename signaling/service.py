"""Apply parsed messages to the registry and say what to send to which connection.

No sockets and no clock reads: the adapter passes ``now_s`` and gets back :class:`Send` items,
which it routes. All rejections are counted here (except those before a connection is accepted,
which the adapter counts).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

from signaling import closecodes, messages
from signaling.addresses import AddressLimits, AddressTable
from signaling.config import SignalingConfig
from signaling.errors import (
    FatalViolation,
    IceUnavailable,
    RuleViolation,
    SignalingError,
    SwarmNotAllowed,
    TooManySwarms,
)
from signaling.fetchers import FetcherBoard, FetcherConfig, members_of, takes_part
from signaling.ice import ice_servers_reply_body
from signaling.messages import (
    Announce,
    Answer,
    IceRequest,
    Message,
    MessageLimits,
    Report,
    Scrape,
    TokenRefresh,
)
from signaling.metrics import SignalingMetrics
from signaling.parking import ParkedOffers
from signaling.ratelimit import TokenBucket
from signaling.registry import ByteTotals, RegistryLimits, SwarmRegistry
from signaling.replica import MemberChange, PeerRecord
from signaling.reports import Reports
from signaling.tokens import JoinGrant, verify_token

logger = logging.getLogger(__name__)

SendKind = Literal["reply", "offer", "answer"]


@dataclass(frozen=True)
class RelayInfo:
    """Who a relayed offer or answer is from and to (what another process needs to record it).

    For an offer ``from_peer`` is the offerer and ``to_peer`` the target; for an answer
    ``from_peer`` is the answerer and ``to_peer`` the offerer it goes back to."""

    info_hash: str
    from_peer: str
    to_peer: str
    offer_id: str


@dataclass(frozen=True)
class Send:
    conn_id: str
    text: str
    kind: SendKind = "reply"
    relay: RelayInfo | None = None


@dataclass
class ConnContext:
    conn_id: str
    bucket: TokenBucket
    grant: JoinGrant | None = None
    failures: int = field(default=0)
    closed: bool = False
    #: Last byte counters each (info_hash, peer_id) of this connection reported, so /metrics
    #: counts only what is new (bounded: see ``_count_bytes``).
    reported: dict[tuple[str, str], ByteTotals] = field(default_factory=dict)
    #: The same for CDN fetches by phase (join ramp, steady), for peers that send them.
    reported_fetches: dict[tuple[str, str], tuple[int, int]] = field(default_factory=dict)
    address: str = ""  # the per-address limits' key ("" when none apply)
    #: The client's address key for reports (set even where the limits exempt it).
    reporter_address: str = ""
    #: monotonic time at which the join token expires (None: no token)
    grant_deadline_s: float | None = None


class ClusterHooks(Protocol):
    """What the service needs from a scale-out backend (:class:`signaling.cluster.RedisCluster`).

    ``claim`` binds a peer_id to a connection cluster-wide (raises ``PeerIdTaken``); it is the
    only awaited call, made once per new peer_id on a connection. The rest never block."""

    async def claim(self, conn_id: str, peer_id: str, *, force: bool = False) -> None: ...

    def release(self, conn_id: str, peer_id: str) -> None: ...

    def publish(self, changes: list[MemberChange]) -> None: ...

    def is_local(self, conn_id: str) -> bool: ...


def limits_from_config(config: SignalingConfig) -> tuple[MessageLimits, RegistryLimits]:
    return (
        MessageLimits(
            max_message_bytes=config.max_message_bytes,
            max_sdp_bytes=config.max_sdp_bytes,
            max_offers_per_announce=config.max_offers_per_announce,
            max_scrape_hashes=config.max_scrape_hashes,
        ),
        RegistryLimits(
            peer_ttl_s=config.peer_ttl_s,
            offer_ttl_s=config.offer_ttl_s,
            max_swarms_per_connection=config.max_swarms_per_connection,
            max_peers_per_swarm=config.max_peers_per_swarm,
        ),
    )


class SignalingService:
    def __init__(
        self,
        config: SignalingConfig,
        registry: SwarmRegistry,
        metrics: SignalingMetrics,
        wall_clock: Callable[[], float] | None = None,
    ) -> None:
        self.config = config
        # Unix time, only for the expiry of TURN credentials (injected: tests fix it).
        self.wall_clock = wall_clock
        self.registry = registry
        self.metrics = metrics
        self.message_limits, _ = limits_from_config(config)
        self.cluster: ClusterHooks | None = None
        self.parked = ParkedOffers(config.join_park_s, config.max_parked_bytes)
        self.reports = Reports()
        self.fetchers = FetcherBoard(
            FetcherConfig(
                count=config.fetcher_count,
                min_uplink_bytes_per_s=config.fetcher_min_uplink_bytes_per_s,
                slot_s=config.fetcher_slot_s,
                seed=config.fetcher_seed,
                max_regions_per_swarm=config.fetcher_max_regions,
                refresh_s=config.fetcher_refresh_s,
                valid_s=config.fetcher_valid_s,
            )
        )
        self.addresses = AddressTable(
            AddressLimits(
                max_connections=config.max_connections_per_address,
                max_swarms=config.max_swarms_per_address,
                rate_per_s=config.rate_per_address_s,
                rate_burst=config.rate_burst_per_address,
            )
        )
        metrics.bind_registry_gauges(registry.local_peer_count, registry.local_swarm_count)

    def attach_cluster(self, cluster: ClusterHooks) -> None:
        self.cluster = cluster

    def new_connection(
        self,
        conn_id: str,
        now_s: float,
        grant: JoinGrant | None,
        address: str = "",
        reporter_address: str = "",
    ) -> ConnContext:
        """``address`` must have been admitted with ``self.addresses.open`` (or be "");
        ``reporter_address`` is the client's address key even where limits exempt it."""
        bucket = TokenBucket(self.config.rate_per_s, self.config.rate_burst, now_s)
        ctx = ConnContext(conn_id, bucket, grant, address=address)
        ctx.reporter_address = reporter_address or address
        if grant is not None:
            ctx.grant_deadline_s = self._deadline_s(grant, now_s)
        return ctx

    def _deadline_s(self, grant: JoinGrant, now_s: float) -> float:
        """The grant's wall-clock expiry on the monotonic clock ``now_s`` comes from."""
        wall_s = self.wall_clock() if self.wall_clock is not None else time.time()
        return now_s + (grant.expires_at_unix_s - wall_s)

    def token_expired(self, ctx: ConnContext, now_s: float) -> bool:
        return ctx.grant_deadline_s is not None and now_s >= ctx.grant_deadline_s

    def _refresh_token(self, ctx: ConnContext, msg: TokenRefresh, now_s: float) -> list[Send]:
        """A new join token on the same socket: it replaces the grant (its swarms and expiry).
        A bad one is answered (token_invalid, token_expired) and the old grant stays."""
        secret = self.config.token_secret
        if secret is None:
            raise RuleViolation("join tokens are not enabled here", reason="tokens_disabled")
        wall_s = self.wall_clock() if self.wall_clock is not None else time.time()
        grant = verify_token(secret, msg.token, wall_s)
        ctx.grant = grant
        ctx.grant_deadline_s = self._deadline_s(grant, now_s)
        return [Send(ctx.conn_id, messages.token_reply(grant.expires_at_unix_s))]

    def _admit(self, ctx: ConnContext, frame: str | bytes, now_s: float) -> Message:
        if self.token_expired(ctx, now_s):
            raise FatalViolation(
                "join token expired", reason="token_expired", close_code=closecodes.TOKEN_EXPIRED
            )
        if not ctx.bucket.try_take(now_s):
            raise FatalViolation(
                "too many messages", reason="rate_limited", close_code=closecodes.RATE_LIMITED
            )
        if ctx.address and not self.addresses.take(ctx.address, now_s):
            raise FatalViolation(
                "too many messages from this address",
                reason="address_rate_limited",
                close_code=closecodes.RATE_LIMITED,
            )
        return messages.parse_message(frame, self.message_limits)

    def _fail(self, ctx: ConnContext, exc: SignalingError, frame: str | bytes) -> list[Send]:
        """A recoverable violation's failure reply. (A fatal one is re-raised by the caller's
        bare ``raise``: re-raised here, from a parameter, this frame would sit in the error's
        traceback while holding the error, a cycle that kept the whole connection alive until
        a full collection.)"""
        self.metrics.reject(exc.reason)
        ctx.failures += 1
        logger.debug("conn %s: rejected (%s): %s", ctx.conn_id, exc.reason, exc.detail)
        reply = messages.failure_reply(exc.detail, exc.reason, messages.reply_context(frame))
        return [Send(ctx.conn_id, reply)]

    def on_frame(self, ctx: ConnContext, frame: str | bytes, now_s: float) -> list[Send]:
        """Handle one frame. Raises :class:`FatalViolation` when the connection must close."""
        try:
            return self._dispatch(ctx, self._admit(ctx, frame, now_s), now_s)
        except SignalingError as exc:
            if exc.fatal:
                self.metrics.reject(exc.reason)
                raise
            return self._fail(ctx, exc, frame)
        finally:
            self._publish()

    async def on_frame_async(
        self, ctx: ConnContext, frame: str | bytes, now_s: float
    ) -> list[Send]:
        """:meth:`on_frame`, plus (scale-out) a cluster-wide claim of a peer_id new to this
        connection before its first announce is applied."""
        cluster = self.cluster
        if cluster is None:
            return self.on_frame(ctx, frame, now_s)
        claimed: str | None = None
        try:
            msg = self._admit(ctx, frame, now_s)
            if (
                isinstance(msg, Announce)
                and msg.event != "stopped"
                and self.registry.owner_of(msg.peer_id) is None
            ):
                self._check_grant(ctx, msg.info_hash)
                # a proven keyed peer_id takes its binding over from its own older socket
                await cluster.claim(ctx.conn_id, msg.peer_id, force=msg.peer_key is not None)
                claimed = msg.peer_id
                if ctx.closed:
                    return []
            return self._dispatch(ctx, msg, now_s)
        except SignalingError as exc:
            if exc.fatal:
                self.metrics.reject(exc.reason)
                raise
            return self._fail(ctx, exc, frame)
        finally:
            if claimed is not None and self.registry.owner_of(claimed) != ctx.conn_id:
                cluster.release(ctx.conn_id, claimed)
            self._publish()

    def _publish(self) -> None:
        if self.cluster is not None:
            changes = self.registry.drain_changes()
            if changes:
                if len(self.parked):
                    changes = [self._mark_parked(c) for c in changes]
                self.cluster.publish(changes)

    def _mark_parked(self, change: MemberChange) -> MemberChange:
        rec = change.record
        if rec is None or not self.parked.is_parked(rec.info_hash, rec.peer_id):
            return change
        return dataclasses.replace(change, record=dataclasses.replace(rec, parked=True))

    def on_remote_join(self, rec: PeerRecord, now_s: float) -> list[Send]:
        """A member new to another process that parked its offers: hand it one parked offer of
        each of our parked peers in that swarm with a smaller peer_id (see :mod:`parking`)."""
        out: list[Send] = []
        for po in self.parked.take_for(now_s, rec.info_hash, rec.peer_id):
            if self.registry.owner_of(po.peer_id) != po.conn_id:
                continue
            relay = RelayInfo(rec.info_hash, po.peer_id, rec.peer_id, po.offer.offer_id)
            text = messages.offer_relay(rec.info_hash, po.peer_id, po.offer)
            out.append(Send(rec.conn_id, text, "offer", relay))
            self.metrics.relays.labels(kind="offer").inc()
            self.metrics.parked_offers.labels(event="relayed").inc()
        return out

    def on_close(self, ctx: ConnContext) -> None:
        ctx.closed = True
        self.fetchers.drop_connection(ctx.conn_id)
        self.parked.drop_connection(ctx.conn_id)
        self.registry.drop_connection(ctx.conn_id)
        if ctx.address:
            self.addresses.close(ctx.address, ctx.conn_id)
        self._publish()

    def sweep(self, now_s: float) -> None:
        self.addresses.prune(now_s)
        self.parked.expire(now_s)
        result = self.registry.expire(now_s)
        self._publish()
        if result.peers:
            self.metrics.expired_peers.inc(len(result.peers))
            logger.debug("expired %d peers, %d offers", len(result.peers), result.offers)

    # -- fetcher assignment (docs/signaling.md, "Fetcher assignment") ------------------------

    def _fetcher_lists(
        self, info_hash: str, now_s: float
    ) -> tuple[int, dict[str, tuple[str, ...]]]:
        wall_s = self.wall_clock() if self.wall_clock is not None else time.time()
        before = self.fetchers.picks
        exclude = frozenset(self.reports.blocked(now_s, info_hash))
        result = self.fetchers.lists(
            info_hash, now_s, wall_s, members_of(self.registry.member_hints(info_hash)), exclude
        )
        if self.fetchers.picks > before:
            self.metrics.fetcher_picks.inc()
        return result

    def _fetcher_reply(self, ctx: ConnContext, msg: Announce, now_s: float) -> list[Send]:
        """Our client's announce: remember it as one to tell, and tell it the current list."""
        board = self.fetchers
        if msg.event == "stopped":
            board.unsubscribe(msg.info_hash, ctx.conn_id, msg.peer_id)
            return []
        if not board.enabled or not takes_part(msg.hints):
            return []
        board.subscribe(msg.info_hash, ctx.conn_id, msg.peer_id, msg.hints.region)
        slot, lists = self._fetcher_lists(msg.info_hash, now_s)
        group, fetchers = board.list_for(lists, msg.hints.region)
        if not fetchers:
            return []
        self.metrics.fetcher_messages.labels(kind="reply").inc()
        text = messages.fetchers_message(msg.info_hash, group, slot, fetchers, board.config.valid_s)
        return [Send(ctx.conn_id, text)]

    def fetcher_pushes(self, now_s: float) -> list[Send]:
        """From the sweeper: pick every swarm with members to tell again (at most every
        ``fetcher_refresh_s``) and tell them where their list changed. Members that left are
        forgotten here."""
        board = self.fetchers
        out: list[Send] = []
        if not board.enabled:
            return out
        for info_hash in board.swarm_ids():
            for conn_id, peer_id in board.subscribers(info_hash):
                if not self.registry.is_member(conn_id, info_hash, peer_id):
                    board.unsubscribe(info_hash, conn_id, peer_id)
            if not board.subscribers(info_hash):
                continue
            slot, _ = self._fetcher_lists(info_hash, now_s)
            for group, fetchers, subs in board.changed(info_hash):
                text = messages.fetchers_message(
                    info_hash, group, slot, fetchers, board.config.valid_s
                )
                out.extend(Send(conn_id, text) for conn_id, _ in subs)
                self.metrics.fetcher_messages.labels(kind="push").inc(len(subs))
        return out

    def on_remote_relay(
        self, kind: SendKind, conn_id: str, relay: RelayInfo, text: str, now_s: float
    ) -> list[Send]:
        """An offer or answer relayed by another process to a connection of ours. The target
        must still hold the peer_id it was chosen as; an offer is recorded here, where its
        answer will arrive, so answers are checked without asking Redis."""
        if self.registry.owner_of(relay.to_peer) != conn_id:
            logger.debug("drop a relayed %s: the target has gone", kind)
            return []
        if kind == "offer":
            self.registry.record_offer(
                now_s, relay.info_hash, relay.offer_id, relay.from_peer, relay.to_peer
            )
        else:
            self.registry.note_paired(relay.info_hash, relay.from_peer, relay.to_peer)
        return [Send(conn_id, text, kind)]

    def _check_grant(self, ctx: ConnContext, info_hash: str) -> None:
        if ctx.grant is not None and not ctx.grant.allows(messages.id_hex(info_hash)):
            raise SwarmNotAllowed("the join token does not cover this info_hash")

    def _dispatch(self, ctx: ConnContext, msg: Message, now_s: float) -> list[Send]:
        if isinstance(msg, TokenRefresh):
            self.metrics.messages.labels(action="token").inc()
            return self._refresh_token(ctx, msg, now_s)
        if isinstance(msg, IceRequest):
            self.metrics.messages.labels(action="ice_servers").inc()
            return [Send(ctx.conn_id, self._ice_reply(ctx))]
        if isinstance(msg, Announce):
            self.metrics.messages.labels(action="announce").inc()
            return self._announce(ctx, msg, now_s)
        if isinstance(msg, Answer):
            self.metrics.messages.labels(action="answer").inc()
            self._check_grant(ctx, msg.info_hash)
            target = self.registry.claim_answer(
                now_s, ctx.conn_id, msg.info_hash, msg.peer_id, msg.to_peer_id, msg.offer_id
            )
            self.metrics.relays.labels(kind="answer").inc()
            relay = RelayInfo(msg.info_hash, msg.peer_id, msg.to_peer_id, msg.offer_id)
            return [Send(target.conn_id, messages.answer_relay(msg), "answer", relay)]
        if isinstance(msg, Report):
            self.metrics.messages.labels(action="report").inc()
            self._report(ctx, msg, now_s)
            return []
        if isinstance(msg, Scrape):
            self.metrics.messages.labels(action="scrape").inc()
            hashes = msg.info_hashes or tuple(
                self.registry.swarm_ids(self.config.max_scrape_hashes)
            )
            counts = self.registry.scrape(hashes)
            files = {h: (c.complete, c.incomplete, c.downloaded) for h, c in counts.items()}
            return [Send(ctx.conn_id, messages.scrape_reply(files))]
        self.metrics.messages.labels(action="stats").inc()
        self._check_grant(ctx, msg.info_hash)
        totals = ByteTotals(msg.bytes_p2p_down, msg.bytes_p2p_up, msg.bytes_cdn)
        self.registry.record_stats(now_s, ctx.conn_id, msg.info_hash, msg.peer_id, totals)
        self._count_bytes(ctx, (msg.info_hash, msg.peer_id), totals)
        if msg.cdn_fetches_join_ramp is not None or msg.cdn_fetches_steady is not None:
            fetches = (msg.cdn_fetches_join_ramp or 0, msg.cdn_fetches_steady or 0)
            self._count_fetches(ctx, (msg.info_hash, msg.peer_id), fetches)
        return []

    def _report(self, ctx: ConnContext, msg: Report, now_s: float) -> None:
        """A member reports another member (docs/signaling.md, "Reports"); reporters are
        independent when their addresses differ, so none counts without an address."""
        self._check_grant(ctx, msg.info_hash)
        if not self.registry.is_member(ctx.conn_id, msg.info_hash, msg.peer_id):
            raise RuleViolation("report from a peer_id not in that swarm", reason="not_a_member")
        target = self.registry.owner_of(msg.reported_peer_id)
        if target is None:
            return  # gone already: nothing to stop pairing
        if ctx.reporter_address and self.reports.report(
            now_s, msg.info_hash, ctx.reporter_address, msg.reported_peer_id, target
        ):
            logger.info("peer reported by enough independent peers: not paired for a while")

    def _count_bytes(self, ctx: ConnContext, key: tuple[str, str], totals: ByteTotals) -> None:
        """Add what a peer reports beyond its last report to the process-wide byte counters
        (a counter that went down restarted from 0: all of it is new). At most
        2 x max_swarms_per_connection entries per connection, the oldest dropped."""
        old = ctx.reported.pop(key, ByteTotals())
        ctx.reported[key] = totals
        if len(ctx.reported) > 2 * self.config.max_swarms_per_connection:
            del ctx.reported[next(iter(ctx.reported))]
        self.metrics.count_peer_bytes(
            p2p_down=totals.p2p_down - old.p2p_down
            if totals.p2p_down >= old.p2p_down
            else totals.p2p_down,
            p2p_up=totals.p2p_up - old.p2p_up if totals.p2p_up >= old.p2p_up else totals.p2p_up,
            cdn=totals.cdn - old.cdn if totals.cdn >= old.cdn else totals.cdn,
        )

    def _count_fetches(
        self, ctx: ConnContext, key: tuple[str, str], fetches: tuple[int, int]
    ) -> None:
        """As ``_count_bytes``, for the CDN fetches by phase a peer reports (same bound)."""
        old = ctx.reported_fetches.pop(key, (0, 0))
        ctx.reported_fetches[key] = fetches
        if len(ctx.reported_fetches) > 2 * self.config.max_swarms_per_connection:
            del ctx.reported_fetches[next(iter(ctx.reported_fetches))]
        new = [now - was if now >= was else now for now, was in zip(fetches, old, strict=True)]
        self.metrics.count_peer_cdn_fetches(join_ramp=new[0], steady=new[1])

    def release_peer_id(self, peer_id: str, where: str) -> None:
        """A keyed peer_id was proven on another connection: its old socket loses it."""
        old = self.registry.release_peer_id(peer_id)
        if old is None:
            return
        self.parked.drop_connection(old)
        self.metrics.peer_id_takeovers.labels(where=where).inc()
        logger.info("conn %s: keyed peer_id taken over by a newer connection", old)
        self._publish()

    def _ice_reply(self, ctx: ConnContext) -> str:
        cfg = self.config
        if not cfg.ice_urls or self.wall_clock is None:
            raise IceUnavailable("this server hands out no ICE servers")
        body = ice_servers_reply_body(
            cfg.ice_urls, cfg.turn_secret, cfg.turn_credential_ttl_s, self.wall_clock(), "p2p"
        )
        return messages.ice_servers_reply(body)

    def _check_address_swarms(self, ctx: ConnContext, msg: Announce) -> None:
        """A join (not a re-announce) must fit in the address's swarm memberships."""
        if not ctx.address or msg.event == "stopped":
            return
        if self.registry.is_member(ctx.conn_id, msg.info_hash, msg.peer_id):
            return
        limit = self.addresses.limits.max_swarms
        held = sum(
            self.registry.membership_count(c) for c in self.addresses.connections(ctx.address)
        )
        if held >= limit:
            raise TooManySwarms(
                f"at most {limit} swarm memberships per address",
                reason="too_many_swarms_per_address",
            )

    def _announce(self, ctx: ConnContext, msg: Announce, now_s: float) -> list[Send]:
        self._check_grant(ctx, msg.info_hash)
        self._check_address_swarms(ctx, msg)
        if msg.peer_key is not None and self.registry.owner_of(msg.peer_id) not in (
            None,
            ctx.conn_id,
        ):
            self.release_peer_id(msg.peer_id, "local")
        blocked = self.reports.blocked(now_s, msg.info_hash)
        result = self.registry.announce(
            now_s,
            ctx.conn_id,
            msg.info_hash,
            msg.peer_id,
            event=msg.event,
            seeding=msg.seeding,
            hints=msg.hints,
            want_targets=0 if msg.peer_id in blocked else len(msg.offers),
            blocked=blocked,
        )
        # Offers relayed to nobody, so the client can reuse their slots at once (a joining
        # announce's may be parked and relayed later with Redis: not listed then).
        unused: list[str] = []
        if self.cluster is None or not result.joined:
            unused = [o.offer_id for o in msg.offers[len(result.targets) :]]
        out = [
            Send(
                ctx.conn_id,
                messages.announce_reply(
                    msg.info_hash,
                    self.config.announce_interval_s,
                    result.counts.complete,
                    result.counts.incomplete,
                    unused,
                ),
            )
        ]
        for offer, target in zip(msg.offers, result.targets, strict=False):
            # a target on another process records the offer there, where its answer arrives
            if self.cluster is None or self.cluster.is_local(target.conn_id):
                self.registry.record_offer(
                    now_s, msg.info_hash, offer.offer_id, msg.peer_id, target.peer_id
                )
            relay = RelayInfo(msg.info_hash, msg.peer_id, target.peer_id, offer.offer_id)
            text = messages.offer_relay(msg.info_hash, msg.peer_id, offer, target.drop)
            out.append(Send(target.conn_id, text, "offer", relay))
            self.metrics.relays.labels(kind="offer" if target.drop is None else "split_offer").inc()
        if self.cluster is not None:
            self._park(msg, result.joined, len(result.targets), ctx.conn_id, now_s)
        out.extend(self._fetcher_reply(ctx, msg, now_s))
        return out

    def _park(self, msg: Announce, joined: bool, used: int, conn_id: str, now_s: float) -> None:
        if msg.event == "stopped":
            self.parked.drop(msg.info_hash, msg.peer_id)
            return
        if not joined or used >= len(msg.offers):
            return
        evicted = self.parked.evicted
        if self.parked.park(now_s, msg.info_hash, msg.peer_id, conn_id, msg.offers[used:]):
            self.metrics.parked_offers.labels(event="parked").inc(len(msg.offers) - used)
        if self.parked.evicted > evicted:
            self.metrics.parked_offers.labels(event="evicted").inc(self.parked.evicted - evicted)
