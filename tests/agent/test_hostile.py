"""Hostile peers over real aiortc (docs/exchange.md 8a, 8b): a live stream from the real test
origin, the real signaling server, two honest agents and one attacker built with
:mod:`peer_agent.hostile`, each agent on its own loopback address (127.0.0.x, ``host_addresses``)
so that the address-keyed rules are exercised for real. Each test asserts bounded harm."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from peer_agent.agent import Agent, AgentConfig
from peer_agent.hostile import Attack, HostileStats, make_hostile, run_rotating
from peer_agent.origin import MediaSet, run_origin
from tests.agent.conftest import origin_config
from tests.agent.test_integration import FAST_CDN, SCHED, SWARM, signaling
from tests.loop_lag import cpu_denied_share, cpu_run_and_wait_s

pytestmark = pytest.mark.slow

RUN_S = 10.0
#: The staller's side-by-side window: longer than the others, so that its stalls are charged
#: (after stall_offence_s without progress, docs/exchange.md 8b) within it.
STALLER_RUN_S = 16.0
#: ... and how long its run may go on until an honest agent refused it (a generous bound for a
#: busy machine: two abandoned downloads refuse, and it abandons every one).
STALLER_DEADLINE_S = 60.0
HONEST = ("127.0.0.2", "127.0.0.3")
#: bounded_harm: a run whose thread waited for a CPU this share of the time it wanted one (or
#: more) shares too little CPU with its in-process attacker for the offload bound to be fair.
STARVED_SHARE = 0.5
ATTACKER = "127.0.0.9"


def config(url: str, tracker: str, address: str, seed: int, duration_s: float) -> AgentConfig:
    return AgentConfig(
        url,
        tracker_url=tracker,
        host_addresses=(address,),
        swarm=SWARM,
        max_peers=4,
        scheduler=SCHED,
        cdn=FAST_CDN,
        latency_segments=4,
        seed=seed,
        duration_s=duration_s,
    )


@dataclasses.dataclass
class Run:
    honest: list[Agent]
    summaries: list[dict[str, Any]]
    stats: HostileStats | None  # None: the run without the attacker
    #: The honest agents' counters ``run_s`` after each one started, when the run went on past
    #: that (``until_refused``): the figures compared side by side with a run of ``run_s``.
    window: list[dict[str, Any]] | None = None
    #: The share of the time the test's thread wanted a CPU that it waited for one
    #: (tests/loop_lag.py cpu_denied_share): the machine's load during the run.
    cpu_denied: float = 0.0

    @property
    def counted(self) -> list[dict[str, Any]]:
        return self.window if self.window is not None else self.summaries

    @property
    def offload(self) -> float:
        """The honest pair's offload (P2P share of the bytes both of them downloaded)."""
        p2p = sum(s["bytes_p2p"] for s in self.counted)
        cdn = sum(s["bytes_cdn"] for s in self.counted)
        return p2p / (p2p + cdn) if p2p + cdn else 0.0

    @property
    def upload_mean(self) -> float:
        """The honest agents' mean upload (bytes)."""
        return sum(s["bytes_uploaded"] for s in self.counted) / len(self.counted)

    def figures(self) -> str:
        stalls = [s["stall_count"] for s in self.counted]
        return (
            f"offload {self.offload:.3f}, mean upload {self.upload_mean:.0f} B, stalls {stalls}, "
            f"denied a CPU {self.cpu_denied:.0%} of the time"
        )


async def counters_after(agent: Agent, delay_s: float) -> dict[str, Any]:
    """The agent's byte counters and player stalls ``delay_s`` from now."""
    await asyncio.sleep(delay_s)
    player = agent.player
    return {
        "bytes_p2p": agent.bytes_p2p,
        "bytes_cdn": agent.bytes_cdn,
        "bytes_uploaded": agent.bytes_uploaded,
        "stall_count": player.stall_count if player is not None else 0,
    }


def attacker_refused(agent: Agent) -> bool:
    """Whether ``agent`` has refused (or banned) the attacker's address."""
    return agent.exchange.reputation.refused_until([f"addr:{ATTACKER}"]) > 0


