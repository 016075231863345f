"""The CDN fetcher against a real local HTTP server: 5xx, truncation, timeout, Range resume."""

from __future__ import annotations

import pytest

from peer_agent.agent.cdn import CdnConfig, CdnError, CdnFetcher
from peer_agent.agent.playlist import ByteRange
from tests.agent.fakes import SynthStream, build_app, serve

FAST = CdnConfig(read_timeout_s=0.5, backoff_base_s=0.01, backoff_max_s=0.05, max_attempts=4)


@pytest.fixture
async def origin():
    stream = SynthStream(live=False, vod_segments=4, segment_bytes=100_000)
    async with serve(build_app(stream)) as base:
        yield stream, base + "/live/"


async def test_plain_fetch_reports_chunks_in_order(origin) -> None:
    stream, base = origin
    fetcher = CdnFetcher(FAST)
    pieces: list[tuple[int, int]] = []
    totals: list[int] = []
    result = await fetcher.fetch(
        base + "seg1.ts", on_chunk=lambda o, d: pieces.append((o, len(d))), on_total=totals.append
    )
    await fetcher.aclose()
    assert result.data == stream.data(1) and result.attempts == 1
    assert totals == [len(result.data)]
    pos = 0
    for offset, size in pieces:
        assert offset == pos
        pos += size
    assert pos == len(result.data)


async def test_5xx_is_retried(origin) -> None:
    stream, base = origin
    stream.faults.fail_next = 2
    fetcher = CdnFetcher(FAST)
    result = await fetcher.fetch(base + "seg0.ts")
    await fetcher.aclose()
    assert result.data == stream.data(0) and result.attempts == 3 and fetcher.retries == 2


async def test_persistent_5xx_gives_up(origin) -> None:
    stream, base = origin
    stream.faults.fail_next = 10
    fetcher = CdnFetcher(FAST)
    with pytest.raises(CdnError):
        await fetcher.fetch(base + "seg0.ts")
    await fetcher.aclose()
    assert stream.requests["seg0.ts"] == FAST.max_attempts


async def test_404_is_not_retried(origin) -> None:
    stream, base = origin
    fetcher = CdnFetcher(FAST)
    with pytest.raises(CdnError) as info:
        await fetcher.fetch(base + "seg99.ts")
    await fetcher.aclose()
    assert info.value.status == 404 and stream.requests["seg99.ts"] == 1


async def test_truncated_body_resumes_with_range(origin) -> None:
    stream, base = origin
    stream.faults.truncate_next = 1
    stream.faults.truncate_at = 30_000
    fetcher = CdnFetcher(FAST)
    result = await fetcher.fetch(base + "seg2.ts")
    await fetcher.aclose()
    data = stream.data(2)
    assert result.data == data and result.attempts == 2
    # The second attempt asked only for the rest: bytes are never fetched twice.
    assert stream.bytes_served == len(data)


async def test_stalled_body_times_out_and_resumes(origin) -> None:
    stream, base = origin
    stream.faults.stall_next = 1
    stream.faults.truncate_at = 20_000
    stream.faults.stall_s = 3.0
    fetcher = CdnFetcher(FAST)
    result = await fetcher.fetch(base + "seg3.ts")
    await fetcher.aclose()
    assert result.data == stream.data(3) and result.attempts == 2


async def test_offset_and_server_ignoring_range(origin) -> None:
    stream, base = origin
    data = stream.data(1)
    fetcher = CdnFetcher(FAST)
    result = await fetcher.fetch(base + "seg1.ts", offset=12_345)
    assert result.data == data[12_345:] and result.total_bytes == len(data)
    stream.faults.ignore_range = True
    result = await fetcher.fetch(base + "seg1.ts", offset=50_000)
    assert result.data == data[50_000:]
    await fetcher.aclose()


async def test_byte_range_segment_with_offset(origin) -> None:
    stream, base = origin
    data = stream.data(0)
    fetcher = CdnFetcher(FAST)
    result = await fetcher.fetch(base + "seg0.ts", byte_range=ByteRange(1000, 5000))
    assert result.data == data[1000:6000] and result.total_bytes == 5000
    result = await fetcher.fetch(base + "seg0.ts", byte_range=ByteRange(1000, 5000), offset=4000)
    assert result.data == data[5000:6000]
    stream.faults.ignore_range = True
    result = await fetcher.fetch(base + "seg0.ts", byte_range=ByteRange(1000, 5000), offset=10)
    assert result.data == data[1010:6000]
    await fetcher.aclose()


def test_backoff_grows_with_jitter_and_cap() -> None:
    fetcher = CdnFetcher(CdnConfig(backoff_base_s=0.1, backoff_max_s=0.5))
    delays = [fetcher.backoff_s(k) for k in range(1, 7)]
    assert 0.05 <= delays[0] < 0.1
    assert all(d < 0.5 for d in delays) and delays[4] >= 0.25
