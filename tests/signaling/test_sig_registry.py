"""Pure registry and pairing tests: synchronous, time passed in, seeded randomness."""

from __future__ import annotations

import random
from typing import Any

import pytest

from signaling.errors import (
    NotInSwarm,
    PeerIdTaken,
    SwarmFull,
    TooManySwarms,
    UnknownOffer,
)
from signaling.pairing import NO_HINTS, PeerHints, Target, choose_offer_targets, choose_targets
from signaling.registry import ByteTotals, InMemorySwarmRegistry, RegistryLimits

H1 = "h" * 20
H2 = "g" * 20


def pid(n: int) -> str:
    return f"peer{n:016d}"


def make(**limits: float) -> InMemorySwarmRegistry:
    return InMemorySwarmRegistry(RegistryLimits(**limits), random.Random(7))  # type: ignore[arg-type]


def join(reg: InMemorySwarmRegistry, n: int, now_s: float = 0.0, info_hash: str = H1, **kw):
    return reg.announce(
        now_s,
        f"c{n}",
        info_hash,
        pid(n),
        event=kw.pop("event", "started"),
        seeding=kw.pop("seeding", None),
        hints=kw.pop("hints", NO_HINTS),
        want_targets=kw.pop("want_targets", 0),
    )


def test_join_counts_and_targets() -> None:
    reg = make()
    r1 = join(reg, 1, want_targets=5)
    assert (r1.counts.complete, r1.counts.incomplete, r1.targets, r1.joined) == (0, 1, (), True)
    join(reg, 2, seeding=True)
    r3 = join(reg, 3, want_targets=5)
    assert r3.counts.complete == 1 and r3.counts.incomplete == 2
    assert {t.peer_id for t in r3.targets} == {pid(1), pid(2)}
    assert {t.conn_id for t in r3.targets} == {"c1", "c2"}
    assert reg.peer_count() == 3 and reg.swarm_count() == 1


def test_reannounce_is_not_a_new_join() -> None:
    reg = make()
    join(reg, 1)
    again = join(reg, 1, now_s=5.0, event=None)
    assert not again.joined and reg.peer_count() == 1


def test_completed_counts_downloaded_once() -> None:
    reg = make()
    join(reg, 1)
    join(reg, 1, event="completed")
    r = join(reg, 1, event="completed")
    assert r.counts.complete == 1 and r.counts.downloaded == 1


def test_peer_id_bound_to_first_connection() -> None:
    reg = make()
    join(reg, 1)
    with pytest.raises(PeerIdTaken):
        reg.announce(
            1.0, "other", H1, pid(1), event=None, seeding=None, hints=NO_HINTS, want_targets=0
        )
    with pytest.raises(PeerIdTaken):  # also in another swarm
        reg.announce(
            1.0, "other", H2, pid(1), event=None, seeding=None, hints=NO_HINTS, want_targets=0
        )


def test_binding_released_when_connection_drops() -> None:
    reg = make()
    join(reg, 1)
    assert reg.drop_connection("c1") == 1
    assert reg.peer_count() == 0 and reg.swarm_count() == 0
    reg.announce(0.0, "new", H1, pid(1), event=None, seeding=None, hints=NO_HINTS, want_targets=0)
    assert reg.owner_of(pid(1)) == "new"


def test_stopped_leaves_swarm() -> None:
    reg = make()
    join(reg, 1)
    join(reg, 2)
    r = join(reg, 1, event="stopped")
    assert r.left and r.counts.incomplete == 1
    assert reg.peer_count() == 1
    join(reg, 2, event="stopped")
    assert reg.swarm_count() == 0


def test_two_swarms_on_one_connection_and_limit() -> None:
    reg = make(max_swarms_per_connection=2)
    join(reg, 1, info_hash=H1)
    join(reg, 1, info_hash=H2)
    assert reg.swarm_count() == 2 and reg.peer_count() == 2
    with pytest.raises(TooManySwarms):
        join(reg, 1, info_hash="f" * 20)


def test_swarm_full() -> None:
    reg = make(max_peers_per_swarm=2)
    join(reg, 1)
    join(reg, 2)
    with pytest.raises(SwarmFull):
        join(reg, 3)