async def swarm_run(
    media: MediaSet,
    attack: Attack | None,
    run_s: float = RUN_S,
    *,
    until_refused_s: float | None = None,
) -> Run:
    """Two honest agents and an attacker (``None``: the same run with its place empty) for
    ``run_s``: the attacker starts first, the honest agents 1 s and 2 s later. With
    ``until_refused_s`` the run goes on past ``run_s`` until an honest agent refuses the
    attacker's address, at most that long; the side-by-side figures are those at ``run_s``
    (``Run.window``)."""
    total_s = run_s if until_refused_s is None else max(run_s, until_refused_s)
    cpu_before = cpu_run_and_wait_s()
    async with run_origin(origin_config(), media=media) as origin, signaling() as sig:
        url = origin.url("hls/live-ts/master.m3u8")
        tasks = []
        stats = None
        attacker = None
        if attack is not None:
            attacker = Agent(config(url, sig.url, ATTACKER, 9, total_s + 1.0))
            stats = make_hostile(attacker, attack)
            tasks.append(asyncio.create_task(attacker.run()))
        await asyncio.sleep(1.0)
        honest = [Agent(config(url, sig.url, a, 2 + i, total_s)) for i, a in enumerate(HONEST)]
        results = []
        windows = []
        for agent in honest:
            results.append(asyncio.create_task(agent.run()))
            if until_refused_s is not None:
                windows.append(asyncio.create_task(counters_after(agent, run_s)))
            await asyncio.sleep(1.0)
        window = None
        if until_refused_s is not None:
            window = list(await asyncio.gather(*windows))
            # Until refused (polled: the condition lives in the agents' exchanges) or the end.
            while not all(r.done() for r in results):
                if any(attacker_refused(a) for a in honest):
                    break
                await asyncio.sleep(0.25)
            for agent in [*honest, *([attacker] if attacker is not None else [])]:
                agent.stop()
        summaries = list(await asyncio.gather(*results))
        await asyncio.gather(*tasks)
    for summary in summaries:
        # Player stalls are printed, not asserted: on a loaded machine (CI's 2 cores, busy) the
        # runs without an attacker stall too; what is bounded here is upload and offload.
        assert summary["segments_played"] > 0, summary
    denied = cpu_denied_share(cpu_before, cpu_run_and_wait_s())
    return Run(honest, summaries, stats, window, denied)


def refused_before_handshake(run: Run) -> int:
    """Offers and answers of refused peers the honest agents' swarms left alone."""
    return sum(getattr(a.swarm, "pairings_refused", 0) for a in run.honest)


@dataclasses.dataclass(frozen=True)
class Charge:
    """One hash failure an exchange charged (``SegmentExchange._charge_failure``)."""

    peer_id: str
    #: Banned at once as the sole contributor that vouched for its bytes (docs/exchange.md 6).
    sole: bool
    #: Whether the peer had vouched for its bytes of the failed copy (None: the copy was a
    #: failed one kept for blame, judged once another copy verified).
    vouched: bool | None


def record_charges(agent: Agent) -> list[Charge]:
    """Every hash failure ``agent``'s exchange charges from now on, with how it was charged."""
    exchange = agent.exchange
    charge = exchange._charge_failure
    charges: list[Charge] = []

    def recording(segment: Any, peers: list[str], sole: bool, now: float) -> None:
        held = exchange.held.get(segment)
        for pid in peers:
            vouched = None if held is None else pid in held.vouched
            charges.append(Charge(pid, sole, vouched))
        charge(segment, peers, sole, now)

    exchange._charge_failure = recording  # type: ignore[method-assign]
    return charges


def attacker_subjects(agent: Agent) -> tuple[float, bool]:
    """(refused until, banned) of the attacker's address on ``agent``."""
    rep = agent.exchange.reputation
    key = f"addr:{ATTACKER}"
    return rep.refused_until([key]), key in rep.banned


def within_bounds(run: Run, without: Run, *, upload: bool = True) -> bool:
    offload_ok = run.offload >= without.offload - 0.10
    return offload_ok and (not upload or run.upload_mean <= 2 * without.upload_mean)


def pooled(first: Run, second: Run) -> Run:
    """Two runs of one scenario as one: their honest agents' bytes added up."""
    return Run(
        first.honest + second.honest,
        first.counted + second.counted,
        first.stats,
        cpu_denied=min(first.cpu_denied, second.cpu_denied),
    )


