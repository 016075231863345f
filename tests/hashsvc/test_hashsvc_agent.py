"""A real agent verifies every segment against the hash service's manifest (no origin
manifest discovery)."""

from __future__ import annotations

from peer_agent.agent import Agent, AgentConfig
from peer_agent.agent.cdn import CdnConfig
from peer_agent.origin.server import RunningOrigin
from signaling.hashsvc import RunningHashService

FAST_CDN = CdnConfig(read_timeout_s=1.0, backoff_base_s=0.02, backoff_max_s=0.1)


async def test_agent_verifies_with_the_hash_service(
    origin: RunningOrigin, hashsvc: RunningHashService
) -> None:
    config = AgentConfig(
        origin.url("/hls/vod-ts/master.m3u8"),
        duration_s=15.0,
        hash_service_url=hashsvc.base_url,
        discover_manifest=False,
        cdn=FAST_CDN,
    )
    summary = await Agent(config).run()
    assert summary["ended"] and summary["segments_played"] == 3
    assert summary["integrity"] == "sha256"
    assert summary["segments_verified"] == 3 and summary["hash_failures"] == 0
    assert hashsvc.stats()["playlists_tracked"] == 1
    assert origin.stats()["by_kind"].get("manifest") is None  # never asked the origin
