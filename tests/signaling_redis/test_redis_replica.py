"""Pure tests (no Redis): the replica of other processes' members, and the registry's rules
applied to them: same pairing, limits, bindings and counts as with one process."""

from __future__ import annotations

import random

import pytest

from signaling.cli import config_from_args, main
from signaling.errors import PeerIdTaken, SwarmFull, UnknownOffer
from signaling.pairing import NO_HINTS, PeerHints
from signaling.registry import InMemorySwarmRegistry, RegistryLimits
from signaling.replica import (
    BadRecord,
    ByteTotals,
    PeerRecord,
    RemoteMembers,
    decode_record,
    encode_record,
    node_of,
)

H = "h" * 20
NODE_B = "bbbbbbbbbbbb"


def rec(peer: str, conn: str = f"{NODE_B}-1", **kw: object) -> PeerRecord:
    fields: dict[str, object] = {
        "info_hash": H, "peer_id": peer, "conn_id": conn, "seeding": False,
        "hints": NO_HINTS, "bytes": ByteTotals(),
    }  # fmt: skip
    fields.update(kw)
    return PeerRecord(**fields)  # type: ignore[arg-type]


def make(**limits: float) -> tuple[InMemorySwarmRegistry, RemoteMembers]:
    remote = RemoteMembers(peer_ttl_s=300.0)
    reg = InMemorySwarmRegistry(
        RegistryLimits(**limits),  # type: ignore[arg-type]
        random.Random(3),
        remote=remote,
        track_changes=True,
    )
    return reg, remote


def announce(reg: InMemorySwarmRegistry, conn: str, peer: str, want: int = 0, **kw: object):  # type: ignore[no-untyped-def]
    return reg.announce(
        0.0, conn, H, peer, event=None, seeding=kw.get("seeding"),  # type: ignore[arg-type]
        hints=kw.get("hints", NO_HINTS), want_targets=want,  # type: ignore[arg-type]
    )  # fmt: skip


def test_record_round_trip_and_bad_records() -> None:
    hints = PeerHints(12.5, "eu-west", 8, ("webrtc",), frozenset({"\u00ff" * 20}))
    r = rec("\u00e9" * 20, seeding=True, hints=hints, bytes=ByteTotals(1, 2, 3),
            swarm_downloaded=4, swarm_retired=ByteTotals(5, 6, 7))  # fmt: skip
    assert decode_record(encode_record(r)) == r
    for bad in ("", "[]", '{"ih": 1}', '{"ih":"a","p":"b","c":"c","s":0,"b":[1,2]}'):
        with pytest.raises(BadRecord):
            decode_record(bad)
    assert node_of("abc123-17") == "abc123"


def test_remote_members_pair_and_count_like_local_ones() -> None:
    reg, remote = make()
    announce(reg, "aaaa-1", "local-a" + "-" * 13)
    remote.upsert(0.0, NODE_B, rec("remote-b" + "-" * 12, seeding=True))
    result = announce(reg, "aaaa-2", "local-c" + "-" * 13, want=5)
    assert (result.counts.complete, result.counts.incomplete) == (1, 2)
    assert {t.peer_id[:8] for t in result.targets} == {"local-a-", "remote-b"}
    assert {t.conn_id for t in result.targets} == {"aaaa-1", f"{NODE_B}-1"}
    assert reg.peer_count() == 3 and reg.local_peer_count() == 2
    assert reg.swarm_count() == 1


def test_remote_members_ranked_by_the_same_hints() -> None:
    reg, remote = make()
    near = rec("near" + "-" * 16, conn=f"{NODE_B}-1", hints=PeerHints(position_s=100.0))
    far = rec("far-" + "-" * 16, conn=f"{NODE_B}-2", hints=PeerHints(position_s=900.0))
    busy = PeerHints(position_s=100.0, max_peers=1, connected=frozenset({"x" * 20}))
    full = rec("full" + "-" * 16, conn=f"{NODE_B}-3", hints=busy)
    for r in (far, near, full):
        remote.upsert(0.0, NODE_B, r)
    result = announce(reg, "aaaa-1", "me" + "-" * 18, want=1, hints=PeerHints(position_s=101.0))
    assert [t.peer_id for t in result.targets] == [near.peer_id]
    result = announce(reg, "aaaa-1", "me" + "-" * 18, want=5, hints=PeerHints(position_s=101.0))
    assert [t.peer_id for t in result.targets] == [near.peer_id, far.peer_id]  # full skipped


def test_limits_and_bindings_include_remote_members() -> None:
    reg, remote = make(max_peers_per_swarm=2)
    remote.upsert(0.0, NODE_B, rec("taken" + "-" * 15))
    with pytest.raises(PeerIdTaken):
        announce(reg, "aaaa-1", "taken" + "-" * 15)
    announce(reg, "aaaa-1", "mine" + "-" * 16)
    with pytest.raises(SwarmFull):
        announce(reg, "aaaa-2", "third" + "-" * 15)
    # a peer_id taken over (its process died) can bind here once forgotten
    assert remote.forget_peer_id("taken" + "-" * 15) == 1
    announce(reg, "aaaa-2", "taken" + "-" * 15)


