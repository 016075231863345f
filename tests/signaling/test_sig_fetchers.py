"""Swarm-wide fetcher assignment: the pure pick (vectors in docs/vectors/signaling/fetchers.json)
and the server telling our clients (real server, real WebSocket clients)."""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path
from typing import Any

import pytest

from signaling.fetchers import (
    FetcherBoard,
    FetcherConfig,
    Member,
    fetcher_key,
    members_of,
    parse_uplink,
    pick_fetchers,
)
from signaling.pairing import PeerHints
from tests.signaling.sig_support import Client, ServerFactory, connect, pid

VECTORS = json.loads(
    (Path(__file__).parents[2] / "docs/vectors/signaling/fetchers.json").read_text()
)["cases"]

CAPS = ["fetchers"]


def _members(case: dict[str, Any]) -> list[Member]:
    return list(
        members_of(
            (m["peer_id"], PeerHints(region=m.get("region"), caps=tuple(m["caps"])))
            for m in case["members"]
        )
    )


@pytest.mark.parametrize("case", VECTORS, ids=[c["name"] for c in VECTORS])
def test_pick_vector(case: dict[str, Any]) -> None:
    config = FetcherConfig(**case["config"])
    for peer_id, key in case["keys"].items():
        assert fetcher_key(config.seed, case["slot"], case["info_hash"], peer_id).hex() == key
    members = _members(case)
    expect = {k: tuple(v) for k, v in case["expect"].items()}
    exclude = frozenset(case["exclude"])
    got = pick_fetchers(
        members, case["info_hash"], config=config, slot=case["slot"], exclude=exclude
    )
    assert got == expect
    # deterministic whatever order a process lists its members in (local, replica, ...)
    shuffled = members[:]
    random.Random(7).shuffle(shuffled)
    again = pick_fetchers(
        shuffled, case["info_hash"], config=config, slot=case["slot"], exclude=exclude
    )
    assert again == expect


def test_pick_is_bounded_and_a_big_claim_wins_nothing() -> None:
    """100 members, one claiming an absurd uplink among many claiming the threshold: the list
    holds count ids, and the absurd claim is not picked more often than its share over slots."""
    config = FetcherConfig(count=4)
    members = [Member(pid(f"m{i}"), None, 250_000) for i in range(99)]
    members.append(Member(pid("liar"), None, 10**12))
    picked = 0
    for slot in range(200):
        lists = pick_fetchers(members, pid("swarm"), config=config, slot=slot)
        assert len(lists[""]) == 4
        picked += pid("liar") in lists[""]
    assert picked < 30  # share 4/100 -> ~8 of 200; always picked would be 200


def test_uplink_caps_are_validated() -> None:
    assert parse_uplink("uplink:250000") == 250_000
    assert parse_uplink("fetchers") is None
    for bad in ("uplink:", "uplink:-1", "uplink:1e6", "uplink:1234567890123", "uplink:١٢"):
        with pytest.raises(ValueError, match="decimal digits"):
            parse_uplink(bad)


def test_board_holds_one_entry_per_member_and_forgets_connections() -> None:
    board = FetcherBoard(FetcherConfig())
    for i in range(20):
        board.subscribe(pid(f"s{i}"), "c1", pid("a"), None)
    board.subscribe(pid("s0"), "c2", pid("b"), "eu")
    assert board.subscriber_count() == 21
    board.drop_connection("c1")
    assert board.subscriber_count() == 1 and board.swarm_ids() == [pid("s0")]
    board.unsubscribe(pid("s0"), "c2", pid("b"))
    assert board.swarm_ids() == []


# -- on a real server ----------------------------------------------------------------------


async def _assignment(client: Client, timeout_s: float = 5.0) -> dict[str, Any]:
    for i, msg in enumerate(client.inbox):
        if msg.get("action") == "fetchers":
            return client.inbox.pop(i)
    return await client.recv_where(lambda m: m.get("action") == "fetchers", timeout_s)


async def _latest(client: Client, swarm: str) -> dict[str, Any]:
    """Announce again and return the newest assignment (older ones and pushes dropped)."""
    client.inbox = [m for m in client.inbox if m.get("action") != "fetchers"]
    await client.announce(swarm, caps=CAPS)
    msg = await _assignment(client)
    while True:
        try:
            msg = await client.recv_where(lambda m: m.get("action") == "fetchers", 0.3)
        except TimeoutError:
            return msg


async def _agreed(clients: list[Client], swarm: str, size: int) -> tuple[str, ...]:
    lists: set[tuple[str, ...]] = set()
    try:
        async with asyncio.timeout(20.0):
            while True:
                lists = {tuple((await _latest(c, swarm))["fetchers"]) for c in clients}
                if len(lists) == 1 and len(next(iter(lists))) == size:
                    return next(iter(lists))
                await asyncio.sleep(0.2)
    except TimeoutError:
        raise AssertionError(f"clients were told different lists: {lists}") from None


