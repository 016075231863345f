"""``p2p-hashsvc``: flags, environment variables, and a real process shut down by SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import httpx
import pytest

from peer_agent.agent.cli import build_parser as agent_parser
from peer_agent.agent.cli import config_from_args as agent_config
from signaling.hashsvc.cli import config_from_args, main


def test_flags_and_environment() -> None:
    env = {
        "P2P_HASHSVC_ALLOW_PREFIXES": "http://cdn.example/live/, http://other.example",
        "P2P_HASHSVC_MAX_PLAYLISTS": "5",
        "P2P_HASHSVC_MIN_REFRESH_S": "2.5",
    }
    config = config_from_args(["--max-playlists", "7"], env)
    assert config.allow_prefixes == ("http://cdn.example/live/", "http://other.example/")
    assert config.max_playlists == 7 and config.min_refresh_s == 2.5  # the flag wins
    config = config_from_args(
        ["--allow-prefix", "https://a.example/x/", "--allow-prefix", "https://b.example/"], env
    )
    assert config.allow_prefixes == ("https://a.example/x/", "https://b.example/")
    assert config.max_playlists == 5 and config.retries == 2 and config.idle_expiry_s == 300.0


@pytest.mark.parametrize(
    "argv",
    [[], ["--allow-prefix", "ftp://x/"], ["--allow-prefix", "http://x/", "--retries", "many"]],
)
def test_bad_arguments_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv, env={}) == 2
    assert "p2p-hashsvc: error:" in capsys.readouterr().err


def test_agent_hash_service_flag_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    args = agent_parser().parse_args(["http://o/m.m3u8", "--hash-service", "http://h:8090"])
    assert agent_config(args).hash_service_url == "http://h:8090"
    monkeypatch.setenv("P2P_AGENT_HASH_SERVICE", "http://env:1")
    assert (
        agent_config(agent_parser().parse_args(["http://o/m.m3u8"])).hash_service_url
        == "http://env:1"
    )
    flag = agent_parser().parse_args(["http://o/m.m3u8", "--hash-service", "http://flag:2"])
    assert agent_config(flag).hash_service_url == "http://flag:2"
    monkeypatch.delenv("P2P_AGENT_HASH_SERVICE")
    assert agent_config(agent_parser().parse_args(["http://o/m.m3u8"])).hash_service_url is None


async def test_process_serves_and_stops_on_sigterm() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "signaling.hashsvc.cli",
        "--port",
        "0",
        "--log-level",
        "warning",
        env={**os.environ, "P2P_HASHSVC_ALLOW_PREFIXES": "http://127.0.0.1:9/"},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stdout is not None
        line = (await asyncio.wait_for(proc.stdout.readline(), 120.0)).decode()
        assert line.startswith("p2p-hashsvc listening on http://127.0.0.1:")
        base = line.split()[-1]
        async with httpx.AsyncClient() as http:
            assert (await http.get(base + "/healthz")).json() == {"ok": True}
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 60.0) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
