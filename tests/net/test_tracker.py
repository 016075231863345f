"""TrackerClient against the real signaling server on a loopback port."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Any

import httpx
import pytest

from peer_agent.net.tracker import (
    AnnounceReply,
    RelayedAnswer,
    RelayedOffer,
    TrackerClient,
    TrackerConfig,
)
from tests.net.conftest import RunningServer, ServerFactory, ident, wait_until

FAST = TrackerConfig(reconnect_initial_s=0.05, reconnect_max_s=0.2, min_announce_gap_s=0.0)


class Probe:
    """Callbacks of one TrackerClient, recorded; ``changed`` is set on every callback."""

    def __init__(self, offers: list[tuple[str, str]] | None = None, answer: str | None = None):
        self.replies: list[AnnounceReply] = []
        self.offers_in: list[RelayedOffer] = []
        self.answers_in: list[RelayedAnswer] = []
        self.failures: list[tuple[str, str]] = []
        self.changed = asyncio.Event()
        self._offers = offers or []
        self._answer = answer

    def client(self, server: RunningServer, name: str, **kwargs: Any) -> TrackerClient:
        kwargs.setdefault("config", FAST)
        return TrackerClient(
            server.url,
            ident("swarm-t"),
            ident(name),
            rng=random.Random(7),
            on_offer=self.on_offer,
            on_answer=self.on_answer,
            make_offers=self.make_offers,
            on_announce_reply=self.on_reply,
            on_failure=self.on_failure,
            **kwargs,
        )

    async def make_offers(self) -> list[tuple[str, str]]:
        offers, self._offers = self._offers, []
        return offers

    async def on_offer(self, offer: RelayedOffer) -> str | None:
        self.offers_in.append(offer)
        self.changed.set()
        return self._answer

    def on_answer(self, answer: RelayedAnswer) -> None:
        self.answers_in.append(answer)
        self.changed.set()

    def on_reply(self, reply: AnnounceReply) -> None:
        self.replies.append(reply)
        self.changed.set()

    def on_failure(self, reason: str, detail: str) -> None:
        self.failures.append((reason, detail))
        self.changed.set()


async def test_announce_offer_answer_relay_and_stats(server: RunningServer) -> None:
    pa = Probe(answer="v=0 answer-from-a")
    pb = Probe(offers=[("offer-b-1", "v=0 offer-from-b")])
    a = pa.client(server, "alice")
    b = pb.client(server, "bob")
    a.hints.position_s = 12.5
    a.hints.region = "eu-west"
    await a.start()
    try:
        await wait_until(lambda: pa.replies, pa.changed)
        assert pa.replies[0].incomplete == 1
        await b.start()
        await wait_until(lambda: pa.offers_in, pa.changed)
        assert pa.offers_in[0] == RelayedOffer(ident("bob"), "offer-b-1", "v=0 offer-from-b")
        await wait_until(lambda: pb.answers_in, pb.changed)
        assert pb.answers_in[0] == RelayedAnswer(ident("alice"), "offer-b-1", "v=0 answer-from-a")
        assert pb.replies[0].incomplete == 2
        # the server kept alice's extension fields and receives our counters
        registry = server.server.runtime.registry
        await a.send_stats(100, 200, 300)

        def counters() -> Any:
            for swarm in registry.snapshot(0.0, 10, 10):
                for peer in swarm.peers:
                    if peer.peer_id == ident("alice") and peer.bytes.cdn == 300:
                        return peer
            return None

        # stats carry no reply: re-announce and wait for its reply, by then stats were handled
        a.announce_now()
        n = len(pa.replies)
        await wait_until(lambda: len(pa.replies) > n, pa.changed)
        peer = counters()
        assert peer is not None
        assert (peer.bytes.p2p_down, peer.bytes.p2p_up) == (100, 200)
        assert peer.hints.position_s == 12.5 and peer.hints.region == "eu-west"
        assert a.stats.failures == 0 and b.stats.failures == 0
    finally:
        await b.stop()
        await a.stop()
    assert not a.running and not b.running


async def test_stopped_announce_leaves_the_swarm(server: RunningServer) -> None:
    pa = Probe()
    a = pa.client(server, "leaver")
    await a.start()
    await wait_until(lambda: pa.replies, pa.changed)
    assert server.server.runtime.registry.peer_count() == 1
    await a.stop()
    assert server.server.runtime.registry.peer_count() == 0


async def test_failure_reason_is_counted_and_survived(server: RunningServer) -> None:
    p1, p2 = Probe(), Probe()
    first = p1.client(server, "same-id")
    twin = p2.client(server, "same-id")  # peer_id bound to another connection: rejected
    await first.start()
    await wait_until(lambda: p1.replies, p1.changed)
    await twin.start()
    try:
        await wait_until(lambda: p2.failures, p2.changed)
        assert p2.failures[0][0] == "peer_id_spoofed"
        assert twin.stats.failure_reasons == {"peer_id_spoofed": 1}
        assert twin.running and twin.connected.is_set()
        assert first.stats.failures == 0
    finally:
        await twin.stop()
        await first.stop()


async def test_reconnects_and_reannounces_after_server_restart(
    start_server: ServerFactory,
) -> None:
    server = await start_server()
    port = server.port
    pa = Probe()
    a = pa.client(server, "survivor")
    await a.start()
    try:
        await wait_until(lambda: pa.replies, pa.changed)
        await server.stop()  # closes our socket with 1001; the client retries with backoff
        n = len(pa.replies)  # no server now: no reply can arrive until the restart
        restarted = await start_server(port=port)
        await wait_until(lambda: len(pa.replies) > n, pa.changed)
        assert restarted.server.runtime.registry.peer_count() == 1
        assert a.stats.connects >= 2 and a.stats.disconnects >= 1
    finally:
        await a.stop()


async def test_join_token_is_sent_as_query_parameter(start_server: ServerFactory) -> None:
    from signaling.tokens import mint_token

    secret = "s" * 32
    server = await start_server(token_secret=secret)
    info_hex = ident("swarm-t").encode("latin-1").hex()
    token = mint_token(secret, [info_hex], int(time.time() + 60))
    pa = Probe()
    a = pa.client(server, "with-token", token=token)
    await a.start()
    try:
        await wait_until(lambda: pa.replies, pa.changed)
    finally:
        await a.stop()


def test_backoff_grows_with_jitter_and_caps() -> None:
    config = TrackerConfig(reconnect_initial_s=1.0, reconnect_max_s=8.0, reconnect_jitter=0.5)
    client = TrackerClient(
        "ws://127.0.0.1:1/announce", ident("s"), ident("p"), config=config, rng=random.Random(3)
    )
    delays = []
    for n in range(1, 7):
        client._failures_in_a_row = n
        delays.append(client._backoff_s())
    bases = [1, 2, 4, 8, 8, 8]
    for delay, base in zip(delays, bases, strict=True):
        assert 0.5 * base <= delay <= 1.5 * base
    with pytest.raises(ValueError):
        TrackerClient("ws://x/announce", "short", ident("p"))


async def test_stats_before_the_first_announce_are_sent_after_it(server: RunningServer) -> None:
    pa = Probe()
    a = pa.client(server, "early-stats")
    await a.send_stats(1, 2, 3)  # not connected yet: kept for later
    assert a.stats.stats_sent == 0
    await a.start()
    try:
        await wait_until(lambda: pa.replies, pa.changed)
        a.announce_now()  # the stats go out right after the first reply, before this announce
        await wait_until(lambda: len(pa.replies) >= 2, pa.changed)
        assert a.stats.stats_sent == 1
        registry = server.server.runtime.registry
        peers = [p for s in registry.snapshot(0.0, 10, 10) for p in s.peers]
        assert [(p.bytes.p2p_down, p.bytes.p2p_up, p.bytes.cdn) for p in peers] == [(1, 2, 3)]
        assert a.stats.failures == 0
    finally:
        await a.stop()


async def test_stats_carry_cdn_fetches_by_phase(server: RunningServer) -> None:
    """The optional CDN fetch counters (join ramp, steady) reach the server's /metrics."""
    pa = Probe()
    a = pa.client(server, "phase-stats")
    await a.start()
    try:
        await wait_until(lambda: pa.replies, pa.changed)
        await a.send_stats(1, 2, 3, (4, 9))
        await a.send_stats(1, 2, 3, (4, 9))  # unchanged: not sent again
        url = f"http://127.0.0.1:{server.port}/metrics"
        async with httpx.AsyncClient() as http:
            for _ in range(200):  # stats have no reply: wait until the server counted them
                text = (await http.get(url)).text
                if 'p2p_signaling_peer_cdn_fetches_total{phase="steady"} 9.0' in text:
                    break
                await asyncio.sleep(0.02)
        assert 'p2p_signaling_peer_cdn_fetches_total{phase="steady"} 9.0' in text
        assert 'p2p_signaling_peer_cdn_fetches_total{phase="join_ramp"} 4.0' in text
        assert a.stats.stats_sent == 1
    finally:
        await a.stop()