async def test_our_clients_are_told_standard_clients_are_not(start_server: ServerFactory) -> None:
    server = await start_server(sweep_interval_s=0.2, fetcher_refresh_s=0.1, fetcher_count=2)
    swarm = pid("fetch-swarm")
    ours = [await connect(server.url, f"ours-{i}") for i in range(3)]
    standard = await connect(server.url, "standard")
    try:
        await standard.announce(swarm)
        for c in ours:
            reply = await c.announce(swarm, caps=CAPS)
            assert reply["interval"] > 0
            msg = await _assignment(c)
            assert msg["info_hash"] == swarm and 0 < msg["valid_s"] <= 3600
            assert "region" not in msg and isinstance(msg["slot"], int)
        # settle: every member of ours ends on the same list of 2 ours, never the standard one
        fetchers = await _agreed(ours, swarm, 2)
        assert standard.peer_id not in fetchers
        assert set(fetchers) <= {c.peer_id for c in ours}
        with pytest.raises(TimeoutError):
            await standard.recv_where(lambda m: m.get("action") == "fetchers", 0.5)

        # a listed fetcher leaves: the others are pushed a list without it
        gone = next(c for c in ours if c.peer_id == fetchers[0])
        await gone.close()
        rest = [c for c in ours if c is not gone]
        for c in rest:
            while True:
                msg = await _assignment(c)
                if gone.peer_id not in msg["fetchers"]:
                    break
            assert set(msg["fetchers"]) == {r.peer_id for r in rest}
        assert await server.metric("p2p_signaling_fetcher_messages_total", kind="push") >= 2
        assert await server.metric("p2p_signaling_fetcher_picks_total") >= 1
    finally:
        for c in [*ours, standard]:
            await c.close()


async def test_regions_get_their_own_fetchers(start_server: ServerFactory) -> None:
    server = await start_server(fetcher_count=4)
    swarm = pid("region-swarm")
    eu = [await connect(server.url, f"eu-{i}") for i in range(2)]
    us = await connect(server.url, "us-0")
    try:
        for c in eu:
            await c.announce(swarm, caps=CAPS, region="eu")
        await us.announce(swarm, caps=CAPS, region="us")
        msg = await _assignment(us)
        assert msg["region"] == "us" and msg["fetchers"] == [us.peer_id]
        await eu[0].announce(swarm, caps=CAPS, region="eu")
        while True:  # the first reply to eu-0 predates eu-1
            msg = await _assignment(eu[0])
            if len(msg["fetchers"]) == 2:
                break
        assert msg["region"] == "eu" and set(msg["fetchers"]) == {c.peer_id for c in eu}
    finally:
        for c in [*eu, us]:
            await c.close()


async def test_hostile_inputs_are_refused_and_bounded(start_server: ServerFactory) -> None:
    server = await start_server(fetcher_count=2, max_swarms_per_connection=3)
    a = await connect(server.url, "hostile")
    try:
        # a malformed uplink claim: bad_extension, nothing recorded
        reply = await a.announce(pid("h-swarm"), caps=["fetchers", "uplink:lots"])
        assert reply["reason"] == "bad_extension" and "decimal digits" in reply["failure reason"]
        # clients cannot send the server's message
        await a.send({"action": "fetchers", "info_hash": pid("h-swarm"), "fetchers": [a.peer_id]})
        refused = await a.recv()
        assert refused["reason"] == "unknown_action"
        assert await server.rejections("bad_extension") == 1
        # one assignment per announce, and no more swarms than the connection may join
        for i in range(4):
            reply = await a.announce(pid(f"h-{i}"), caps=["fetchers", "uplink:999999999999"])
        assert reply["reason"] == "too_many_swarms"
        board = server.runtime.service.fetchers
        assert board.subscriber_count() == 3
        got = [m for m in a.inbox if m.get("action") == "fetchers"]
        assert len(got) == 3 and all(m["fetchers"] == [a.peer_id] for m in got)
    finally:
        await a.close()
    for _ in range(100):
        if server.runtime.service.fetchers.subscriber_count() == 0:
            break
        await asyncio.sleep(0.05)
    assert server.runtime.service.fetchers.subscriber_count() == 0


async def test_off_sends_nothing(start_server: ServerFactory) -> None:
    server = await start_server(fetcher_count=0)
    a = await connect(server.url, "off-a")
    try:
        await a.announce(pid("off-swarm"), caps=CAPS)
        with pytest.raises(TimeoutError):
            await a.recv_where(lambda m: m.get("action") == "fetchers", 0.5)
        assert server.runtime.service.fetchers.subscriber_count() == 0
    finally:
        await a.close()
