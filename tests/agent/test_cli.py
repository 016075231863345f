"""``p2p-agent`` end to end in a subprocess against the real origin, and its parts."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

import pytest

from peer_agent.agent.cli import build_parser, config_from_args, format_status, main
from peer_agent.origin import MediaSet, run_origin
from tests.agent.conftest import origin_config

ROOT = Path(__file__).resolve().parents[2]
REQUIRED = {
    "bytes_cdn",
    "bytes_p2p",
    "bytes_uploaded",
    "segments_played",
    "segments_verified",
    "hash_failures",
    "stall_count",
    "stall_s",
    "startup_s",
}


def test_flags_map_to_the_config() -> None:
    args = build_parser().parse_args(
        [
            "http://o/m.m3u8",
            "--tracker", "ws://t/announce",
            "--max-peers", "3",
            "--upload-cap-bytes-per-s", "1000",
            "--leech-only",
            "--ice-server", "stun:a:3478",
            "--ice-server", "stun:b:3478",
            "--rendition", "1",
            "--latency-segments", "5",
            "--seed", "7",
            "--manifest-url", "http://o/manifest.json",
        ]
    )  # fmt: skip
    cfg = config_from_args(args)
    assert cfg.tracker_url == "ws://t/announce" and cfg.max_peers == 3
    assert cfg.upload_cap_bytes_per_s == 1000.0 and cfg.leech_only
    assert cfg.ice_servers == ("stun:a:3478", "stun:b:3478") and cfg.rendition == 1
    assert cfg.latency_segments == 5 and cfg.seed == 7
    assert cfg.manifest_url == "http://o/manifest.json"
    defaults = config_from_args(build_parser().parse_args(["http://o/m.m3u8"]))
    assert defaults.ice_servers == () and defaults.tracker_url is None


def test_join_token_from_flag_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("P2P_AGENT_TOKEN", raising=False)
    args = build_parser().parse_args(["http://o/m.m3u8", "--token", "v1.flag.sig"])
    assert config_from_args(args).tracker_token == "v1.flag.sig"
    monkeypatch.setenv("P2P_AGENT_TOKEN", "v1.env.sig")
    cfg = config_from_args(build_parser().parse_args(["http://o/m.m3u8"]))
    assert cfg.tracker_token == "v1.env.sig"
    assert "v1.env.sig" not in repr(cfg)  # never in logs or reprs
    monkeypatch.setenv("P2P_AGENT_TOKEN", "")
    assert config_from_args(build_parser().parse_args(["http://o/m.m3u8"])).tracker_token is None


def test_status_line() -> None:
    line = format_status(
        {
            "t_s": 3.0,
            "playhead_s": 12.5,
            "buffer_s": 4.0,
            "peers": 2,
            "bytes_cdn": 1_500_000,
            "bytes_p2p": 2_000_000,
            "bytes_uploaded": 0,
            "stalls": 0,
            "hash_failures": 0,
        }
    )
    assert "peers= 2" in line and "p2p=   2.00MB" in line


def test_unreachable_playlist_fails_cleanly(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["http://127.0.0.1:9/none.m3u8", "--json", "--duration-s", "1"])
    assert code == 1
    assert "p2p-agent:" in capsys.readouterr().err


async def test_json_summary_from_a_subprocess(media: MediaSet) -> None:
    async with run_origin(origin_config(), media=media) as origin:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "peer_agent.agent.cli",
            origin.url("hls/live-fmp4/master.m3u8"),
            "--duration-s",
            "2.5",
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=dict(os.environ, PYTHONPATH=str(ROOT)),
        )
        # 180 s like the CLI subprocesses of tests/cli, where 60 s and less timed out on a busy
        # machine (a fresh interpreter imports aiortc and PyAV first)
        out, err = await asyncio.wait_for(proc.communicate(), 180)
    assert proc.returncode == 0, err.decode()
    summary = json.loads(out)
    assert summary.keys() >= REQUIRED
    assert summary["segments_verified"] >= 2 and summary["stall_count"] == 0
    assert summary["integrity"] == "sha256" and summary["bytes_cdn"] > 0
