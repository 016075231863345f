"""The whole demo in one command: ``python -m peer_agent.demo``.

Starts the test origin (``p2p-origin``), the signaling server (``p2p-signaling``, with a join
token secret and an Origin allowlist holding the page's origin), a static server for the demo
page (``web_demo/`` and hls.js from ``node_modules/hls.js/dist``, plus a generated
``config.json`` carrying the tracker URL and a freshly minted join token) and a few headless
agents (``p2p-agent`` subprocesses) watching the same live stream. Prints
``Demo: http://127.0.0.1:PORT/`` once everything is up and runs until interrupted; Ctrl-C (or
SIGTERM) stops every process it started.

Library use (the browser tests do this)::

    async with run_demo(DemoConfig(agents=2)) as demo:
        demo.page_url, demo.origin_url, demo.tracker_url, demo.token
        demo.master_url("live-ts")

The join token follows docs/signaling.md ("Join tokens"); it is minted here from the spec so
that ``peer_agent`` does not import ``signaling``. Agents get it through their environment
(``P2P_AGENT_TOKEN``); the secret itself goes to the signaling server through its environment;
neither is ever on a command line.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import logging
import mimetypes
import os
import secrets
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from p2p_cli.serving import (
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_OK,
    ChildStdout,
    bind_tcp,
    error,
    listen_error,
)

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[1]
WEB_DEMO = ROOT / "web_demo"
HLSJS_DIST = ROOT / "node_modules" / "hls.js" / "dist"
STREAM_NAMES = ("vod-ts", "vod-fmp4", "vod-byterange", "live-ts", "live-fmp4")


@dataclass(frozen=True)
class DemoConfig:
    """Every option of the demo, with its default."""

    host: str = "127.0.0.1"  # every server listens here; the page is http://HOST:page_port/
    page_port: int = 8090  # 0: any free port
    origin_port: int = 0  # 0: any free port
    signaling_port: int = 0  # 0: any free port
    agents: int = 3  # headless p2p-agent processes watching `stream`
    stream: str = "live-ts"  # the stream the page opens and the agents watch
    agent_rendition: int | None = 0  # variant the agents play (None: each agent's own choice)
    latency_segments: int = 3  # agents start this many segments behind the live edge...
    latency_spread_segments: int = 2  # ...plus (seed % (spread + 1)): some trail the page
    segment_duration_s: float = 2.0
    content_duration_s: float = 30.0
    renditions: str | None = None  # origin --renditions (None: the origin's default)
    fps: int | None = None  # origin --fps (None: the origin's default)
    live_window_segments: int = 6
    tokens: bool = True  # join tokens on (the secret is random per run)
    token_ttl_s: int = 24 * 3600
    announce_interval_s: float = 15.0
    # ICE host addresses of the agents; None: 127.0.0.1 plus the machine's own addresses.
    host_addresses: tuple[str, ...] | None = None
    agent_args: tuple[str, ...] = ()  # extra p2p-agent flags
    signaling_args: tuple[str, ...] = ()  # extra p2p-signaling flags (e.g. --fetcher-count 1)
    extra_origins: tuple[str, ...] = ()  # more Origins the signaling server accepts (other pages)
    # P2PEngine options and hls.js options handed to the page through config.json.
    engine: dict[str, Any] = field(default_factory=dict)
    hls: dict[str, Any] = field(default_factory=lambda: {"liveSyncDurationCount": 3})
    startup_timeout_s: float = 120.0  # media generation on a first run takes a few seconds
    log_level: str = "warning"


def swarm_id_for(url: str) -> str:
    """docs/protocol.md §2: first 20 hex digits of SHA-1("p2p-hls/1 " + url)."""
    return hashlib.sha1(b"p2p-hls/1 " + url.encode("utf-8")).hexdigest()[:20]


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_join_token(secret: str, info_hashes: Sequence[str], expires_at_unix_s: int) -> str:
    """A join token as docs/signaling.md specifies it: ``v1.<payload>.<signature>``, where the
    payload lists each swarm as the hex of its info_hash's 20 bytes."""
    swarms = sorted({ih.encode("latin-1").hex() for ih in info_hashes})
    body = json.dumps({"swarms": swarms, "exp": int(expires_at_unix_s)}, separators=(",", ":"))
    signed = "v1." + _b64(body.encode("utf-8"))
    mac = hmac.new(secret.encode("utf-8"), signed.encode("ascii"), hashlib.sha256).digest()
    return f"{signed}.{_b64(mac)}"


