"""Cut-through relaying with integrity (docs/protocol.md, "Relaying before the segment is
complete"), driven by hand: real agents' exchanges and real PeerSessions, bytes moved between
sessions by :func:`settle`, no network and no sleeps.

The chain is ``upstream -> relay -> downstream``: the upstream is a bare PeerSession whose
bytes the test hands over piece by piece (good or corrupt); the relay and the downstream are
:class:`Agent` objects whose swarm is a :class:`HandSwarm` of :class:`HandLink` objects.
Verification runs in a task the agent spawns: the tests await those tasks, nothing else.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any

import pytest

from peer_agent.agent import Agent, AgentConfig
from peer_agent.agent.exchange import RELAY_HOLDBACK_BYTES
from peer_agent.agent.integrity import Manifest
from peer_agent.agent.playlist import Timeline, parse_media
from peer_agent.agent.state import Transfer
from peer_agent.core import wire
from peer_agent.core.config import PlaybackConfig
from peer_agent.core.events import Event, SegmentRequested
from peer_agent.core.ids import SegmentId
from peer_agent.core.playback import PlaybackModel
from peer_agent.core.session import PeerSession, SessionConfig

URL = "http://o/live/index.m3u8"
MANIFEST_URL = "http://o/live/manifest.json"
PLAYLIST = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n" + "".join(
    f"#EXTINF:2.0,\nseg-{n}.ts\n" for n in range(6)
)
SWARM_ID = hashlib.sha1(b"swarm").digest()
SEGMENT = SegmentId(0, 3)
DATA = bytes(range(256)) * 800  # 204,800 bytes: a little over three DATA frames
NOW = 0.0


def peer_bytes(name: str) -> bytes:
    return name.encode().ljust(20, b".")


class HandLink:
    """What the agent uses of a PeerLink, over a PeerSession moved by hand."""

    def __init__(self, session: PeerSession, remote_peer_id: str) -> None:
        self.session = session
        self.remote_peer_id = remote_peer_id
        self.agent: Agent | None = None  # events go to its exchange; None: kept in ``events``
        self.events: list[Event] = []
        self.peer: HandLink | None = None

    @property
    def is_closed(self) -> bool:
        return self.session.is_closed

    def request(self, segment: SegmentId, offset: int = 0) -> int:
        return self.session.request(segment, offset, NOW)

    def cancel(self, request_id: int) -> bool:
        return self.session.cancel(request_id, NOW)

    def respond(self, request_id: int, total_bytes: int) -> bool:
        return self.session.respond(request_id, total_bytes)

    def send_data(self, request_id: int, offset: int, data: Any) -> bool:
        return self.session.send_data(request_id, offset, data)

    def reject_absent(self, request_id: int) -> bool:
        return self.session.reject_absent(request_id)

    def reject_busy(self, request_id: int, retry_after_ms: int = 0) -> bool:
        return self.session.reject_busy(request_id, retry_after_ms)

    def abort(self, request_id: int, reason: wire.AbortReason = wire.AbortReason.INTERNAL) -> bool:
        return self.session.abort(request_id, reason)

    async def close(self, code: int = 0, reason: str = "") -> None:
        self.session.close()

    def deliver(self) -> bool:
        delivered = False
        while (event := self.session.next_event()) is not None:
            delivered = True
            if self.agent is not None:
                self.agent.exchange.on_event(self, event)
            else:
                self.events.append(event)
        return delivered


class HandSwarm:
    """The agent's swarm: its links by peer id; announcements go out on every session."""

    def __init__(self) -> None:
        self.links: dict[str, Any] = {}
        self.have: list[SegmentId] = []

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def set_position(self, position_s: float | None) -> None: ...
    async def send_stats(self, bytes_p2p_down: int, bytes_p2p_up: int, bytes_cdn: int) -> None: ...

    def broadcast_have(self, segments: Any) -> None:
        self.have += list(segments)
        for link in self.links.values():
            link.session.announce_have(segments)

    def broadcast_fetching(self, entries: Any) -> None:
        for link in self.links.values():
            link.session.announce_fetching(entries)

    def broadcast_lost(self, segments: Any) -> None:
        for link in self.links.values():
            link.session.announce_lost(segments)


