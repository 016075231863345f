"""The agent's glue around the exchange, over real PeerSessions moved by hand: no network, no
sleeps. The rules themselves (hold-back, aborts, resumes, truncation, small segments) are the
exchange vectors' (docs/vectors/exchange/); what they cannot show is that the glue carries the
actions out on real sessions, hashes with the real manifest and feeds the verdicts back.

The chain is ``upstream -> relay -> downstream``: the upstream is a bare PeerSession whose
bytes the test hands over piece by piece (good or corrupt); the relay and the downstream are
:class:`Agent` objects whose swarm is a :class:`HandSwarm` of :class:`HandLink` objects.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
from typing import Any

from peer_agent.agent import Agent, AgentConfig
from peer_agent.agent.integrity import Manifest
from peer_agent.agent.playlist import Timeline, parse_media
from peer_agent.core import wire
from peer_agent.core.config import PlaybackConfig
from peer_agent.core.events import Event, SegmentRequested
from peer_agent.core.exchange_actions import ExchangeConfig
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
DATA = bytes(range(256)) * 800  # 204,800 bytes: a little over twelve 16 KiB DATA frames
NOW = 0.0
HOLDBACK = ExchangeConfig().relay_holdback_bytes


def peer_bytes(name: str) -> bytes:
    return name.encode().ljust(20, b".")


class HandLink:
    """What the agent uses of a PeerLink, over a PeerSession moved by hand."""

    def __init__(self, session: PeerSession, remote_peer_id: str) -> None:
        self.session = session
        self.remote_peer_id = remote_peer_id
        self.agent: Agent | None = None  # events go to it; None: kept in ``events``
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
                self.agent.on_event(self, event)
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
    async def send_stats(
        self,
        bytes_p2p_down: int,
        bytes_p2p_up: int,
        bytes_cdn: int,
        cdn_fetches: tuple[int, int] | None = None,
    ) -> None: ...
    def fetcher_assignment(self) -> tuple[tuple[str, ...], float]:
        return (), 0.0

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
    agent.attach(asyncio.get_running_loop())
    agent.timeline = Timeline(0)
    agent.timeline.update(parse_media(PLAYLIST, URL), now=NOW)
    agent.push_timeline()
    agent.player = PlaybackModel(PlaybackConfig(), 0.0, now=NOW)
    agent.manifest = Manifest(MANIFEST_URL)
    agent.manifest.update(json.dumps({"seg-3.ts": hashlib.sha256(DATA).hexdigest()}))
    agent.exchange.set_sha256(True)
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


async def verifications() -> None:
    """Let the agents' spawned work (hashing a complete segment: no I/O) run."""
    for _ in range(5):
        await asyncio.sleep(0)


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
        self.relay.flush()
        self.settle()
        # The relay announced FETCHING for a download from a peer: the downstream may ask it.
        assert SEGMENT in self.down.exchange.neighbours["relay"].fetching
        self.down.exchange.start_peer(SEGMENT, "relay", 0, NOW)
        self.down.flush()
        self.settle()
        (request,) = [e for e in self.up_link.events if isinstance(e, SegmentRequested)]
        assert self.up_link.session.respond(request.request_id, len(DATA))
        return request.request_id

    def upstream_sends(self, rid: int, start: int, data: bytes) -> None:
        assert self.up_link.session.send_data(rid, start, data)
        self.settle()

    def downstream_bytes(self) -> int:
        held = self.down.exchange.held.get(SEGMENT)
        return 0 if held is None else len(held.buf)


async def never_returns(*args: Any, **kwargs: Any) -> Any:
    """A CDN fetch that never ends (the refetch is not what these tests look at)."""
    await asyncio.Event().wait()


async def test_relay_passes_bytes_on_but_the_last_frame_only_once_verified() -> None:
    chain = Chain()
    rid = chain.start()
    relay, down = chain.relay, chain.down
    # Half the segment reached the relay: all of it is already downstream.
    half = len(DATA) // 2
    chain.upstream_sends(rid, 0, DATA[:half])
    assert len(relay.exchange.held[SEGMENT].buf) == half
    assert chain.downstream_bytes() == half

    # The rest, one byte short: the relay holds back the final frame.
    chain.upstream_sends(rid, half, DATA[half:-1])
    assert chain.downstream_bytes() == len(DATA) - HOLDBACK

    # The last byte: the relay's copy is whole but not yet verified; nothing more leaves.
    chain.upstream_sends(rid, len(DATA) - 1, DATA[-1:])
    assert relay.transfers[SEGMENT].verifying
    assert chain.downstream_bytes() == len(DATA) - HOLDBACK

    # Verified: the relay plays, stores, announces it, and releases the last frame.
    await verifications()
    assert relay.store.get(SEGMENT) == DATA and SEGMENT in relay.swarm.have  # type: ignore[union-attr]
    chain.settle()
    await verifications()
    assert down.store.get(SEGMENT) == DATA and SEGMENT in down.verified
    assert not relay.exchange.server.uploads and not relay.exchange.server.relay_copies
    assert relay.hash_failures == down.hash_failures == 0


