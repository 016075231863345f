"""Conformance: the npm `bittorrent-tracker` client (unmodified, in node) against our server.

WebRTC is faked by tests/node/webrtc-polyfill-stub (package.json overrides 'webrtc-polyfill'), so
the client builds offers and answers without real WebRTC; every signaling message is real.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from pathlib import Path

import pytest

from tests.signaling.sig_support import ServerFactory

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "node" / "tracker_conformance.mjs"
NODE = shutil.which("node")

pytestmark = [
    pytest.mark.node,
    pytest.mark.skipif(NODE is None, reason="node is not installed (CI has node 20)"),
]


def _require_modules() -> None:
    if not (ROOT / "node_modules" / "bittorrent-tracker").is_dir():
        message = "node_modules/bittorrent-tracker is missing: run `npm ci` in the repo root"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


async def test_bittorrent_tracker_client_conformance(start_server: ServerFactory) -> None:
    _require_modules()
    server = await start_server(announce_interval_s=30)
    assert NODE is not None
    proc = await asyncio.create_subprocess_exec(
        NODE,
        str(SCRIPT),
        server.url,
        cwd=ROOT,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stdin is not None
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 20.0)
        assert json.loads(line) == {"phase": "paired"}, line
        # While paired: both swarms hold alice and bob; bob's extension fields (sent through
        # the client's standard getAnnounceOpts hook) reached the registry.
        body = (await server.get("/api/admin/swarms")).json()
        assert body["swarm_count"] == 2 and body["peer_count"] == 4
        bob_hex = b"b".hex() * 20
        bob = [p for s in body["swarms"] for p in s["peers"] if p["peer_id"] == bob_hex]
        assert {(p["position_s"], p["region"]) for p in bob} == {(42.5, "eu"), (None, None)}
        proc.stdin.write(b"go\n")
        await proc.stdin.drain()
        out, err = await asyncio.wait_for(proc.communicate(), 20.0)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, (out, err)
    result = json.loads(out.decode().strip().splitlines()[-1])
    assert result["warnings"] == []
    # announce replies reached the standard client as 'update' events with counts
    firsts = {(u["name"], u["infoHash"]): u for u in reversed(result["updates"])}
    assert firsts[("a", "aa" * 20)]["incomplete"] >= 1
    assert firsts[("b", "aa" * 20)]["incomplete"] == 2
    # alice's 'stopped' in swarm two was answered with her gone from it
    lasts = {(u["name"], u["infoHash"]): u for u in result["updates"]}
    assert lasts[("a", "bb" * 20)]["incomplete"] == 1
    # bob's offers were relayed to alice, whose answers came back to bob unchanged
    assert len(result["remoteOffers"]) == 2
    assert sorted(result["remoteAnswers"]) == sorted(result["localAnswers"])
    assert len(result["remoteAnswers"]) == 2
    assert {(p["name"], p["infoHash"]) for p in result["peers"]} == {
        ("a", "aa" * 20), ("a", "bb" * 20), ("b", "aa" * 20), ("b", "bb" * 20),
    }  # fmt: skip
    assert result["scrape"] == {
        "complete": 0, "incomplete": 2, "downloaded": 0, "infoHash": "aa" * 20,
    }  # fmt: skip
    assert await server.metric("p2p_signaling_relays_total", kind="offer") == 2
    assert await server.metric("p2p_signaling_relays_total", kind="answer") == 2
    assert await server.metric("p2p_signaling_messages_total", action="scrape") == 1
    assert (
        sum([await server.rejections(r) for r in ("invalid_json", "wrong_type", "peer_id_spoofed")])
        == 0
    )
