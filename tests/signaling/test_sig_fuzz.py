"""Property tests: random input to the parse/validate layer, the service and the registry
raises only typed errors and keeps the registry's invariants."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from signaling.config import SignalingConfig
from signaling.errors import FatalViolation, RuleViolation, SignalingError
from signaling.messages import MessageLimits, parse_message
from signaling.metrics import SignalingMetrics
from signaling.pairing import NO_HINTS, PeerHints
from signaling.registry import ByteTotals, InMemorySwarmRegistry, RegistryLimits
from signaling.service import SignalingService

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors" / "signaling"
VALID = [c["message"] for c in json.loads((VECTORS / "valid.json").read_text())["cases"]]
LIMITS = MessageLimits(max_message_bytes=4096, max_sdp_bytes=512, max_offers_per_announce=3)
KEYS = [
    "action", "info_hash", "peer_id", "numwant", "offers", "offer", "offer_id", "answer",
    "to_peer_id", "event", "left", "position_s", "region", "max_peers", "caps", "connected",
    "bytes_p2p_down", "bytes_p2p_up", "bytes_cdn", "type", "sdp",
]  # fmt: skip

ids = st.sampled_from(["a" * 20, "b" * 20, "\u00ff" * 20, "c" * 19, "\u263a" * 20])
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=30),
    ids,
    st.sampled_from(["announce", "scrape", "stats", "offer", "answer", "started", "stopped"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=6),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=6),
    ),
    max_leaves=30,
)
objects = st.dictionaries(st.sampled_from(KEYS), json_values, max_size=10)


def only_typed_errors(frame: str | bytes) -> None:
    try:
        parse_message(frame, LIMITS)
    except SignalingError as exc:
        assert exc.reason and exc.detail
        assert exc.close_code in (None, 1003, 1009)


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=200), st.binary(max_size=64)))
def test_random_frames(frame: str | bytes) -> None:
    only_typed_errors(frame)


@settings(max_examples=250, deadline=None)
@given(objects)
def test_random_objects(obj: dict[str, Any]) -> None:
    only_typed_errors(json.dumps(obj))


@settings(max_examples=250, deadline=None)
@given(st.sampled_from(VALID), st.sampled_from(KEYS), json_values)
def test_mutated_valid_vectors(base: dict[str, Any], key: str, value: Any) -> None:
    obj = dict(base)
    obj[key] = value
    only_typed_errors(json.dumps(obj))


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=1, max_value=3000))
def test_deep_nesting(depth: int) -> None:
    only_typed_errors("[" * depth + "]" * depth)
    only_typed_errors('{"action":' * depth + "1" + "}" * depth)


conn_ids = st.sampled_from(["c1", "c2", "c3"])
peer_ids = st.sampled_from(["p1" * 10, "p2" * 10, "p3" * 10, "p4" * 10])
swarms = st.sampled_from(["s1" * 10, "s2" * 10, "s3" * 10])
offer_ids = st.sampled_from(["o1", "o2"])
hints = st.one_of(
    st.just(NO_HINTS),
    st.builds(
        PeerHints,
        position_s=st.one_of(st.none(), st.floats(0, 1000)),
        region=st.sampled_from([None, "eu", "us"]),
        max_peers=st.one_of(st.none(), st.integers(0, 3)),
        connected=st.frozensets(peer_ids, max_size=2),
    ),
)
ops = st.one_of(
    st.tuples(
        st.just("announce"), conn_ids, swarms, peer_ids,
        st.sampled_from([None, "started", "stopped", "completed", "update"]),
        st.sampled_from([None, True, False]), hints, st.integers(0, 5),
    ),
    st.tuples(st.just("offer"), swarms, offer_ids, peer_ids, peer_ids),
    st.tuples(st.just("answer"), conn_ids, swarms, peer_ids, peer_ids, offer_ids),
    st.tuples(st.just("stats"), conn_ids, swarms, peer_ids, st.integers(0, 100)),
    st.tuples(st.just("drop"), conn_ids),
    st.tuples(st.just("tick"), st.floats(0, 40)),
)  # fmt: skip


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ops, max_size=60), st.integers(0, 2**32))
def test_registry_random_operations_keep_invariants(
    ops_list: list[tuple[Any, ...]], seed: int
) -> None:
    reg = InMemorySwarmRegistry(
        RegistryLimits(peer_ttl_s=30, offer_ttl_s=10, max_swarms_per_connection=2),
        random.Random(seed),
    )
    now_s = 0.0
    for op in ops_list:
        try:
            if op[0] == "announce":
                _, conn, swarm, peer, event, seeding, hint, want = op
                result = reg.announce(
                    now_s, conn, swarm, peer, event=event, seeding=seeding, hints=hint,
                    want_targets=want,
                )  # fmt: skip
                assert len(result.targets) <= want
                assert all(t.peer_id != peer for t in result.targets)
                assert len({t.peer_id for t in result.targets}) == len(result.targets)
            elif op[0] == "offer":
                reg.record_offer(now_s, op[1], op[2], op[3], op[4])
            elif op[0] == "answer":
                reg.claim_answer(now_s, op[1], op[2], op[3], op[4], op[5])
            elif op[0] == "stats":
                reg.record_stats(now_s, op[1], op[2], op[3], ByteTotals(op[4], op[4], op[4]))
            elif op[0] == "drop":
                reg.drop_connection(op[1])
            else:
                now_s += op[1]
                reg.expire(now_s)
        except RuleViolation:
            pass
        snaps = reg.snapshot(now_s, 100, 100)
        assert reg.swarm_count() == len(snaps)
        assert reg.peer_count() == sum(len(s.peers) for s in snaps)
        for snap in snaps:
            assert snap.peers, "empty swarms are dropped"
            assert snap.counts.complete + snap.counts.incomplete == len(snap.peers)
            for p in snap.peers:
                assert reg.owner_of(p.peer_id) is not None


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(objects.map(json.dumps), st.text(max_size=50)), max_size=20))
def test_service_only_raises_fatal_violations(frames: list[str]) -> None:
    config = SignalingConfig(rate_burst=10_000, max_message_bytes=4096)
    reg = InMemorySwarmRegistry(RegistryLimits(), random.Random(0))
    service = SignalingService(config, reg, SignalingMetrics())
    ctx = service.new_connection("c1", 0.0, None)
    for n, frame in enumerate(frames):
        try:
            sends = service.on_frame(ctx, frame, float(n))
        except FatalViolation:
            continue
        for send in sends:
            json.loads(send.text)