def test_answer_only_for_relayed_offer() -> None:
    reg = make(offer_ttl_s=10.0)
    join(reg, 1)
    join(reg, 2)
    reg.record_offer(0.0, H1, "o1", pid(1), pid(2))
    with pytest.raises(UnknownOffer):  # wrong offer id
        reg.claim_answer(1.0, "c2", H1, pid(2), pid(1), "o2")
    with pytest.raises(UnknownOffer):  # wrong offerer
        reg.claim_answer(1.0, "c2", H1, pid(2), pid(3), "o1")
    with pytest.raises(PeerIdTaken):  # answer sent by someone else's connection
        reg.claim_answer(1.0, "c1", H1, pid(2), pid(1), "o1")
    target = reg.claim_answer(1.0, "c2", H1, pid(2), pid(1), "o1")
    assert (target.peer_id, target.conn_id) == (pid(1), "c1")
    with pytest.raises(UnknownOffer):  # only once
        reg.claim_answer(1.0, "c2", H1, pid(2), pid(1), "o1")


def test_answer_after_offer_ttl_is_rejected_and_swept() -> None:
    reg = make(offer_ttl_s=10.0)
    join(reg, 1)
    join(reg, 2)
    reg.record_offer(0.0, H1, "o1", pid(1), pid(2))
    with pytest.raises(UnknownOffer):
        reg.claim_answer(10.0, "c2", H1, pid(2), pid(1), "o1")
    reg.record_offer(0.0, H1, "o2", pid(1), pid(2))
    assert reg.pending_offer_count() == 1
    assert reg.expire(11.0).offers == 1
    assert reg.pending_offer_count() == 0


def test_peers_expire_without_reannounce() -> None:
    reg = make(peer_ttl_s=30.0)
    join(reg, 1, now_s=0.0)
    join(reg, 2, now_s=0.0)
    join(reg, 1, now_s=20.0, event=None)  # re-announce keeps peer 1
    gone = reg.expire(31.0)
    assert gone.peers == ((H1, pid(2)),)
    assert reg.peer_count() == 1
    assert reg.expire(49.0).peers == ()
    assert reg.expire(50.5).peers == ((H1, pid(1)),)
    assert reg.swarm_count() == 0


def test_stats_sum_per_swarm_and_survive_departures() -> None:
    reg = make()
    join(reg, 1)
    join(reg, 2)
    reg.record_stats(0.0, "c1", H1, pid(1), ByteTotals(100, 10, 50))
    reg.record_stats(0.0, "c2", H1, pid(2), ByteTotals(5, 95, 200))
    reg.record_stats(1.0, "c1", H1, pid(1), ByteTotals(150, 20, 60))
    (snap,) = reg.snapshot(1.0, 10, 10)
    assert snap.bytes == ByteTotals(155, 115, 260)
    join(reg, 2, event="stopped")
    (snap,) = reg.snapshot(1.0, 10, 10)
    assert snap.bytes == ByteTotals(155, 115, 260)
    reg.record_stats(2.0, "c1", H1, pid(1), ByteTotals(1, 1, 1))  # client restarted counters
    (snap,) = reg.snapshot(2.0, 10, 10)
    assert snap.bytes == ByteTotals(156, 116, 261)
    with pytest.raises(NotInSwarm):
        reg.record_stats(2.0, "c1", H2, pid(1), ByteTotals(1, 1, 1))
    with pytest.raises(PeerIdTaken):
        reg.record_stats(2.0, "c9", H1, pid(1), ByteTotals(1, 1, 1))


def test_targets_skip_own_connection_and_put_paired_peers_last() -> None:
    reg = make()
    join(reg, 1)
    join(reg, 2)
    reg.announce(0.0, "c2", H2, pid(5), event=None, seeding=None, hints=NO_HINTS, want_targets=0)
    reg.announce(0.0, "c2", H1, pid(6), event=None, seeding=None, hints=NO_HINTS, want_targets=0)
    reg.record_offer(0.0, H1, "o", pid(2), pid(1))
    reg.claim_answer(0.0, "c1", H1, pid(1), pid(2), "o")
    r = join(reg, 2, event=None, want_targets=5)
    assert [t.peer_id for t in r.targets] == [pid(1)]  # paired, but nobody else (6 is on c2)
    join(reg, 3)
    r = join(reg, 2, event=None, want_targets=1)
    assert [t.peer_id for t in r.targets] == [pid(3)]
    r = join(reg, 2, event=None, want_targets=5)
    assert [t.peer_id for t in r.targets] == [pid(3), pid(1)]


def test_seeded_random_pairing_is_deterministic() -> None:
    def run() -> list[str]:
        reg = make()
        for n in range(50):
            join(reg, n)
        return [t.peer_id for t in join(reg, 99, want_targets=5).targets]

    first = run()
    assert first == run() and len(set(first)) == 5


