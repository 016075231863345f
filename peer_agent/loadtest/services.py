"""The servers a load test runs against: our origin (in this process) and ``p2p-signaling``
(a subprocess, so it does not share the agents' CPU), or ones given by URL."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from p2p_cli.serving import ChildStdout

from ..origin import MediaConfig, OriginConfig, Rendition, ShapingConfig, run_origin
from ..sim.scenario import Scenario
from .config import LoadTestConfig

ROOT = Path(__file__).resolve().parents[2]
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
#: Longest wait for ``p2p-signaling`` to listen after it was started.
START_TIMEOUT_S = 120.0


class ServiceError(RuntimeError):
    """A server the load test needs did not start or cannot be reached."""


def origin_config(scenario: Scenario, config: LoadTestConfig) -> OriginConfig:
    """Media matching the scenario: its segment length and (video + audio) bitrate."""
    width, height = (int(x) for x in config.video_size.lower().split("x"))
    video_bps = max(10_000, int(scenario.bitrate_bits_per_s) - config.audio_bitrate_bps)
    if scenario.live:
        content_s = config.live_content_s
    else:
        length = scenario.vod_length_s or (scenario.duration_s + scenario.join_over_s)
        content_s = min(3600.0, length + 2 * scenario.segment_s)
    content_s = max(
        scenario.segment_s, math.ceil(content_s / scenario.segment_s) * scenario.segment_s
    )
    media = MediaConfig(
        segment_duration_s=scenario.segment_s,
        content_duration_s=content_s,
        fps=config.fps,
        renditions=(Rendition("lt", width, height, video_bps),),
        audio_bitrate_bps=config.audio_bitrate_bps,
    )
    shaping = ShapingConfig(
        rate_limit_bytes_per_s=config.cdn_rate_limit_bytes_per_s,
        total_rate_limit_bytes_per_s=int(scenario.cdn_bytes_per_s),
        latency_s=scenario.cdn_latency_s,
    )
    return OriginConfig(port=0, media=media, shaping=shaping, log_level="warning")


class Origin:
    """Our origin, or a remote one; ``stats()`` is its ``/stats`` document."""

    def __init__(self, base_url: str, running: Any = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.running = running

    async def stats(self) -> dict[str, Any]:
        if self.running is not None:
            return dict(self.running.stats())
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
            response = await http.get(self.base_url + "/stats")
            response.raise_for_status()
            return dict(response.json())

    async def reset_stats(self) -> None:
        if self.running is not None:
            self.running.reset_stats()
            return
        async with httpx.AsyncClient(timeout=5.0, trust_env=False) as http:
            (await http.post(self.base_url + "/stats/reset")).raise_for_status()

    def playlist_url(self, live: bool, container: str) -> str:
        return f"{self.base_url}/hls/{'live' if live else 'vod'}-{container}/master.m3u8"


@contextlib.asynccontextmanager
async def origin(scenario: Scenario, config: LoadTestConfig) -> AsyncIterator[Origin]:
    if config.origin_url is not None:
        yield Origin(config.origin_url)
        return
    async with run_origin(origin_config(scenario, config)) as running:
        yield Origin(running.base_url, running)


class Signaling:
    """``p2p-signaling`` on a loopback port of its own choosing, in a subprocess."""

    def __init__(self) -> None:
        self.port = 0  # the bound one once start() has run; a restart keeps it
        self.proc: subprocess.Popen[bytes] | None = None
        self._stdout: ChildStdout | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/announce"

    async def start(self) -> None:
        exe = Path(sys.executable).with_name("p2p-signaling")
        cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "signaling.cli"]
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        # First start: port 0, and the port it got from its "listening on" line (a port picked
        # here and handed over could be taken by another process in between, and a connect
        # test would then have taken that process for ours). A restart: the same port again.
        if self._stdout is not None:
            self._stdout.close()
        self._stdout = ChildStdout()
        self.proc = subprocess.Popen(
            [*cmd, "--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"],
            env=env,
            stdout=self._stdout.file,
        )
        # Generous: importing the server takes a few CPU seconds, which on a busy machine can
        # stretch past 15 s (a fixed 300 polls of 50 ms was not always enough).
        deadline_s = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline_s:
            if self.proc.poll() is not None:
                raise ServiceError(f"p2p-signaling exited with status {self.proc.returncode}")
            port = self._stdout.port()
            if port is not None:
                # it prints the line once its socket listens: connections queue from then on
                self.port = port
                return
            await asyncio.sleep(0.05)
        self.proc.kill()
        self.proc.wait()
        raise ServiceError(f"p2p-signaling did not start listening within {START_TIMEOUT_S:.0f} s")

    def cpu_s(self) -> float | None:
        """CPU seconds the server used so far (Linux ``/proc``; ``None`` elsewhere)."""
        if self.proc is None:
            return None
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.proc = None
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None


@contextlib.asynccontextmanager
async def signaling(config: LoadTestConfig, needed: bool) -> AsyncIterator[Signaling | str | None]:
    """Yields our server, the given URL, or ``None`` when no tracker is needed."""
    if not needed:
        yield None
    elif config.tracker_url is not None:
        yield config.tracker_url
    else:
        server = Signaling()
        await server.start()
        try:
            yield server
        finally:
            await server.stop()
