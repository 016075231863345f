"""Pure parts of the agent: integrity verdicts and penalties, the upload token bucket, and the
scheduler view (built as the simulator builds it)."""

from __future__ import annotations

import hashlib
import json

import pytest

from peer_agent.agent import intake
from peer_agent.agent.config import AgentConfig
from peer_agent.agent.integrity import (
    IntegrityConfig,
    Manifest,
    Penalties,
    Verdict,
    parse_manifest,
)
from peer_agent.agent.playlist import ByteRange, SegmentInfo
from peer_agent.agent.swarm_setup import fan_out_config, uplink_claim
from peer_agent.core.exchange_uploads import TokenBucket
from peer_agent.core.ids import SegmentId


def info(key: str = "seg-1.ts", byte_range: ByteRange | None = None) -> SegmentInfo:
    return SegmentInfo(
        SegmentId(0, 1), f"http://o/hls/s/lo/{key}", key, byte_range, 1.0, 0.0, False, None
    )


def test_manifest_matches_the_canonical_key_only() -> None:
    data = b"segment bytes"
    digest = hashlib.sha256(data).hexdigest()
    manifest = Manifest("http://o/hls/s/lo/manifest.json")
    manifest.update(json.dumps({"seg-1.ts": digest.upper(), "bogus": "xyz"}))
    assert manifest.mode == "sha256"
    assert manifest.verify(info(), data) is Verdict.OK
    assert manifest.verify(info(), data + b"!") is Verdict.MISMATCH
    assert manifest.verify(info("seg-2.ts"), data) is Verdict.UNKNOWN
    assert "bogus" not in parse_manifest(json.dumps({"bogus": "xyz"}))
    # Keyed by absolute URL or path, not as the playlist writes it: not found.
    other = Manifest("http://o/hls/s/lo/manifest.json")
    other.update(json.dumps({"http://o/hls/s/lo/seg-1.ts": digest, "/hls/s/lo/seg-1.ts": digest}))
    assert other.verify(info(), data) is Verdict.UNKNOWN


def test_byte_range_segments_are_keyed_uri_hash_range() -> None:
    data = b"x" * 100
    manifest = Manifest("http://o/hls/s/lo/manifest.json")
    manifest.update(json.dumps({"stream.ts#200-299": hashlib.sha256(data).hexdigest()}))
    assert manifest.verify(info("stream.ts", ByteRange(200, 100)), data) is Verdict.OK
    assert manifest.verify(info("stream.ts", ByteRange(300, 100)), data) is Verdict.UNKNOWN


def test_size_only_mode_checks_sizes() -> None:
    manifest = Manifest(None)
    assert manifest.mode == "size-only"
    assert manifest.verify(info("s.ts", ByteRange(0, 3)), b"abc") is Verdict.OK
    assert manifest.verify(info("s.ts", ByteRange(0, 3)), b"ab") is Verdict.MISMATCH
    assert manifest.verify(info(), b"abc", expected_size=4) is Verdict.MISMATCH
    assert manifest.verify(info(), b"abc") is Verdict.UNKNOWN


def test_penalties_ban_repeat_offenders() -> None:
    penalties = Penalties(IntegrityConfig(ban_after_failures=2, penalty_s=5.0))
    assert not penalties.record("p", now=10.0)
    assert penalties.blocked_until("p") == 15.0 and not penalties.is_banned("p")
    assert penalties.record("p", now=11.0)  # the second offence bans
    assert penalties.is_banned("p") and penalties.blocked_until("p") == float("inf")
    assert not penalties.record("p", now=12.0)  # banned once only


def test_token_bucket_caps_the_rate() -> None:
    bucket = TokenBucket(1000.0, now=0.0, burst_bytes=500)
    assert bucket.take(800, now=0.0) == 500
    assert bucket.take(800, now=0.0) == 0
    assert bucket.ready_at(300, now=0.0) == pytest.approx(0.3)
    assert bucket.take(800, now=0.3) == 300
    assert bucket.take(10_000, now=100.0) == 500  # never more than the burst
    free = TokenBucket(None, now=0.0)
    assert free.take(10**9, now=0.0) == 10**9 and free.ready_at(5, 1.0) == 1.0
    with pytest.raises(ValueError):
        TokenBucket(0.0, now=0.0)


def test_uplink_claim_is_zero_when_leech_only_else_the_cap() -> None:
    """docs/signaling.md, "Fetcher assignment": a leech-only agent claims uplink:0 (never
    picked); otherwise the tracker config's own claim, else the upload cap (clamped to the 12
    digits the tracker accepts), else none."""
    url = "http://127.0.0.1:1/live.m3u8"
    assert uplink_claim(AgentConfig(url), None) is None
    assert uplink_claim(AgentConfig(url, leech_only=True), 10**6) == 0
    assert uplink_claim(AgentConfig(url, upload_cap_bytes_per_s=312_500.7), None) == 312_500
    assert uplink_claim(AgentConfig(url, upload_cap_bytes_per_s=312_500.0), 10**6) == 10**6
    assert uplink_claim(AgentConfig(url, upload_cap_bytes_per_s=1e15), None) == 10**12 - 1


def test_an_upload_cap_below_the_bitrate_joins_leech_only() -> None:
    """docs/scheduling.md, "Upload fan-out": a cap that cannot feed one upload at the
    rendition's bitrate makes the swarm config leech-only (HELLO flag, uplink:0 claim)."""
    url = "http://127.0.0.1:1/live.m3u8"
    low = AgentConfig(url, upload_cap_bytes_per_s=125_000.0)
    assert fan_out_config(low, 2_000_000).leech_only
    assert uplink_claim(fan_out_config(low, 2_000_000), None) == 0
    assert fan_out_config(low, 1_000_000) is low  # exactly one upload's worth
    assert fan_out_config(low, None) is low  # bitrate unknown
    assert fan_out_config(low, 0) is low
    free = AgentConfig(url)
    assert fan_out_config(free, 2_000_000) is free  # no cap: unchanged


async def test_check_waits_for_a_manifest_refresh_only_when_given_one() -> None:
    """An unlisted segment is checked again after a refresh (peer bytes), and once more after a
    fresh one when the first answer was shared (it may predate the segment); without a refresh
    (the CDN's bytes, trusted unlisted) the verdict comes at once, and a listed segment is
    checked either way."""
    data = b"segment bytes"
    manifest = Manifest("http://o/hls/s/lo/manifest.json")
    manifest.update(json.dumps({"seg-1.ts": hashlib.sha256(b"other").hexdigest()}))
    refreshed: list[tuple[int, bool]] = []
    own = False

    async def refresh(msn: int, fresh: bool) -> bool:
        refreshed.append((msn, fresh))
        if fresh:  # only the answer to a request sent after the shared one lists it
            manifest.update(json.dumps({"seg-2.ts": hashlib.sha256(data).hexdigest()}))
        return own

    assert await intake.check(manifest, info("seg-2.ts"), data, len(data), None) is Verdict.UNKNOWN
    assert refreshed == []
    assert await intake.check(manifest, info("seg-2.ts"), data, len(data), refresh) is Verdict.OK
    assert refreshed == [(1, False), (1, True)]
    own = True  # the check's own request did not list it: unknown, no second request
    refreshed.clear()
    verdict = await intake.check(manifest, info("seg-3.ts"), data, len(data), refresh)
    assert verdict is Verdict.UNKNOWN
    assert refreshed == [(1, False)]
    assert await intake.check(manifest, info(), data, len(data), None) is Verdict.MISMATCH