def default_host_addresses() -> tuple[str, ...]:
    """127.0.0.1 plus the IPv4 addresses aioice would gather on (a real browser on this machine
    offers those, often as mDNS names, which aioice resolves)."""
    addresses = ["127.0.0.1"]
    with contextlib.suppress(Exception):
        import aioice.ice

        addresses += [a for a in aioice.ice.get_host_addresses(True, False) if a != "127.0.0.1"]
    return tuple(dict.fromkeys(addresses))


def _console(name: str, module: str) -> list[str]:
    exe = Path(sys.executable).with_name(name)
    return [str(exe)] if exe.exists() else [sys.executable, "-m", module]


class DemoError(RuntimeError):
    """The demo could not start (a port taken, a part that did not come up)."""


def check_page_assets() -> None:
    """The page's files: web_demo/ and hls.js, both in a source checkout only (the wheel
    carries the Python side alone: see the README, "What the Python package contains")."""
    if not (WEB_DEMO / "index.html").exists():
        raise DemoError(
            f"the demo page is not here ({WEB_DEMO}): the installed package carries the Python "
            "side only; run the demo from a source checkout (git clone, then make demo)"
        )
    if not (HLSJS_DIST / "hls.mjs").exists():
        raise DemoError(f"hls.js is missing ({HLSJS_DIST}): run `npm ci` (make install-node)")


def build_page_app(config_doc: dict[str, Any]) -> Starlette:
    """The page's static server: web_demo/, hls.js from node_modules, and config.json."""
    mimetypes.add_type("text/javascript", ".mjs")
    mimetypes.add_type("text/javascript", ".js")
    check_page_assets()

    async def config_json(_: Any) -> JSONResponse:
        return JSONResponse(config_doc, headers={"Cache-Control": "no-store"})

    return Starlette(
        routes=[
            Route("/config.json", config_json),
            Mount("/vendor/hls.js", app=StaticFiles(directory=HLSJS_DIST)),
            Mount("/", app=StaticFiles(directory=WEB_DEMO, html=True)),
        ]
    )