async def test_corrupt_upstream_makes_the_relay_abort_and_nobody_blames_it() -> None:
    chain = Chain()
    rid = chain.start()
    relay, down = chain.relay, chain.down

    bad = bytes([DATA[0] ^ 0xFF]) + DATA[1:]
    chain.upstream_sends(rid, 0, bad[:100_000])
    assert chain.downstream_bytes() == 100_000  # unverified bytes were relayed...
    chain.upstream_sends(rid, 100_000, bad[100_000:])
    assert chain.downstream_bytes() == len(DATA) - HOLDBACK  # ...but not the end

    relay.cdn.fetch = never_returns  # type: ignore[method-assign]
    await verifications()
    # The relay's copy failed: the upstream is penalised, the segment discarded and refetched
    # from the CDN, and everyone it was relaying to gets ABORT(UPSTREAM_FAILED), nothing else.
    assert relay.hash_failures == 1 and "up" in relay.penalties.failures
    assert SEGMENT not in relay.store and relay.transfers[SEGMENT].peer_id is None
    assert relay.exchange.server.relays_aborted == 1 and not relay.exchange.server.uploads
    assert relay.summary()["relays_aborted"] == 1
    messages = chain.relay_down.session.data_to_send()
    assert [wire.decode(m) for m in messages] == [
        wire.Abort(chain.down.transfers[SEGMENT].request_id or 0, wire.AbortReason.UPSTREAM_FAILED),
        # The refetch from the CDN is announced: the relay may serve it again, once verified.
        wire.Fetching((wire.FetchingEntry(SEGMENT, len(DATA)),)),
    ]
    for message in messages:
        chain.down_link.session.receive_data(message, NOW)
    chain.settle()
    await verifications()

    # The downstream never completed the segment, dropped what the relay had passed on (never
    # vouched for) and holds nothing against the relay: it may ask it again.
    assert SEGMENT not in down.verified and SEGMENT not in down.transfers
    assert chain.downstream_bytes() == 0
    assert "relay" not in down.exchange.held[SEGMENT].contributors
    assert down.hash_failures == 0 and not down.penalties.failures
    assert down.penalties.blocked_until("relay") == 0.0 and not down.penalties.is_banned("relay")


async def test_the_agent_passes_the_trackers_swarm_size_to_the_scheduler(
    monkeypatch: Any,
) -> None:
    """Issue 15, finding 3: the seed rule needs the swarm size, as the simulator passes it."""
    import peer_agent.agent.agent as agent_module

    seen: list[int] = []
    real_decide = agent_module.decide

    def spy(view: Any, config: Any, rng: Any) -> Any:
        seen.append(view.swarm_size)
        return real_decide(view, config, rng)

    monkeypatch.setattr(agent_module, "decide", spy)
    agent = make_agent("-PH0001-sizesizesize")
    agent.config = dataclasses.replace(agent.config, scheduler_swarm_size=True)
    agent.decide(NOW)  # a swarm that reports no size: unknown
    swarm = agent.swarm
    assert swarm is not None
    swarm.swarm_size = 1234  # type: ignore[attr-defined]
    agent.decide(NOW)
    agent.config = dataclasses.replace(agent.config, scheduler_swarm_size=False)
    agent.decide(NOW)  # the default: not passed (it hurt real agents, issue 15)
    assert seen == [0, 1234, 0]


async def test_no_new_request_goes_on_a_link_the_swarm_no_longer_keeps() -> None:
    """A link drained to make room (docs/signaling.md, "Making room") left the swarm's links
    but is still open: the glue sends no new request on it (``request_not_sent``)."""
    relay = make_agent("relay")
    up_link, relay_up = connect(
        None, "up", relay, "relay", fetching=[wire.FetchingEntry(SEGMENT, len(DATA))]
    )
    assert relay.swarm is not None
    del relay.swarm.links["up"]  # drained: open, no longer the link kept for the peer
    relay.exchange.start_peer(SEGMENT, "up", 0, NOW)
    relay.flush()
    settle(up_link, relay_up)
    assert [e for e in up_link.events if isinstance(e, SegmentRequested)] == []
    assert relay_up.session.outbound_requests == 0 and not relay_up.is_closed
