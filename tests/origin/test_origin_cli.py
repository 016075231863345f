"""The ``p2p-origin`` CLI: flags, environment, the generate subcommand, and a real process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import m3u8
import pytest

from peer_agent.origin import Rendition
from peer_agent.origin.cli import config_from_args, main

REPO = Path(__file__).resolve().parents[2]
TINY = [
    "--segment-duration-s",
    "0.4",
    "--content-duration-s",
    "0.8",
    "--renditions",
    "a:64x64@50000,b:128x72@80000",
]


def test_flags_win_over_env_which_wins_over_defaults() -> None:
    env = {
        "P2P_ORIGIN_PORT": "9001",
        "P2P_ORIGIN_ERROR_RATE": "0.25",
        "P2P_ORIGIN_FAULTS_ON_PLAYLISTS": "yes",
        "P2P_ORIGIN_RENDITIONS": "x:320x180@300000",
    }
    config = config_from_args(["--port", "9002", "--latency-s", "0.5"], env)
    assert config.port == 9002
    assert config.shaping.latency_s == 0.5
    assert config.shaping.error_rate == 0.25
    assert config.shaping.faults_on_playlists is True
    assert config.media.renditions == (Rendition("x", 320, 180, 300_000),)
    assert config.host == "127.0.0.1" and config.media.segment_duration_s == 4.0
    assert config_from_args(["--no-cache"], {}).cache is False


def test_bad_values_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--error-rate", "0.5", "--timeout-rate", "0.6"], env={}) == 2
    assert "must not exceed 1" in capsys.readouterr().err
    assert main([], env={"P2P_ORIGIN_FPS": "many"}) == 2
    assert "P2P_ORIGIN_FPS" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        main(["--renditions", "nonsense"], env={})
    assert info.value.code == 2


def test_generate_subcommand(tmp_path: Path) -> None:
    out = tmp_path / "stream"
    assert main(["generate", "--out", str(out), *TINY], env={}) == 0
    master = m3u8.load(str(out / "vod-fmp4" / "master.m3u8"))
    assert [p.uri for p in master.playlists] == ["a/index.m3u8", "b/index.m3u8"]
    media = m3u8.load(str(out / "vod-fmp4" / "b" / "index.m3u8"))
    assert [s.uri for s in media.segments] == ["seg-0.m4s", "seg-1.m4s"]
    assert (out / "vod-fmp4" / "b" / "init.mp4").exists()


@pytest.mark.slow
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_console_script_serves_and_stops_gracefully(tmp_path: Path, stop_signal: int) -> None:
    env = {**os.environ, "P2P_ORIGIN_CACHE_DIR": str(tmp_path), "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "peer_agent.origin.cli",
            "--port",
            "0",
            "--log-level",
            "warning",
            *TINY,
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert first.startswith("p2p-origin listening on http://127.0.0.1:"), first
        base_url = first.split()[-1]
        listed = [proc.stdout.readline() for _ in range(6)]
        assert any("/hls/live-ts/master.m3u8" in line for line in listed)
        deadline = time.monotonic() + 60
        while True:  # the socket is bound before the banner; uvicorn may still be starting
            try:
                streams = httpx.get(f"{base_url}/streams", timeout=2.0).json()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert len(streams["streams"]) == 5
        live = httpx.get(streams["streams"][3]["renditions"][0]["playlist_url"]).text
        assert "#EXT-X-MEDIA-SEQUENCE" in live
        proc.send_signal(stop_signal)
        assert proc.wait(timeout=60) == 0  # 10 s was not always enough on a busy machine
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (tmp_path / "p2p-origin-cache").exists()