async def test_no_sdp_or_token_in_debug_logs(
    server: RunningServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    pa, pb = Probe(answer="v=0 SECRET-ANSWER"), Probe(offers=[("o-1", "v=0 SECRET-OFFER")])
    a = pa.client(server, "log-a", token="SECRET-TOKEN-123")
    b = pb.client(server, "log-b")
    await a.start()
    try:
        await wait_until(lambda: pa.replies, pa.changed)
        await b.start()
        await wait_until(lambda: pb.answers_in, pb.changed)
    finally:
        await b.stop()
        await a.stop()
    text = "\n".join(
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(("peer_agent", "websockets.client"))
    )
    assert "SECRET" not in text


async def test_report_reaches_the_server_and_bad_reasons_are_refused(
    server: RunningServer,
) -> None:
    """The agent's report of a peer it banned (docs/signaling.md, "Reports"): recorded by the
    server under the reporter's address; an unknown reason is a programming error."""
    pa, pb = Probe(), Probe()
    a = pa.client(server, "reporter")
    b = pb.client(server, "reported")
    assert await a.report(ident("reported"), "lies") is False  # not connected yet
    await a.start()
    await b.start()
    try:
        await wait_until(lambda: pa.replies and pb.replies, pa.changed)
        await wait_until(lambda: pb.replies, pb.changed)
        assert await a.report(ident("reported"), "hash_failure") is True
        with pytest.raises(ValueError):
            await a.report(ident("reported"), "dislike")
        a.announce_now()  # no reply to a report: by the next announce reply it was handled
        n = len(pa.replies)
        await wait_until(lambda: len(pa.replies) > n, pa.changed)
        reports = server.server.runtime.service.reports
        assert reports._by_reporter == {"127.0.0.1": {(ident("swarm-t"), ident("reported")): None}}
        assert a.stats.failures == 0
    finally:
        await b.stop()
        await a.stop()