async def bounded_harm(
    media: MediaSet,
    attack: Attack,
    run: Run,
    without: Run,
    *,
    upload: bool = True,
    run_s: float = RUN_S,
    until_refused_s: float | None = None,
) -> None:
    """The issue's bounds, against the same scenario without the attacker in the same test: the
    honest agents upload at most 2x as much and the pair's offload is at most 10 points lower.
    Per pair, not per agent: which of the two seeds the other is decided by the join order and
    the election, and flips between runs (one agent's P2P share went from 0.07 to 0.73 between
    two runs without any attacker, while the pair's stayed at 0.38-0.40); the offload bound
    only when not ``upload``. Robust to a loaded machine: one 10-20 s pair varies by more than
    the bound without any attacker (two runs without one, minutes apart at load 28: the pair's
    offload 0.19 and 0.39), so a pair that misses is run once more, side by side again, and the
    bounds apply to the bytes of both pairs pooled.

    The offload bound compares like with like only while the process gets the CPU it asks for:
    the attacker is an agent in the test's own process (in the field it has a machine of its
    own), so on a starved machine every CPU second it spends is taken from the honest pair's
    pure-Python SCTP, and the pair's offload drops for the test's sake (misses seen at load
    18-28). A pooled miss therefore fails unless both runs with the attacker waited for a CPU
    at least STARVED_SHARE of the time they wanted one; then it is printed, not judged. On a
    quiet machine (about 0) the bound holds as before; the upload bound is always judged."""
    if within_bounds(run, without, upload=upload):
        return
    print(f"{attack}: one pair missed (with: {run.figures()}; without: {without.figures()})")
    again_without = await swarm_run(media, None, run_s)
    again = await swarm_run(media, attack, run_s, until_refused_s=until_refused_s)
    run, without = pooled(run, again), pooled(without, again_without)
    figures = f"pooled, with: {run.figures()}; without: {without.figures()}"
    if upload:
        assert run.upload_mean <= 2 * without.upload_mean, figures
    if run.offload < without.offload - 0.10:
        assert run.cpu_denied >= STARVED_SHARE, figures
        print(f"{attack}: offload bound missed on a starved machine, not judged ({figures})")


async def test_request_flood_is_bounded(media: MediaSet) -> None:
    """The flooder (8 requests in flight per link for every segment it hears of, again and
    again, also for segments it announced) is refused BUSY(65535) and penalised for each
    request of a segment it announced (docs/exchange.md 8, step 2), gets each other segment
    whole at most once from each honest agent, and is refused within the run."""
    without = await swarm_run(media, None)
    run = await swarm_run(media, Attack.FLOOD)
    stats = run.stats
    assert stats is not None and stats.flood_requests > 0, stats
    assert sum(a.exchange.server.unfair_refusals for a in run.honest) > 0
    sizes = {s: n for a in run.honest for s, n in a.sizes.items()}
    for (peer, segment), drawn in stats.flood_bytes.items():
        assert drawn <= sizes.get(segment, 0), (peer, segment, drawn, sizes.get(segment))
    assert any(until > 0 or banned for until, banned in map(attacker_subjects, run.honest))
    await bounded_harm(media, Attack.FLOOD, run, without)
    print(f"flood: {run.figures()}; without: {without.figures()}")


async def test_liars_are_penalised_and_refused(media: MediaSet) -> None:
    """HAVE-then-ABSENT, garbage and unknown request ids, each side by side with the run without
    an attacker: each is penalised, refused within the run, and its harm is bounded
    (bounded_harm)."""
    without = await swarm_run(media, None)
    key = f"addr:{ATTACKER}"
    for attack in (Attack.LIAR, Attack.GARBAGE, Attack.UNKNOWN_IDS):
        run = await swarm_run(media, attack)
        stats = run.stats
        assert stats is not None
        # Every kind costs the attacker's address penalty points and a refusal (or a ban) on an
        # honest agent within the run.
        penalised = [
            (a.exchange.reputation.points_of(key, a.now()), *attacker_subjects(a))
            for a in run.honest
        ]
        offences = [
            {o.value: n for o, n in a.exchange.reputation.offences.items()} for a in run.honest
        ]
        context = (attack, penalised, offences, stats)
        print(f"{attack}: {context}")
        assert any(p > 0 or until > 0 or banned for p, until, banned in penalised), context
        assert any(until > 0 or banned for _, until, banned in penalised), context
        assert sum(a.exchange.reputation.refusals for a in run.honest) >= 1, context
        await bounded_harm(media, attack, run, without)
        # Its attempts to come back: closed BANNED at HELLO, or (a peer id already refused)
        # dropped before any handshake.
        comebacks = stats.banned_by_remote + refused_before_handshake(run)
        print(f"{attack}: {run.figures()}; without: {without.figures()}; comebacks {comebacks}")