def make_agent(name: str) -> Agent:
    agent = Agent(AgentConfig(URL, manifest_url=MANIFEST_URL), peer_id=name)
    agent._loop = asyncio.get_running_loop()
    agent.timeline = Timeline(0)
    agent.timeline.update(parse_media(PLAYLIST, URL), now=NOW)
    agent.player = PlaybackModel(PlaybackConfig(), 0.0, now=NOW)
    agent.manifest = Manifest(MANIFEST_URL)
    agent.manifest.update(json.dumps({"seg-3.ts": hashlib.sha256(DATA).hexdigest()}))
    agent.swarm = HandSwarm()
    return agent


def connect(
    a: Agent | None, a_name: str, b: Agent | None, b_name: str, **hello: Any
) -> tuple[HandLink, HandLink]:
    """A pair of opened sessions: ``a``'s link to ``b`` and ``b``'s link to ``a``. ``hello``
    is what ``a`` announces in its HELLO."""
    sa = PeerSession(SessionConfig(), SWARM_ID, peer_bytes(a_name), NOW)
    sb = PeerSession(SessionConfig(), SWARM_ID, peer_bytes(b_name), NOW)
    sa.start(now=NOW, **hello)
    sb.start(now=NOW)
    la, lb = HandLink(sa, b_name), HandLink(sb, a_name)
    la.peer, lb.peer = lb, la
    for link, owner in ((la, a), (lb, b)):
        link.agent = owner
        if owner is not None:
            assert owner.swarm is not None
            owner.swarm.links[link.remote_peer_id] = link
    settle(la, lb)
    return la, lb


def settle(*links: HandLink) -> None:
    """Move every queued message to its receiver and hand out events until all is quiet."""
    busy = True
    while busy:
        busy = False
        for link in links:
            assert link.peer is not None
            for message in link.session.data_to_send():
                link.peer.session.receive_data(message, NOW)
                busy = True
        for link in links:
            busy = link.deliver() or busy


async def verifications(*agents: Agent) -> None:
    """Let the agents' spawned work (verifying a complete segment) finish."""
    for agent in agents:
        await asyncio.gather(*list(agent._tasks))


class Chain:
    """upstream (a bare session) -> relay (an agent) -> downstream (an agent)."""

    def __init__(self) -> None:
        self.relay = make_agent("relay")
        self.down = make_agent("down")
        # The upstream announces it is fetching the segment, so the relay may ask it.
        self.up_link, self.relay_up = connect(
            None, "up", self.relay, "relay", fetching=[wire.FetchingEntry(SEGMENT, len(DATA))]
        )
        self.relay_down, self.down_link = connect(self.relay, "relay", self.down, "down")
        self.links = (self.up_link, self.relay_up, self.relay_down, self.down_link)

    def settle(self) -> None:
        settle(*self.links)

    def start(self) -> int:
        """The relay asks the upstream, the downstream asks the relay; returns the
        upstream's request id."""
        self.relay.exchange.start_peer(SEGMENT, "up", 0, NOW)
        self.settle()
        # The relay announced FETCHING for a download from a peer: the downstream may ask it.
        assert SEGMENT in self.down.neighbours["relay"].fetching
        self.down.exchange.start_peer(SEGMENT, "relay", 0, NOW)
        self.settle()
        (request,) = [e for e in self.up_link.events if isinstance(e, SegmentRequested)]
        assert self.up_link.session.respond(request.request_id, len(DATA))
        return request.request_id

    def upstream_sends(self, rid: int, start: int, data: bytes) -> None:
        assert self.up_link.session.send_data(rid, start, data)
        self.settle()

    def downstream_bytes(self) -> int:
        held = self.down.held.get(SEGMENT)
        return 0 if held is None else len(held.buf)