def test_answers_to_remote_offerers_and_offers_recorded_on_arrival() -> None:
    reg, remote = make()
    offerer = "offerer" + "-" * 13
    remote.upsert(0.0, NODE_B, rec(offerer))
    me = "answerer" + "-" * 12
    announce(reg, "aaaa-1", me)
    with pytest.raises(UnknownOffer):  # never relayed to me
        reg.claim_answer(1.0, "aaaa-1", H, me, offerer, "o1")
    reg.record_offer(1.0, H, "o1", offerer, me)  # what the service does on arrival
    target = reg.claim_answer(2.0, "aaaa-1", H, me, offerer, "o1")
    assert target.conn_id == f"{NODE_B}-1"
    with pytest.raises(UnknownOffer):  # once
        reg.claim_answer(2.0, "aaaa-1", H, me, offerer, "o1")
    remote.drop_node(NODE_B)
    reg.record_offer(3.0, H, "o2", offerer, me)
    with pytest.raises(UnknownOffer):  # the offerer's process died
        reg.claim_answer(3.0, "aaaa-1", H, me, offerer, "o2")


def test_remote_expiry_node_loss_and_aggregates() -> None:
    reg, remote = make()
    remote.upsert(0.0, NODE_B, rec("b1" + "-" * 18, swarm_downloaded=2,
                                   swarm_retired=ByteTotals(10, 0, 5)))  # fmt: skip
    remote.upsert(50.0, "cccccccccccc", rec("c1" + "-" * 18, conn="cccccccccccc-1"))
    assert reg.scrape([H])[H].downloaded == 2
    snap = reg.snapshot(60.0, 10, 10)[0]
    assert snap.bytes == ByteTotals(10, 0, 5) and len(snap.peers) == 2
    reg.expire(320.0)  # past peer_ttl_s for b1 only
    assert remote.peer_count() == 1 and reg.scrape([H])[H].downloaded == 0
    assert remote.drop_node("cccccccccccc") == 1
    assert reg.peer_count() == 0 and reg.swarm_count() == 0


def test_change_log_lists_what_to_publish() -> None:
    reg, _ = make()
    announce(reg, "aaaa-1", "p1" + "-" * 18)
    announce(reg, "aaaa-1", "p1" + "-" * 18, seeding=True)
    changes = reg.drain_changes()
    assert [(c.kind, c.peer_id[:2]) for c in changes] == [("up", "p1")]
    assert changes[0].record is not None and changes[0].record.seeding
    assert reg.drain_changes() == []
    reg.drop_connection("aaaa-1")
    kinds = [(c.kind, c.conn_id) for c in reg.drain_changes()]
    assert kinds == [("down", "aaaa-1"), ("unbind", "aaaa-1")]


def test_in_memory_registry_logs_nothing() -> None:
    reg = InMemorySwarmRegistry(RegistryLimits(), random.Random(1))
    announce(reg, "c-1", "p" * 20)
    assert reg.drain_changes() == []


def test_redis_url_flag_and_environment() -> None:
    assert config_from_args([], {}).redis_url is None
    env = {"P2P_SIGNALING_REDIS_URL": "redis://10.0.0.5:6379/2"}
    assert config_from_args([], env).redis_url == "redis://10.0.0.5:6379/2"
    config = config_from_args(["--redis-url", "redis://h:1/0"], env)
    assert config.redis_url == "redis://h:1/0"
    assert "redis://" not in repr(config)  # may hold a password
    assert main(["--redis-url", "http://nope"], env={}) == 2
    assert main(["--node-ttl-s", "1", "--heartbeat-interval-s", "2"], env={}) == 2


def test_pairing_samples_remote_members_by_position() -> None:
    reg, remote = make(pairing_sample_limit=16)
    for n in range(400):
        remote.upsert(0.0, NODE_B, rec(f"remote-{n:013d}", conn=f"{NODE_B}-{n}"))
    for n in range(0, 400, 3):  # swap-removal keeps the sampling list consistent
        assert remote.remove(NODE_B, H, f"remote-{n:013d}")
    remote.upsert(0.0, NODE_B, rec("remote-0000000000001", conn=f"{NODE_B}-1", seeding=True))
    assert sorted(p.peer_id for p in remote.sequence(H)) == sorted(
        p.peer_id for p in remote.members(H)
    )
    assert [p.slot for p in remote.sequence(H)] == list(range(remote.size(H)))
    before = reg.pairing_candidates_read
    result = announce(reg, "aaaaaaaaaaaa-1", "local-00000000000001", want=5)
    assert reg.pairing_candidates_read - before == 16
    assert len(result.targets) == 5
    for target in result.targets:
        n = int(target.peer_id.rsplit("-", 1)[1])
        assert n % 3 != 0 and target.conn_id == f"{NODE_B}-{n}"