class _PageServer(uvicorn.Server):
    """uvicorn inside our loop: signals stay ours (the launcher stops everything on Ctrl-C)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class Demo:
    """The running demo: servers, agents and the page. Use :func:`run_demo`."""

    def __init__(self, config: DemoConfig) -> None:
        self.config = config
        self.page_port = config.page_port  # the bound one once start() has run
        # 0 (the default): the server binds a free port and says which in its "listening on"
        # line; unlike a port found free here and handed over, no other process can take it
        # in between. The bound ones once start() has run.
        self.origin_port = config.origin_port
        self.signaling_port = config.signaling_port
        self._stdouts: list[ChildStdout] = []
        self._page_sock: socket.socket | None = None
        self.secret = secrets.token_urlsafe(32) if config.tokens else None
        self.token: str | None = None
        self.procs: list[asyncio.subprocess.Process] = []
        self.agent_procs: list[asyncio.subprocess.Process] = []
        self._page_server: uvicorn.Server | None = None
        self._page_task: asyncio.Task[None] | None = None

    @property
    def origin_url(self) -> str:
        return f"http://{self.config.host}:{self.origin_port}"

    @property
    def tracker_url(self) -> str:
        return f"ws://{self.config.host}:{self.signaling_port}/announce"

    @property
    def page_url(self) -> str:
        return f"http://{self.config.host}:{self.page_port}/"

    @property
    def page_origins(self) -> tuple[str, ...]:
        """The page's Origins, the signaling server's allowlist."""
        own = (f"http://{self.config.host}:{self.page_port}", f"http://localhost:{self.page_port}")
        return own + tuple(self.config.extra_origins)

    def master_url(self, stream: str) -> str:
        return f"{self.origin_url}/hls/{stream}/master.m3u8"

    # --- start ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Start everything; on any failure stop what was started and raise.

        The page's port is the one fixed port (8090 by default), so it is bound first: when it
        is taken, :class:`DemoError` names it before anything else has started."""
        check_page_assets()
        try:
            self._page_sock = bind_tcp(self.config.host, self.config.page_port)
        except OSError as exc:
            hint = " (--port N picks another, --port 0 any free one)"
            raise DemoError(
                "the page: " + listen_error(self.config.host, self.config.page_port, exc) + hint
            ) from None
        self.page_port = int(self._page_sock.getsockname()[1])
        try:
            await self._start_origin()
            await self._start_signaling()
            await self._start_page()
            for i in range(self.config.agents):
                await self.start_agent(seed=i)
        except BaseException:
            await self.stop()
            raise

    async def _spawn(
        self, argv: list[str], env: dict[str, str] | None = None, stdout: Any = None
    ) -> Any:
        proc = await asyncio.create_subprocess_exec(
            *argv,
            env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL if stdout is None else stdout,
            start_new_session=True,  # Ctrl-C reaches us only; we stop the children ourselves
        )
        self.procs.append(proc)
        return proc

    async def _spawn_server(
        self, argv: list[str], what: str, env: dict[str, str] | None = None
    ) -> tuple[Any, int]:
        """Start a server (its argv has ``--port``) and wait for the port it listens on."""
        out = ChildStdout()
        self._stdouts.append(out)
        proc = await self._spawn(argv, env, out.file)
        deadline = time.monotonic() + self.config.startup_timeout_s
        while (port := out.port()) is None:
            if proc.returncode is not None:
                raise RuntimeError(f"{what} exited with status {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{what} did not say where it listens")
            await asyncio.sleep(0.05)
        return proc, port

    async def _wait_http(self, url: str, proc: Any, what: str) -> None:
        deadline = time.monotonic() + self.config.startup_timeout_s
        async with httpx.AsyncClient(timeout=2.0, trust_env=False) as client:
            while time.monotonic() < deadline:
                if proc is not None and proc.returncode is not None:
                    raise RuntimeError(f"{what} exited with status {proc.returncode}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await client.get(url)).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        raise RuntimeError(f"{what} did not come up at {url}")

    async def _start_origin(self) -> None:
        c = self.config
        argv = [
            *_console("p2p-origin", "peer_agent.origin.cli"),
            "--host",
            c.host,
            "--port",
            str(self.origin_port),
            "--segment-duration-s",
            str(c.segment_duration_s),
            "--content-duration-s",
            str(c.content_duration_s),
            "--live-window-segments",
            str(c.live_window_segments),
            "--log-level",
            c.log_level,
        ]
        if c.renditions:
            argv += ["--renditions", c.renditions]
        if c.fps:
            argv += ["--fps", str(c.fps)]
        proc, self.origin_port = await self._spawn_server(argv, "the origin")
        await self._wait_http(f"{self.origin_url}/healthz", proc, "the origin")

    async def _start_signaling(self) -> None:
        c = self.config
        argv = [
            *_console("p2p-signaling", "signaling.cli"),
            "--host",
            c.host,
            "--port",
            str(self.signaling_port),
            "--origins",
            ",".join(self.page_origins),
            "--announce-interval-s",
            str(c.announce_interval_s),
            "--log-level",
            c.log_level,
            *c.signaling_args,
        ]
        env = {}
        if self.secret is not None:
            env["P2P_SIGNALING_TOKEN_SECRET"] = self.secret
            swarms = [swarm_id_for(self.master_url(name)) for name in STREAM_NAMES]
            self.token = mint_join_token(self.secret, swarms, int(time.time()) + c.token_ttl_s)
        proc, self.signaling_port = await self._spawn_server(argv, "the signaling server", env)
        url = f"http://{c.host}:{self.signaling_port}/healthz"
        await self._wait_http(url, proc, "the signaling server")

    def page_config(self) -> dict[str, Any]:
        return {
            "origin": self.origin_url,
            "tracker": self.tracker_url,
            "token": self.token,
            "stream": self.config.stream,
            "engine": dict(self.config.engine),
            "hls": dict(self.config.hls),
        }

    async def _start_page(self) -> None:
        app = build_page_app(self.page_config())
        server_config = uvicorn.Config(
            app,
            log_level=self.config.log_level,
            access_log=False,
            lifespan="off",
        )
        self._page_server = _PageServer(server_config)
        assert self._page_sock is not None
        self._page_task = asyncio.create_task(self._page_server.serve(sockets=[self._page_sock]))
        await self._wait_http(f"{self.page_url}config.json", None, "the page server")

    async def start_agent(
        self, *, seed: int, extra: Sequence[str] = (), env: Mapping[str, str] | None = None
    ) -> Any:
        """One more ``p2p-agent`` on the demo stream (its output is discarded); `env`: more
        environment variables for its process."""
        c = self.config
        argv = [
            *_console("p2p-agent", "peer_agent.agent.cli"),
            self.master_url(c.stream),
            "--tracker",
            self.tracker_url,
            "--quiet",
            "--latency-segments",
            str(c.latency_segments + seed % (c.latency_spread_segments + 1)),
            "--seed",
            str(seed),
        ]
        if c.agent_rendition is not None:
            argv += ["--rendition", str(c.agent_rendition)]
        for address in c.host_addresses or default_host_addresses():
            argv += ["--host-address", address]
        argv += [*c.agent_args, *extra]
        # The token goes through the environment, never on a command line.
        proc = await self._spawn(
            argv, {**(env or {}), **({"P2P_AGENT_TOKEN": self.token} if self.token else {})}
        )
        self.agent_procs.append(proc)
        return proc

    # --- stop -------------------------------------------------------------------------------

    async def stop(self) -> None:
        """Stop the agents first (they leave the swarm), then the servers."""
        ordered = list(reversed(self.procs))
        agents = [p for p in ordered if p in self.agent_procs]
        others = [p for p in ordered if p not in self.agent_procs]
        await _terminate(agents)
        if self._page_server is not None:
            self._page_server.should_exit = True
            if self._page_task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(self._page_task, 5.0)
            self._page_server = None
        await _terminate(others)
        self.procs.clear()
        self.agent_procs.clear()
        if self._page_sock is not None:
            self._page_sock.close()
            self._page_sock = None
        for out in self._stdouts:
            out.close()
        self._stdouts.clear()


async def _terminate(procs: Sequence[Any], timeout_s: float = 8.0) -> None:
    for proc in procs:
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


@contextlib.asynccontextmanager
async def run_demo(config: DemoConfig | None = None) -> AsyncIterator[Demo]:
    demo = Demo(config or DemoConfig())
    await demo.start()
    try:
        yield demo
    finally:
        await demo.stop()


# --- command line -----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    d = DemoConfig()
    p = argparse.ArgumentParser(
        prog="python -m peer_agent.demo",
        description="Run the p2p-hls demo: origin, signaling, the page and headless agents.",
        epilog="Exit status: 0 after Ctrl-C/SIGTERM stopped everything it started; 1 when a "
        "part could not start (e.g. the page port is taken: one line says which; everything "
        "started so far is stopped); 2 on bad arguments.",
    )
    p.add_argument("--host", default=d.host, help="(default: %(default)s)")
    p.add_argument("--port", type=int, default=d.page_port, help="page port (default: %(default)s)")
    p.add_argument("--agents", type=int, default=d.agents, help="(default: %(default)s)")
    p.add_argument("--stream", default=d.stream, choices=STREAM_NAMES)
    p.add_argument("--segment-duration-s", type=float, default=d.segment_duration_s)
    p.add_argument("--content-duration-s", type=float, default=d.content_duration_s)
    p.add_argument("--renditions", default=d.renditions, help="origin renditions")
    p.add_argument("--no-tokens", action="store_true", help="signaling without join tokens")
    p.add_argument("--log-level", default=d.log_level, help="(default: %(default)s)")
    return p


async def _main(config: DemoConfig) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with run_demo(config) as demo:
        print(f"Demo: {demo.page_url}", flush=True)
        print(
            f"  origin {demo.origin_url}/streams, tracker {demo.tracker_url}, "
            f"{config.agents} agents on {config.stream}; Ctrl-C stops everything",
            flush=True,
        )
        await stop.wait()
        print("stopping…", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING))
    config = DemoConfig(
        host=args.host,
        page_port=args.port,
        agents=args.agents,
        stream=args.stream,
        segment_duration_s=args.segment_duration_s,
        content_duration_s=args.content_duration_s,
        renditions=args.renditions,
        tokens=not args.no_tokens,
        log_level=args.log_level,
    )
    try:
        asyncio.run(_main(config))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        error("demo", str(exc))
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
