"""The console script: flags, environment variables, mint-token, and a real process that shuts
down gracefully on SIGTERM (sockets closed with 1001)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from pathlib import Path

import httpx
import pytest

from p2p_cli.serving import listening_port
from signaling.cli import config_from_args, main
from signaling.tokens import verify_token
from tests.signaling.sig_support import connect, pid

ROOT = Path(__file__).resolve().parents[2]


def test_flags_override_environment_override_defaults() -> None:
    env = {"P2P_SIGNALING_PORT": "9001", "P2P_SIGNALING_RATE_PER_S": "2.5",
           "P2P_SIGNALING_ORIGINS": "https://a.example, https://b.example",
           "P2P_SIGNALING_WS_PER_MESSAGE_DEFLATE": "yes"}  # fmt: skip
    config = config_from_args(["--port", "9002"], env)
    assert config.port == 9002
    assert config.rate_per_s == 2.5
    assert config.origins == ("https://a.example", "https://b.example")
    assert config.ws_per_message_deflate is True
    assert config.max_offers_per_announce == 5
    config = config_from_args(
        ["--max-offers-per-announce", "3", "--no-ws-per-message-deflate"], env
    )
    assert config.max_offers_per_announce == 3 and config.ws_per_message_deflate is False


def test_secret_is_not_in_the_config_repr() -> None:
    config = config_from_args([], {"P2P_SIGNALING_TOKEN_SECRET": "s" * 32})
    assert config.token_secret == "s" * 32
    assert "s" * 32 not in repr(config)


def test_bad_values_exit_with_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([], env={"P2P_SIGNALING_PORT": "eighty"}) == 2
    assert "P2P_SIGNALING_PORT" in capsys.readouterr().err
    assert main(["--rate-per-s", "0"], env={}) == 2
    assert "rate_per_s" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--port", "x"], env={})


def test_mint_token_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    secret = "a-secret-of-enough-length"
    swarm = "ab" * 20
    rc = main(["mint-token", "--info-hash", swarm, "--ttl-s", "60"],
              env={"P2P_SIGNALING_TOKEN_SECRET": secret})  # fmt: skip
    assert rc == 0
    token = capsys.readouterr().out.strip()
    grant = verify_token(secret, token, time.time())
    assert grant.allows(swarm) and grant.expires_at_unix_s <= time.time() + 61


async def wait_healthy(url: str, proc: asyncio.subprocess.Process, timeout_s: float) -> None:
    """Poll ``url`` until it answers 200; fail at once if the process exited."""
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient(timeout=10.0) as http:
        while True:
            assert proc.returncode is None, f"p2p-signaling exited with {proc.returncode}"
            try:
                if (await http.get(url)).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"{url} did not answer in {timeout_s} s"
            await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_process_shuts_down_gracefully_on_sigterm() -> None:
    # port 0 from the environment; the port it got from its first line (a port found free here
    # and handed over could be taken by another process in between)
    env = dict(os.environ, P2P_SIGNALING_PORT="0", P2P_SIGNALING_LOG_LEVEL="warning")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "signaling.cli", "--host", "127.0.0.1", "--shutdown-grace-s", "2",
        cwd=ROOT, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        # Generous bounds, as for the other CLI processes (tests/cli, tests/signaling_redis): on
        # a busy 2-core machine a start (imports included) can take longer than the 200 polls
        # (about 10 s) it was given here, after which the connects failed.
        assert proc.stdout is not None
        first = (await asyncio.wait_for(proc.stdout.readline(), 120.0)).decode()
        port = listening_port(first)
        assert port is not None and port != 0, first
        await wait_healthy(f"http://127.0.0.1:{port}/healthz", proc, 120.0)
        url = f"ws://127.0.0.1:{port}/announce"
        clients = [await connect(url, f"c{n}") for n in range(3)]
        for c in clients:
            await c.announce(pid("sigterm"))
        proc.send_signal(signal.SIGTERM)
        codes = await asyncio.gather(*(c.closed_with(30.0) for c in clients))
        assert codes == [1001, 1001, 1001]
        _, err = await asyncio.wait_for(proc.communicate(), 60.0)
        # uvicorn re-raises the captured signal once shut down, as a well-behaved server does
        assert proc.returncode in (0, -signal.SIGTERM), err
        assert b"Traceback" not in err
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def test_gc_thresholds_option() -> None:
    import gc

    from signaling.server import tune_gc

    assert config_from_args([], {}).gc_thresholds == (50000, 20, 100)
    assert config_from_args([], {"P2P_SIGNALING_GC_THRESHOLDS": ""}).gc_thresholds == ()
    config = config_from_args(["--gc-thresholds", "1000,5,5"], {})
    assert main(["--gc-thresholds", "1,2"], env={}) == 2
    before = gc.get_threshold()
    try:
        tune_gc(config)
        assert gc.get_threshold() == (1000, 5, 5)
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
