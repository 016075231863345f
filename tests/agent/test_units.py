"""Pure parts of the agent: integrity verdicts and penalties, the upload token bucket, and the
scheduler view (built as the simulator builds it)."""

from __future__ import annotations

import hashlib
import json

import pytest

from peer_agent.agent import Agent, AgentConfig
from peer_agent.agent.integrity import (
    IntegrityConfig,
    Manifest,
    Penalties,
    Verdict,
    parse_manifest,
)
from peer_agent.agent.playlist import ByteRange, SegmentInfo, Timeline, parse_media
from peer_agent.agent.state import Held, Neighbour, Transfer
from peer_agent.agent.view import build_view
from peer_agent.core.config import PlaybackConfig
from peer_agent.core.exchange_uploads import TokenBucket
from peer_agent.core.ids import SegmentId
from peer_agent.core.playback import PlaybackModel


def info(key: str = "seg-1.ts", byte_range: ByteRange | None = None) -> SegmentInfo:
    return SegmentInfo(
        SegmentId(0, 1), f"http://o/hls/s/lo/{key}", key, byte_range, 1.0, 0.0, False, None
    )


def test_manifest_matches_keys_as_written_absolute_or_by_name() -> None:
    data = b"segment bytes"
    digest = hashlib.sha256(data).hexdigest()
    manifest = Manifest("http://o/hls/s/lo/manifest.json")
    manifest.update(json.dumps({"seg-1.ts": digest.upper(), "bogus": "xyz"}))
    assert manifest.mode == "sha256"
    assert manifest.verify(info(), data) is Verdict.OK
    assert manifest.verify(info(), data + b"!") is Verdict.MISMATCH
    assert manifest.verify(info("seg-2.ts"), data) is Verdict.UNKNOWN
    assert "bogus" not in parse_manifest(json.dumps({"bogus": "xyz"}))


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


PLAYLIST = "#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n" + "".join(
    f"#EXTINF:2.0,\nseg-{n}.ts\n" for n in range(6)
)


def test_view_is_built_like_the_simulators() -> None:
    agent = Agent(AgentConfig("http://o/x.m3u8"), peer_id="-PH0001-000000000000")
    agent.timeline = Timeline(0)
    agent.timeline.update(parse_media(PLAYLIST, "http://o/x.m3u8"), now=1.0)
    agent.player = PlaybackModel(PlaybackConfig(), 4.0, now=1.0)
    s = [SegmentId(0, n) for n in range(6)]
    agent.verified.add(s[2])
    agent.sizes[s[3]] = 1234
    agent.held[s[4]] = Held(bytearray(b"abc"), total=9000, contributors={None})
    agent.avoid[s[4]] = frozenset({"bad"})
    agent.transfers[s[4]] = Transfer(s[4], None, started_at=1.5, offset=0, received=3)
    agent.transfers[s[5]] = Transfer(s[5], "peer-a", 1.6, 0, verifying=True)
    agent.neighbours["peer-a"] = Neighbour("peer-a", have={s[3]}, open=True)
    agent.neighbours["peer-b"] = Neighbour("peer-b", open=False)
    agent.penalties.record("peer-a", now=1.0)
    view = build_view(agent, now=2.0)
    # Behind the playhead (0, 1) and held (2) are left out; 3..5 remain.
    assert [v.segment for v in view.segments] == s[3:]
    by_id = {v.segment: v for v in view.segments}
    assert by_id[s[3]].size_bytes == 1234 and by_id[s[3]].known_since == 1.0
    assert by_id[s[4]].partial_bytes == 3 and by_id[s[4]].avoid == {"bad"}
    assert view.playhead_s == 4.0 and s[2] in view.have
    transfers = {t.segment: t for t in view.transfers}
    assert transfers[s[4]].peer_id is None and transfers[s[4]].total_bytes == 9000
    assert transfers[s[5]].peer_id is None  # being verified: nothing left to decide
    (peer,) = view.peers  # closed neighbours are not offered
    assert peer.peer_id == "peer-a" and peer.choked_until >= 1.0 + 10.0