class C:
    def __init__(self, peer_id: str, hints: PeerHints = NO_HINTS) -> None:
        self.peer_id = peer_id
        self.hints = hints
        self.paired: set[str] = set()


def test_pairing_prefers_close_playback_positions() -> None:
    cands = [C(pid(n), PeerHints(position_s=float(n * 10))) for n in range(20)]
    me = PeerHints(position_s=101.0)
    got = choose_targets("me", me, set(), cands, 3, random.Random(1))
    assert set(got) == {pid(10)} | set(got) and pid(10) in got
    assert all(abs(int(p[4:]) * 10 - 101) <= 30 for p in got)


def test_pairing_prefers_region_then_skips_full_and_connected() -> None:
    cands = [
        C("eu-near", PeerHints(position_s=10.0, region="eu")),
        C("us-near", PeerHints(position_s=10.0, region="us")),
        C(
            "eu-full",
            PeerHints(position_s=10.0, region="eu", max_peers=1, connected=frozenset({"x"})),
        ),
        C("eu-linked", PeerHints(position_s=10.0, region="eu", connected=frozenset({"me"}))),
        C("eu-far", PeerHints(position_s=500.0, region="eu")),
        C("plain"),
    ]
    me = PeerHints(position_s=12.0, region="eu")
    got = choose_targets("me", me, set(), cands, 10, random.Random(1))
    assert got[0] == "eu-near"
    assert "eu-full" not in got and "eu-linked" not in got
    assert got.index("eu-far") < got.index("us-near")
    paired_first = choose_targets("me", me, {"eu-near"}, cands, 10, random.Random(1))
    assert paired_first[-1] == "eu-near"


def test_pairing_does_not_prefer_spare_capacity() -> None:
    # Preferring free slots chained the overlay by join time (issue 15): both are drawn.
    cands = [
        C("busy", PeerHints(position_s=10.0, max_peers=10, connected=frozenset({"a", "b"}))),
        C("idle", PeerHints(position_s=10.0, max_peers=10)),
    ]
    got = {
        choose_targets("me", PeerHints(position_s=10.0), set(), cands, 1, random.Random(seed))[0]
        for seed in range(20)
    }
    assert got == {"busy", "idle"}


SPLIT = ("split",)


def full(peer_id: str, *linked: str, caps: tuple[str, ...] = SPLIT) -> C:
    return C(peer_id, PeerHints(max_peers=len(linked), caps=caps, connected=frozenset(linked)))


def split_pool(*cands: C) -> tuple[list[C], Any]:
    by_id = {c.peer_id: c for c in cands}
    return list(cands), by_id.get


def test_pairing_splits_a_link_of_full_members_that_can_make_room() -> None:
    cands, lookup = split_pool(full("A", "B", "X"), full("B", "A", "Y"))
    me = PeerHints(max_peers=8)
    got = choose_offer_targets("me", me, set(), cands, 3, random.Random(1), lookup=lookup)
    assert sorted(got) == [Target("A", drop="B"), Target("B", drop="A")]


def test_pairing_split_needs_two_offers_a_mutual_link_and_both_capable() -> None:
    me = PeerHints(max_peers=8)
    cands, lookup = split_pool(full("A", "B"), full("B", "A"))
    assert choose_offer_targets("me", me, set(), cands, 1, random.Random(1), lookup=lookup) == []
    # B does not report A: the link is not agreed on, no split.
    cands, lookup = split_pool(full("A", "B"), full("B", "Z"))
    assert choose_offer_targets("me", me, set(), cands, 4, random.Random(1), lookup=lookup) == []
    # B cannot make room (no "split" capability): skipped like any full member.
    cands, lookup = split_pool(full("A", "B"), full("B", "A", caps=()))
    assert choose_offer_targets("me", me, set(), cands, 4, random.Random(1), lookup=lookup) == []
    # The offerer is already linked to B: splitting A-B would double it.
    cands, lookup = split_pool(full("A", "B"), full("B", "A", "me"))
    assert choose_offer_targets("me", me, set(), cands, 4, random.Random(1), lookup=lookup) == []


def test_pairing_never_splits_for_standard_clients_or_without_lookup() -> None:
    cands, lookup = split_pool(full("A", "B"), full("B", "A"), C("plain"))
    # A standard client (no hints) is paired as before: full members skipped.
    got = choose_offer_targets("me", NO_HINTS, set(), cands, 5, random.Random(1), lookup=lookup)
    assert got == [Target("plain")]
    assert choose_targets("me", PeerHints(max_peers=8), set(), cands, 5, random.Random(1)) == [
        "plain"
    ]