async def test_half_segment_staller_is_refused_and_bounded(media: MediaSet) -> None:
    """A peer that sends the first half of every segment it serves, then nothing, while its link
    stays busy (HAVE, FETCHING, its own requests), side by side with the same run without it
    (the first STALLER_RUN_S of each): each download it abandons costs it points_abandoned
    (docs/exchange.md 8b: frames of it overtook the silent download, so no lost packet explains
    the silence), two refuse it, the held half is resumed at its end (from the CDN or the other
    honest agent), and the pair's offload stays within 10 points. The run goes on until an
    honest agent refused it (at most STALLER_DEADLINE_S): the refusal is asserted, whatever the
    machine's load; that a second refusal lasts twice as long is shown on the reputation object
    (tests/core/test_reputation.py, vector reputation_refusals_grow.json)."""
    without = await swarm_run(media, None, STALLER_RUN_S)
    run = await swarm_run(media, Attack.STALLER, STALLER_RUN_S, until_refused_s=STALLER_DEADLINE_S)
    stats = run.stats
    assert stats is not None and stats.stalled > 0, stats
    key = f"addr:{ATTACKER}"
    penalised = [
        (a.exchange.reputation.points_of(key, a.now()), *attacker_subjects(a)) for a in run.honest
    ]
    offences = [{o.value: n for o, n in a.exchange.reputation.offences.items()} for a in run.honest]
    context = (penalised, offences, stats, [s["peer_requests"] for s in run.summaries])
    print(f"staller: {run.figures()}; without: {without.figures()}")
    honest_marks = [
        (h, round(a.exchange.reputation.points_of(f"addr:{h}", a.now()), 2), attacker_refused(a))
        for a in run.honest
        for h in HONEST
    ]
    print(f"staller: honest addresses (address, points, attacker refused) {honest_marks}")
    print(f"staller: {context}; comebacks {stats.banned_by_remote + refused_before_handshake(run)}")
    # Refused (or banned) by an honest agent: its address, so any peer id it comes back with.
    assert any(until > 0 or banned for _, until, banned in penalised), context
    assert sum(a.exchange.reputation.refusals for a in run.honest) >= 1, context
    # The offload bound only: a staller is also a viewer that downloads, and the honest pair
    # serving it one copy of each segment may double their upload (1.8x seen), as any third
    # viewer would.
    await bounded_harm(
        media,
        Attack.STALLER,
        run,
        without,
        upload=False,
        run_s=STALLER_RUN_S,
        until_refused_s=STALLER_DEADLINE_S,
    )


async def test_id_rotation_gains_nothing(media: MediaSet) -> None:
    """A corrupter that comes back with a new peer id after each ban, from one address, costs
    each honest viewer at most 2 hash failures over the whole run."""
    async with run_origin(origin_config(), media=media) as origin, signaling() as sig:
        url = origin.url("hls/live-ts/master.m3u8")

        def attacker(round_: int) -> Agent:
            return Agent(config(url, sig.url, ATTACKER, 100 + round_, RUN_S + 2.0))

        rotating = asyncio.create_task(run_rotating(attacker, RUN_S + 2.0))
        await asyncio.sleep(1.0)
        honest = [Agent(config(url, sig.url, a, 2 + i, RUN_S)) for i, a in enumerate(HONEST)]
        charges = [record_charges(agent) for agent in honest]
        tasks = []
        for agent in honest:
            tasks.append(asyncio.create_task(agent.run()))
            await asyncio.sleep(1.0)
        summaries = await asyncio.gather(*tasks)
        rounds = await rotating
    assert len(rounds) >= 2, rounds  # it did rotate
    honest_ids = {agent.peer_id for agent in honest}
    for agent, summary, charged in zip(honest, summaries, charges, strict=True):
        # Per honest viewer and attacker address (docs/exchange.md 8b), whatever the rotations.
        by_address = summary["hash_failures_by_address"]
        assert by_address.get(ATTACKER, 0) <= 2, (by_address, len(rounds))
        # The other honest agent is never banned at once for a failed copy: a copy with several
        # contributors charges only those whose bytes differ from the verified copy, and one it
        # alone supplied (CDN bytes aside) bans it only if it vouched for them
        # (docs/exchange.md 6). An honest relay never vouches for a copy it has not verified
        # (it holds back its last frame), but these segments (about 29 KB) are larger than the
        # relay hold-back (16,375 bytes): their first ~12.7 KB pass on cut-through before its
        # own check, and a downstream that cancelled it and completed from the CDN charges
        # it a failure (not a ban), as the spec says; the other viewer's total bounds those.
        honest_charges = [c for c in charged if c.peer_id in honest_ids]
        assert all(not c.sole and not c.vouched for c in honest_charges), honest_charges
        assert summary["hash_failures"] <= 2, (summary["hash_failures"], agent.penalties.failures)
        assert summary["segments_played"] > 0, summary
    by_viewer = [s["hash_failures_by_address"] for s in summaries]
    print(f"rotation: {len(rounds)} rounds, hash failures by address per viewer {by_viewer}")
    assert any(attacker_subjects(a)[1] for a in honest)  # the address is banned
