"""Incremental live manifests in the agent (docs/exchange.md, section 12): the shared vectors
(docs/vectors/manifest/incremental.json), the bounds against a hostile origin, and a live run
against the real test origin that fetches the manifest whole once, then only what is new."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from peer_agent.agent import Agent, AgentConfig
from peer_agent.agent.cdn import CdnConfig, CdnFetcher, CdnTooLarge
from peer_agent.agent.integrity import (
    MAX_MANIFEST_BYTES,
    MAX_MANIFEST_ENTRIES,
    Manifest,
    ManifestRejected,
    incremental_manifest_url,
)
from peer_agent.agent.playlist import SegmentInfo
from peer_agent.core.exchange_state import Verdict
from peer_agent.core.ids import SegmentId
from peer_agent.origin import MediaSet, run_origin
from tests.agent.conftest import origin_config

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/manifest/incremental.json").read_text()
)
FAST_CDN = CdnConfig(read_timeout_s=1.0, backoff_base_s=0.02, backoff_max_s=0.1)


def test_defaults_match_the_vectors() -> None:
    assert VECTORS["max_manifest_bytes"] == MAX_MANIFEST_BYTES
    assert VECTORS["max_manifest_entries"] == MAX_MANIFEST_ENTRIES
    cfg = AgentConfig("http://o/x.m3u8")
    assert (cfg.max_manifest_bytes, cfg.max_manifest_entries) == (
        MAX_MANIFEST_BYTES,
        MAX_MANIFEST_ENTRIES,
    )


@pytest.mark.parametrize("case", VECTORS["urls"], ids=lambda c: c["name"])
def test_url_vector(case: dict[str, Any]) -> None:
    assert incremental_manifest_url(case["url"], case["msn"]) == case["expected"]


@pytest.mark.parametrize("case", VECTORS["merges"], ids=lambda c: c["name"])
def test_merge_vector(case: dict[str, Any]) -> None:
    manifest = Manifest("http://o/m.json", max_entries=case["max_entries"])
    manifest.hashes = dict(case["held"])
    held_before = dict(manifest.hashes)
    if "error" in case:
        with pytest.raises(ManifestRejected) as info:
            manifest.update(json.dumps(case["answer"]))
        assert info.value.reason == case["error"]
        assert manifest.hashes == held_before  # nothing of a refused answer is held
    else:
        manifest.update(json.dumps(case["answer"]))
        assert list(manifest.hashes.items()) == [tuple(kv) for kv in case["expected"]]


def test_url_for_whole_first_then_from_msn() -> None:
    manifest = Manifest("http://o/hls/live-ts/lo/manifest.json")
    assert manifest.url_for(7) == "http://o/hls/live-ts/lo/manifest.json"  # nothing loaded yet
    manifest.update("{}")
    assert manifest.url_for(7) == "http://o/hls/live-ts/lo/manifest.json?from_msn=7"
    assert manifest.url_for(None) == "http://o/hls/live-ts/lo/manifest.json"
    assert Manifest(None).url_for(3) is None
    with pytest.raises(ValueError):
        incremental_manifest_url("http://o/m.json", -1)


def test_oversize_text_refused() -> None:
    manifest = Manifest("http://o/m.json", max_bytes=64)
    with pytest.raises(ManifestRejected) as info:
        manifest.update(json.dumps({"seg-1.ts": "a" * 64}))
    assert info.value.reason == "manifest_too_large" and manifest.hashes == {}
    with pytest.raises(ManifestRejected) as info:
        Manifest("http://o/m.json").update("not json")
    assert info.value.reason == "manifest_invalid"


@pytest.mark.parametrize("agent_config", [{"max_manifest_bytes": 0}, {"max_manifest_entries": 0}])
def test_bad_bounds_are_config_errors(agent_config: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match=next(iter(agent_config))):
        AgentConfig("http://o/x.m3u8", **agent_config)


async def test_cdn_body_cap_against_a_real_server(media: MediaSet) -> None:
    async with run_origin(origin_config(), media=media) as origin:
        cdn = CdnFetcher(FAST_CDN)
        try:
            with pytest.raises(CdnTooLarge):
                await cdn.fetch(origin.url("hls/vod-ts/lo/seg-0.ts"), max_bytes=100)
            small = await cdn.fetch(origin.url("hls/vod-ts/lo/manifest.json"), max_bytes=4096)
            assert json.loads(small.data)
        finally:
            await cdn.aclose()


async def test_hostile_manifest_is_refused_and_counted(media: MediaSet) -> None:
    """An origin whose "manifest" is a whole segment: refused at the byte cap, counted, and
    playback goes on with what the CDN sends (no peer bytes are accepted without a hash)."""
    async with run_origin(origin_config(), media=media) as origin:
        cfg = AgentConfig(
            origin.url("hls/vod-ts/master.m3u8"),
            manifest_url=origin.url("hls/vod-ts/lo/seg-0.ts"),
            max_manifest_bytes=512,
            duration_s=15.0,
            cdn=FAST_CDN,
        )
        summary = await Agent(cfg).run()
    assert summary["manifest_rejected"].get("manifest_too_large", 0) >= 1, summary
    assert summary["manifest_bytes"] == 0
    assert summary["ended"] and summary["stall_count"] == 0


async def test_live_agent_fetches_only_new_entries(media: MediaSet) -> None:
    async with run_origin(origin_config(), media=media) as origin:
        full = await _get(origin.url("hls/live-ts/lo/manifest.json"))
        cfg = AgentConfig(
            origin.url("hls/live-ts/master.m3u8"), duration_s=6.0, rendition=0, cdn=FAST_CDN
        )
        summary = await Agent(cfg).run()
        stats = origin.stats()["by_kind"]
    assert summary["hash_failures"] == 0 and summary["stall_count"] == 0
    fetches, manifest_bytes = summary["manifest_fetches"], summary["manifest_bytes"]
    assert fetches >= 3, summary  # the whole manifest, then one per new segment
    # Every fetch after the first lists about one new segment, not the whole window.
    assert manifest_bytes - len(full) < (fetches - 1) * len(full) / 3, (fetches, manifest_bytes)
    assert stats["manifest"]["bytes_served"] == manifest_bytes + len(full)  # ours + the agent's


async def _get(url: str) -> bytes:
    cdn = CdnFetcher(FAST_CDN)
    try:
        return (await cdn.fetch(url)).data
    finally:
        await cdn.aclose()


async def test_discovered_oversize_manifest_is_refused_loudly(media: MediaSet) -> None:
    """manifest.json beside the playlist, over the byte cap: refused and counted, and the agent
    stays in SHA-256 mode (no peer bytes without a hash) rather than dropping to size-only."""
    async with run_origin(origin_config(), media=media) as origin:
        cfg = AgentConfig(
            origin.url("hls/vod-ts/master.m3u8"),
            max_manifest_bytes=64,
            duration_s=15.0,
            cdn=FAST_CDN,
        )
        summary = await Agent(cfg).run()
    assert summary["integrity"] == "sha256", summary
    assert summary["manifest_rejected"].get("manifest_too_large", 0) >= 1, summary
    assert summary["ended"] and summary["stall_count"] == 0


@contextlib.asynccontextmanager
async def _emptied_manifest(media: MediaSet) -> AsyncIterator[Agent]:
    """An agent on the VOD stream whose manifest was fetched whole once and then emptied, with
    no refresh in the last quarter second: each check of a segment must fetch from its MSN."""
    async with run_origin(origin_config(), media=media) as origin:
        agent = Agent(
            AgentConfig(
                origin.url("hls/vod-ts/master.m3u8"),
                manifest_url=origin.url("hls/vod-ts/lo/manifest.json"),
                cdn=FAST_CDN,
            )
        )
        agent.attach(asyncio.get_running_loop())
        try:
            await agent.refresh_manifest()  # the whole manifest, once
            agent.manifest.hashes.clear()
            agent._manifest_refreshed_at = -1e9  # no refresh in the last quarter second
            yield agent
        finally:
            await agent.cdn.aclose()


async def test_refresh_from_a_later_msn_is_followed_by_one_from_the_earlier(
    media: MediaSet,
) -> None:
    """Segment 3 is checked first and starts a fetch from MSN 3; segment 2, checked while it
    runs, is not listed in that answer, so its own fetch from MSN 2 follows at once."""
    async with _emptied_manifest(media) as agent:
        await asyncio.gather(agent._refresh_manifest_soon(3), agent._refresh_manifest_soon(2))
    keys = set(agent.manifest.hashes)
    assert "seg-2.ts" in keys and "seg-3.ts" in keys, sorted(keys)
    assert agent.manifest.fetches == 3, agent.manifest.fetches


async def test_a_refresh_just_done_from_a_later_msn_does_not_stand_for_an_earlier_one(
    media: MediaSet,
) -> None:
    """Segment 3 was checked a moment ago (a fetch from MSN 3, done); segment 2, checked less
    than a quarter second later, is not listed in that answer, so its own fetch from MSN 2 runs
    at once instead of leaving it unverifiable (refetched whole from the CDN: a stall on a
    lossy path); a check of segment 4 within the quarter second reuses the answer."""
    async with _emptied_manifest(media) as agent:
        await agent._refresh_manifest_soon(3)
        assert "seg-2.ts" not in agent.manifest.hashes
        await agent._refresh_manifest_soon(2)  # well within 0.25 s of the last
        await agent._refresh_manifest_soon(4)  # covered by the answer from MSN 2
    assert "seg-2.ts" in agent.manifest.hashes, sorted(agent.manifest.hashes)
    assert agent.manifest.fetches == 3, agent.manifest.fetches


async def test_a_shared_answer_that_predates_the_segment_is_followed_by_a_fresh_one(
    media: MediaSet,
) -> None:
    """A peer's copy of segment 3 is checked a moment after a refresh from MSN 2 whose answer
    (asked for, as far as the check can tell, before the origin published segment 3) did not
    list it: the check reuses that answer first, then asks once more from MSN 3, no sooner than
    a quarter second after the shared answer, and the copy verifies instead of being dropped
    as unverifiable (the fresh-clone CI failure of test_four_agents_share_a_live_stream)."""
    async with _emptied_manifest(media) as agent:
        await agent._refresh_manifest_soon(2)
        agent.manifest.hashes.clear()  # that answer predates segment 3 (and everything else)
        url = agent.manifest.url
        assert url is not None
        data = (await agent.cdn.fetch(url.replace("manifest.json", "seg-3.ts"))).data
        segment = SegmentInfo(
            SegmentId(0, 3),
            url.replace("manifest.json", "seg-3.ts"),
            "seg-3.ts",
            None,
            1.0,
            3.0,
            False,
            None,
        )
        shared_answer_at = agent._manifest_refreshed_at
        verdict = await agent._check(segment, data, len(data), peer_bytes=True)
        fresh_answer_at = agent._manifest_refreshed_at
    assert verdict is Verdict.OK
    assert agent.manifest.fetches == 3, agent.manifest.fetches  # whole, from 2, from 3
    assert fresh_answer_at - shared_answer_at >= 0.25  # sent a quarter second after the last