async def test_relay_passes_bytes_on_but_the_last_frame_only_once_verified() -> None:
    chain = Chain()
    rid = chain.start()
    relay, down = chain.relay, chain.down
    # Half the segment reached the relay: all of it is already downstream.
    half = len(DATA) // 2
    chain.upstream_sends(rid, 0, DATA[:half])
    assert len(relay.held[SEGMENT].buf) == half
    assert chain.downstream_bytes() == half

    # The rest, one byte short: the relay holds back the final frame.
    chain.upstream_sends(rid, half, DATA[half:-1])
    assert chain.downstream_bytes() == len(DATA) - RELAY_HOLDBACK_BYTES

    # The last byte: the relay's copy is whole but not yet verified; nothing more leaves.
    chain.upstream_sends(rid, len(DATA) - 1, DATA[-1:])
    assert relay.transfers[SEGMENT].verifying
    assert chain.downstream_bytes() == len(DATA) - RELAY_HOLDBACK_BYTES

    # Verified: the relay plays, stores, announces it, and releases the last frame.
    await verifications(relay)
    assert relay.store.get(SEGMENT) == DATA and SEGMENT in relay.swarm.have  # type: ignore[union-attr]
    chain.settle()
    await verifications(down)
    assert down.store.get(SEGMENT) == DATA and SEGMENT in down.verified
    assert not relay.exchange.uploads and not relay.exchange.relay_copies
    assert relay.hash_failures == down.hash_failures == 0


async def test_corrupt_upstream_makes_the_relay_abort_and_nobody_blames_it() -> None:
    chain = Chain()
    rid = chain.start()
    relay, down = chain.relay, chain.down
    refetched: list[SegmentId] = []
    relay.intake.start_cdn = lambda segment, offset, now: refetched.append(segment)  # type: ignore[method-assign]

    bad = bytes([DATA[0] ^ 0xFF]) + DATA[1:]
    chain.upstream_sends(rid, 0, bad[:100_000])
    assert chain.downstream_bytes() == 100_000  # unverified bytes were relayed...
    chain.upstream_sends(rid, 100_000, bad[100_000:])
    assert chain.downstream_bytes() == len(DATA) - RELAY_HOLDBACK_BYTES  # ...but not the end

    await verifications(relay)
    # The relay's copy failed: the upstream is penalised, the segment discarded and refetched,
    # and everyone it was relaying to gets ABORT(UPSTREAM_FAILED), nothing else.
    assert relay.hash_failures == 1 and "up" in relay.penalties.failures
    assert SEGMENT not in relay.store and refetched == [SEGMENT]
    assert relay.exchange.relays_aborted == 1 and not relay.exchange.uploads
    assert relay.summary()["relays_aborted"] == 1
    messages = chain.relay_down.session.data_to_send()
    assert [wire.decode(m) for m in messages] == [
        wire.Abort(chain.down.transfers[SEGMENT].request_id or 0, wire.AbortReason.UPSTREAM_FAILED)
    ]
    for message in messages:
        chain.down_link.session.receive_data(message, NOW)
    chain.settle()
    await verifications(down)

    # The downstream never completed the segment, dropped what the relay had passed on (never
    # vouched for) and holds nothing against the relay: it may ask it again.
    assert SEGMENT not in down.verified and SEGMENT not in down.transfers
    assert chain.downstream_bytes() == 0 and "relay" not in down.held[SEGMENT].contributors
    assert down.hash_failures == 0 and not down.penalties.failures
    assert down.penalties.blocked_until("relay") == 0.0 and not down.penalties.is_banned("relay")


