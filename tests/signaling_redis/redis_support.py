"""Real parts for the scale-out tests: a redis-server on a free port, `p2p-signaling` processes
joined by it, and a small TCP front that sends each new connection to the first live process
(what a reverse proxy does).

A uniquely named module (not conftest) so that any order of test paths collects."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from p2p_cli.serving import ChildStdout

ROOT = Path(__file__).resolve().parents[2]
SIGNALING_BIN = Path(sys.executable).parent / "p2p-signaling"

# Small intervals so failover happens within a test's patience.
FAST_ENV = {
    "P2P_SIGNALING_LOG_LEVEL": "warning",
    # Short enough for quick tests, long enough that a process starved of CPU for a second or
    # two (a busy 2-core machine) is neither declared dead by the others nor cut off from Redis.
    "P2P_SIGNALING_HEARTBEAT_INTERVAL_S": "0.5",
    "P2P_SIGNALING_NODE_TTL_S": "6.0",
    "P2P_SIGNALING_REDIS_TIMEOUT_S": "3.0",
    "P2P_SIGNALING_REDIS_RETRY_S": "0.2",
    "P2P_SIGNALING_ANNOUNCE_INTERVAL_S": "3",
    "P2P_SIGNALING_SHUTDOWN_GRACE_S": "1",
    "P2P_SIGNALING_WS_PING_INTERVAL_S": "0",
}


def require_redis_server() -> str:
    """Path of redis-server. Absent: skip locally, fail on CI (where the Makefile installs it)."""
    path = shutil.which("redis-server")
    if path is not None:
        return path
    if os.environ.get("CI"):
        pytest.fail("redis-server is not installed, and CI is set: the Makefile must install it")
    pytest.skip("redis-server is not installed (apt-get install -y redis-server); CI runs these")


def free_port() -> int:
    """A port free right now. Only for a server that cannot bind port 0 and report what it got
    (redis-server): another process may take the port before the server binds it, so the caller
    must notice that (see :meth:`RedisServer.start`)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _redis_pid(port: int) -> int | None:
    """The process id of the redis-server answering on ``port`` (``INFO server``), or None."""
    with (
        contextlib.suppress(OSError),
        socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock,
    ):
        sock.settimeout(2.0)
        sock.sendall(b"INFO server\r\n")
        reply = b""
        while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
            chunk = sock.recv(4096)
            if not chunk:
                break
            reply += chunk
        for line in reply.split(b"\r\n"):
            if line.startswith(b"process_id:"):
                return int(line.split(b":", 1)[1])
    return None


@dataclass
class RedisServer:
    """redis-server on a free loopback port. redis-server cannot bind port 0 and report it, so
    :meth:`start` checks that the server answering is its own (by process id) and starts again
    on another port when another process took the chosen one first: :attr:`port` and
    :attr:`url` are known once it started (a node that must know them earlier goes through a
    :class:`Front`)."""

    binary: str
    workdir: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        for _attempt in range(5):
            if self._start_once():
                return
            self.port = free_port()
        raise RuntimeError("redis-server did not start on any of 5 ports")

    def _start_once(self) -> bool:
        """True once our own redis-server answers; False when it exited (the port was taken)."""
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir), "--logfile", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.proc = None
                return False
            if _redis_pid(self.port) == self.proc.pid:
                return True
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


@dataclass
class SignalingProcess:
    """``p2p-signaling`` in a subprocess. It binds port 0 (unless ``port`` is given) and
    :meth:`start` reads the port it got from its "listening on" line: no other process can
    take the port between the choice and the bind."""

    redis_url: str | None
    extra_env: dict[str, str]
    port: int = 0
    proc: asyncio.subprocess.Process | None = None
    _stdout: ChildStdout | None = None

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/announce"

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        env = {**os.environ, **FAST_ENV, **self.extra_env}  # a test may override FAST_ENV
        args = [str(SIGNALING_BIN), "--host", "127.0.0.1", "--port", str(self.port)]
        if self.redis_url is not None:
            args += ["--redis-url", self.redis_url]
        self._stdout = ChildStdout()
        self.proc = await asyncio.create_subprocess_exec(
            *args, cwd=ROOT, env=env, stdout=self._stdout.file, stderr=None
        )
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 120.0  # imports alone take seconds on a busy 2-core machine
        while (port := self._stdout.port()) is None:
            if self.proc.returncode is not None:
                raise RuntimeError(f"p2p-signaling exited with {self.proc.returncode}")
            if loop.time() > deadline:
                raise AssertionError("p2p-signaling never said where it listens")
            await asyncio.sleep(0.05)
        self.port = port
        await self.wait_health(lambda h: h.get("status") in ("ok", "degraded"), 120.0)

    async def health(self) -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=10.0) as client:
            return dict((await client.get(self.http + "/healthz")).json())

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(timeout=5.0) as client:
            return await client.get(self.http + path)

    async def wait_health(self, pred: Any, timeout_s: float = 30.0) -> dict[str, Any]:
        deadline = asyncio.get_running_loop().time() + timeout_s
        last: dict[str, Any] = {}
        while asyncio.get_running_loop().time() < deadline:
            if self.proc is not None and self.proc.returncode is not None:
                raise RuntimeError(f"p2p-signaling exited with {self.proc.returncode}")
            try:
                last = await self.health()
                if pred(last):
                    return last
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"health never matched; last: {last}")

    async def metric(self, name: str, **labels: str) -> float:
        text = (await self.get("/metrics")).text
        want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
        key = name + ("{" + want + "}" if want else "")
        for line in text.splitlines():
            if line.startswith(key + " "):
                return float(line.split()[-1])
        return 0.0

    def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)

    async def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10.0)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        if self._stdout is not None:
            self._stdout.close()
            self._stdout = None


class Front:
    """A TCP front on one port: each new connection goes to the first backend that accepts it,
    in order, like a reverse proxy with health checks. Bytes are copied both ways."""

    def __init__(self, backends: list[int]) -> None:
        self.backends = backends
        self.port = 0
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/announce"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        upstream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        for port in self.backends:
            try:
                upstream = await asyncio.open_connection("127.0.0.1", port)
                break
            except OSError:
                continue
        if upstream is None:
            writer.close()
            return
        up_reader, up_writer = upstream

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                with contextlib.suppress(Exception):
                    dst.close()

        for task in (
            asyncio.ensure_future(pipe(reader, up_writer)),
            asyncio.ensure_future(pipe(up_reader, writer)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
