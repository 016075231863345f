"""Two real signaling processes on one real Redis, one swarm: every client, whichever process
it is on, follows the same fetcher list, so the scheduler rule (docs/scheduling.md rule 8) makes
exactly one of them fetch each segment from the CDN; when a listed fetcher leaves, both
processes move to the same new list."""

from __future__ import annotations

import asyncio
import random
from typing import Any

from peer_agent.core.config import SchedulerConfig
from peer_agent.core.ids import SegmentId
from peer_agent.core.scheduler import FetchFromCdn, SchedulerView, SegmentView, decide
from tests.signaling.sig_support import Client, connect, pid
from tests.signaling_redis.conftest import NodeFactory

SWARM = pid("fetch-cluster")
CAPS = ["fetchers"]
FAST = {
    "P2P_SIGNALING_SWEEP_INTERVAL_S": "0.2",
    "P2P_SIGNALING_FETCHER_REFRESH_S": "0.1",
    "P2P_SIGNALING_FETCHER_COUNT": "3",
}


async def latest_assignment(client: Client) -> dict[str, Any]:
    """Announce again and return the newest fetchers message (pushes included)."""
    reply = await client.announce(SWARM, caps=CAPS)
    assert "failure reason" not in reply, reply
    msg = await client.recv_where(lambda m: m.get("action") == "fetchers")
    while True:  # drain pushes that came in behind it
        try:
            newer = await client.recv_where(lambda m: m.get("action") == "fetchers", 0.1)
        except TimeoutError:
            return msg
        msg = newer


async def converge(clients: list[Client], size: int, timeout_s: float = 30.0) -> tuple[str, ...]:
    lists: set[tuple[str, ...]] = set()
    try:
        async with asyncio.timeout(timeout_s):
            while True:
                lists = {tuple(sorted((await latest_assignment(c))["fetchers"])) for c in clients}
                if len(lists) == 1 and len(next(iter(lists))) == size:
                    return next(iter(lists))
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"the processes did not agree on one list: {lists}") from None


def cdn_fetchers_per_segment(clients: list[Client], fetchers: tuple[str, ...]) -> list[int]:
    """How many of ``clients`` the scheduler sends to the CDN at once for each of 30 new
    segments, each client deciding alone with the list it was given (no neighbours yet)."""
    counts = []
    for seq in range(30):
        seg = SegmentView(SegmentId(0, seq), 8.0, 4.0, 1_000_000, known_since=0.0)
        n = 0
        for c in clients:
            view = SchedulerView(
                now=0.0,
                self_id=c.peer_id,
                playhead_s=0.0,
                segments=[seg],
                fetchers=fetchers,
                fetchers_until=300.0,
            )
            actions = decide(view, SchedulerConfig(), random.Random(0)).actions
            n += sum(1 for a in actions if isinstance(a, FetchFromCdn))
        counts.append(n)
    return counts


async def test_two_processes_keep_one_fetcher_per_segment(start_nodes: NodeFactory) -> None:
    n1, n2 = await start_nodes(2, **FAST)
    on_1 = [await connect(n1.url, f"f1-{i}") for i in range(4)]
    on_2 = [await connect(n2.url, f"f2-{i}") for i in range(4)]
    everyone = on_1 + on_2
    try:
        for c in everyone:
            await c.announce(SWARM, caps=CAPS)
        await n1.wait_health(lambda h: h.get("peers") == 8)
        await n2.wait_health(lambda h: h.get("peers") == 8)
        fetchers = await converge(everyone, 3)
        assert cdn_fetchers_per_segment(everyone, fetchers) == [1] * 30
        # the local election alone (no assignment, no neighbours) would send all 8
        assert cdn_fetchers_per_segment(everyone, ()) == [8] * 30

        # a listed fetcher on process 1 (or 2) leaves: both move to one list without it
        gone = next(c for c in everyone if c.peer_id in fetchers)
        await gone.close()
        rest = [c for c in everyone if c is not gone]
        await n1.wait_health(lambda h: h.get("peers") == 7)
        await n2.wait_health(lambda h: h.get("peers") == 7)
        after = await converge(rest, 3)
        assert gone.peer_id not in after
        assert cdn_fetchers_per_segment(rest, after) == [1] * 30
        for node in (n1, n2):
            assert await node.metric("p2p_signaling_fetcher_picks_total") >= 1
    finally:
        for c in everyone:
            await c.close()