async def test_a_resumed_upstream_keeps_feeding_the_downstream() -> None:
    """The relay's own transfer is cancelled midway and resumed elsewhere (the CDN) at its
    offset: the downstream's upload carries on without a seam, the end once verified."""
    chain = Chain()
    rid = chain.start()
    relay, down = chain.relay, chain.down
    chain.upstream_sends(rid, 0, DATA[:80_000])
    relay.cancel_transfer(SEGMENT, NOW)  # the scheduler's decision: the bytes so far stay
    chain.settle()
    assert SEGMENT not in relay.transfers and len(relay.held[SEGMENT].buf) == 80_000
    assert chain.downstream_bytes() == 80_000 and SEGMENT in down.transfers

    # A CDN fetch resumes at the offset (its bytes arrive as the CDN fetcher hands them over).
    held = relay.held_for(SEGMENT, 80_000)
    relay.transfers[SEGMENT] = transfer = Transfer(SEGMENT, None, NOW, 80_000)
    for start in range(80_000, len(DATA), 16_384):
        held.append(DATA[start : start + 16_384], None)
        relay.exchange.pump_segment(SEGMENT)
        chain.settle()
    assert chain.downstream_bytes() == len(DATA) - RELAY_HOLDBACK_BYTES
    await relay.intake.complete(transfer, held)
    chain.settle()
    await verifications(down)
    assert down.store.get(SEGMENT) == DATA
    assert relay.exchange.relays_aborted == 0 and relay.hash_failures == 0


async def test_relay_gives_the_segment_up_and_aborts_downstream() -> None:
    chain = Chain()
    rid = chain.start()
    relay, down = chain.relay, chain.down
    chain.upstream_sends(rid, 0, DATA[:80_000])
    relay.cancel_transfer(SEGMENT, NOW)
    relay.drop_held(SEGMENT)  # e.g. the playhead moved past it
    chain.settle()
    assert relay.exchange.relays_aborted == 1
    assert SEGMENT not in down.transfers and chain.downstream_bytes() == 0


async def test_a_restart_below_what_was_relayed_aborts_downstream() -> None:
    """Bytes already relayed are replaced by others: the downstream's copy could be mixed."""
    chain = Chain()
    rid = chain.start()
    relay, down = chain.relay, chain.down
    chain.upstream_sends(rid, 0, DATA[:80_000])
    relay.cancel_transfer(SEGMENT, NOW)
    relay.held_for(SEGMENT, 10_000)  # a new fetch restarts at 10,000
    chain.settle()
    assert relay.exchange.relays_aborted == 1 and len(relay.held[SEGMENT].buf) == 10_000
    assert SEGMENT not in down.transfers and chain.downstream_bytes() == 0


@pytest.mark.parametrize("size", [1, RELAY_HOLDBACK_BYTES, RELAY_HOLDBACK_BYTES + 1])
async def test_a_segment_of_one_frame_or_less_leaves_only_once_verified(size: int) -> None:
    relay, down = make_agent("relay"), make_agent("down")
    data = DATA[:size]
    relay.manifest.update(json.dumps({"seg-3.ts": hashlib.sha256(data).hexdigest()}))
    down.manifest.update(json.dumps({"seg-3.ts": hashlib.sha256(data).hexdigest()}))
    links = connect(relay, "relay", down, "down")
    held = relay.held_for(SEGMENT, 0)
    relay.transfers[SEGMENT] = transfer = Transfer(SEGMENT, None, NOW, 0)
    relay.announce_fetching(SEGMENT)
    settle(*links)
    down.exchange.start_peer(SEGMENT, "relay", 0, NOW)
    held.total = size
    held.append(data, None)
    relay.exchange.pump_segment(SEGMENT)
    settle(*links)
    assert len(down.held[SEGMENT].buf) == max(0, size - RELAY_HOLDBACK_BYTES)
    await relay.intake.complete(transfer, held)
    settle(*links)
    await verifications(down)
    assert down.store.get(SEGMENT) == data