def test_pairing_splits_at_most_two_links_per_announce() -> None:
    pairs = [(f"A{n}", f"B{n}") for n in range(5)]
    cands, lookup = split_pool(*[full(a, b) for a, b in pairs], *[full(b, a) for a, b in pairs])
    me = PeerHints(max_peers=8)
    got = choose_offer_targets("me", me, set(), cands, 5, random.Random(1), lookup=lookup)
    assert len(got) == 4 and all(t.drop is not None for t in got)
    assert len({t.peer_id for t in got}) == 4


def test_registry_relays_split_offers_with_drop() -> None:
    reg = make()
    full_hints = {
        1: PeerHints(max_peers=1, caps=SPLIT, connected=frozenset({pid(2)})),
        2: PeerHints(max_peers=1, caps=SPLIT, connected=frozenset({pid(1)})),
    }
    for n, hints in full_hints.items():
        join(reg, n, hints=hints)
    r = join(reg, 3, hints=PeerHints(max_peers=8), want_targets=3)
    assert sorted((t.peer_id, t.drop) for t in r.targets) == [(pid(1), pid(2)), (pid(2), pid(1))]


def test_pairing_random_for_standard_clients_and_sampling() -> None:
    cands = [C(pid(n)) for n in range(1000)]
    got = choose_targets("me", NO_HINTS, set(), cands, 5, random.Random(5), sample_limit=64)
    assert len(set(got)) == 5
    other = choose_targets("me", NO_HINTS, set(), cands, 5, random.Random(6), sample_limit=64)
    assert got != other


class CountingPool:
    """A pool of candidates that counts how many it was asked for (a pure-unit-test fake)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.read = 0

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> C:
        if not 0 <= index < self.size:
            raise IndexError(index)
        self.read += 1
        return C(pid(index), PeerHints(position_s=float(index % 600)))


def test_pairing_reads_a_sample_not_the_swarm() -> None:
    pool = CountingPool(100_000)
    got = choose_targets(
        "me", PeerHints(position_s=42.0), set(), pool, 5, random.Random(1), sample_limit=64
    )
    assert len(set(got)) == 5
    assert pool.read == 64
    # The preferences still rank the sample: the closest positions of the sample win.
    assert all(abs(int(p[4:]) % 600 - 42) < 200 for p in got)


def test_pairing_skips_excluded_and_repeated_peer_ids() -> None:
    cands = [C(pid(1)), C(pid(2)), C(pid(2)), C(pid(3))]
    got = choose_targets("me", NO_HINTS, set(), cands, 10, random.Random(1), exclude={pid(3)})
    assert sorted(got) == [pid(1), pid(2)]


def test_registry_pairing_cost_does_not_grow_with_the_swarm() -> None:
    reg = make(pairing_sample_limit=32)
    for n in range(3000):
        join(reg, n)
    before = reg.pairing_candidates_read
    result = join(reg, 5000, want_targets=5)
    assert len({t.peer_id for t in result.targets}) == 5
    assert reg.pairing_candidates_read - before == 32
    # Removal keeps the sampling list consistent: every member is still reachable.
    for n in range(0, 3000, 2):
        join(reg, n, event="stopped")
    small = make()
    for n in range(3):
        join(small, n)
    join(small, 1, event="stopped")
    targets = {t.peer_id for t in join(small, 9, want_targets=5).targets}
    assert targets == {pid(0), pid(2)}
    assert {t.peer_id for t in join(reg, 7001, want_targets=40).targets} <= {
        pid(n) for n in range(1, 3000, 2)
    } | {pid(5000)}


def test_counts_follow_seeding_changes_without_a_scan() -> None:
    reg = make()
    join(reg, 1, seeding=True)
    join(reg, 2)
    join(reg, 3, event="completed")
    counts = reg.scrape([H1])[H1]
    assert (counts.complete, counts.incomplete, counts.downloaded) == (2, 1, 1)
    join(reg, 1, event=None, seeding=False)
    join(reg, 3, event="stopped")
    counts = reg.scrape([H1])[H1]
    assert (counts.complete, counts.incomplete) == (0, 2)


def test_swarm_full_refusal_names_the_limit() -> None:
    reg = make(max_peers_per_swarm=2)
    join(reg, 1)
    join(reg, 2)
    with pytest.raises(SwarmFull, match="max_peers_per_swarm = 2"):
        join(reg, 3)
    assert reg.peer_count() == 2
    join(reg, 2, event="stopped")
    join(reg, 3)  # room again
