"""The engine as a web developer gets it: ``npm pack``'s tarball installed into an empty folder.

1. a page importing ``p2p-hls-engine`` through an import map (no bundler) and a page bundled by
   esbuild from the same source both play the demo's live stream, and the bundled page takes
   segments from the import-map page (its ``segment-loaded`` events name that peer); with P2P
   switched off at runtime it plays on from the CDN alone, and rejoins when switched on; both
   verify segments against a hash service (``hashService``), as on an origin without manifests;
2. the same page served from an Origin the signaling server does not allow gets the ``error``
   event with reason ``origin_forbidden`` (close 4003), stops retrying, and plays from the CDN.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import mimetypes
import socket
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from browser_support import (
    DEMO_MEDIA,
    HLSJS,
    ROOT,
    browser_context,
    open_demo_page,
    require_browser_stack,
    wait_for,
)
from starlette.applications import Starlette
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from p2p_cli.serving import bind_tcp
from peer_agent.demo import DemoConfig, run_demo
from signaling.hashsvc import HashServiceConfig, run_hash_service

pytestmark = [pytest.mark.browser, pytest.mark.slow, pytest.mark.timeout(180)]

# The page's own code: it imports the package by name, as any page would.
PAGE_JS = """
import Hls from "/vendor/hls.mjs";
import { P2PEngine } from "p2p-hls-engine";

const config = await (await fetch("/config.json", { cache: "no-store" })).json();
window.events = [];
const p2p = new P2PEngine({ ...config.engine, tracker: config.tracker, token: config.token, Hls });
const names = ["error", "warning", "tracker-connected", "segment-loaded", "peer-connected",
  "integrity-mode"];
for (const name of names) {
  p2p.on(name, (e) => window.events.push({ ...e }));
}
window.p2p = p2p;
window.supported = P2PEngine.isSupported();
const video = document.querySelector("video");
const hls = new Hls({ liveSyncDurationCount: 3, ...p2p.hlsConfig() });
hls.attachMedia(video);
hls.loadSource(config.url);
video.muted = true;
video.play().catch(() => {});
"""

HTML = """<!doctype html><html><head><meta charset="utf-8"><title>package page</title>
{head}</head><body><video muted playsinline></video>
<script type="module" src="{script}"></script></body></html>"""


@pytest.fixture(autouse=True)
def _browser_stack() -> None:
    require_browser_stack()


def install_package(into: Path) -> Path:
    """``npm pack`` the repo, install the tarball offline into ``into``; esbuild the page."""
    npm = ["npm", "--loglevel=error", "--no-audit", "--no-fund"]
    out = subprocess.run(
        [*npm, "pack", "--json", "--pack-destination", str(into)],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    tarball = into / json.loads(out)[0]["filename"]
    app = into / "app"
    app.mkdir()
    (app / "package.json").write_text('{"name": "page", "private": true, "type": "module"}')
    subprocess.run([*npm, "install", "--offline", str(tarball)], cwd=app, check=True)
    (app / "page.js").write_text(PAGE_JS)
    esbuild = ROOT / "node_modules" / ".bin" / "esbuild"
    subprocess.run(
        [
            str(esbuild),
            "page.js",
            "--bundle",
            "--format=esm",
            "--external:/vendor/*",
            "--outfile=bundle.js",
            "--log-level=warning",
        ],
        cwd=app,
        check=True,
    )
    return app


def page_app(app: Path, config_doc: dict[str, Any]) -> Starlette:
    mimetypes.add_type("text/javascript", ".js")
    mimetypes.add_type("text/javascript", ".mjs")
    import_map = json.dumps(
        {"imports": {"p2p-hls-engine": "/node_modules/p2p-hls-engine/web_demo/index.js"}}
    )
    pages = {
        "importmap": HTML.format(
            head=f'<script type="importmap">{import_map}</script>', script="/page.js"
        ),
        "bundle": HTML.format(head="", script="/bundle.js"),
    }

    async def config_json(_: Any) -> JSONResponse:
        return JSONResponse(config_doc, headers={"Cache-Control": "no-store"})

    async def page(request: Any) -> HTMLResponse:
        return HTMLResponse(pages[request.path_params["name"]])

    return Starlette(
        routes=[
            Route("/config.json", config_json),
            Route("/{name:str}.html", page),
            Mount("/vendor", app=StaticFiles(directory=HLSJS.parent)),
            Mount("/", app=StaticFiles(directory=app)),
        ]
    )


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Any:
        yield


@contextlib.asynccontextmanager
async def serve(app: Starlette, sock: socket.socket | None = None) -> AsyncIterator[str]:
    """Serve ``app`` on ``sock`` (a listening socket the caller bound, so that it knew the port
    first and no other process could take it), or on a free port of its own."""
    sock = sock if sock is not None else bind_tcp("127.0.0.1", 0)
    port = int(sock.getsockname()[1])
    server = _Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()


def playing_past(t: float) -> Any:
    return lambda s: s["mediaError"] is None and s["currentTime"] > t


async def peer_segments(page: Any, peer_id: str, timeout_s: float) -> list[dict[str, Any]]:
    """The page's segment-loaded events from ``peer_id`` (non-empty), waiting up to timeout_s."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while True:
        found = [
            e
            for e in await events(page, "segment-loaded")
            if e["source"] == "peer" and e["peerId"] == peer_id and e["bytes"] > 0
        ]
        if found or loop.time() > deadline:
            return found
        await asyncio.sleep(0.25)


async def events(page: Any, name: str) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = await page.evaluate(
        "(n) => window.events.filter((e) => e.type === n)", name
    )
    return found


async def test_installed_package_plays_with_p2p_via_import_map_and_bundle(tmp_path: Path) -> None:
    app = install_package(tmp_path)
    page_sock = bind_tcp("127.0.0.1", 0)  # the signaling server must allow its Origin
    port = int(page_sock.getsockname()[1])
    log_a: list[str] = []
    log_b: list[str] = []
    config = DemoConfig(
        page_port=0, agents=0, extra_origins=(f"http://127.0.0.1:{port}",), **DEMO_MEDIA
    )
    async with run_demo(config) as demo, browser_context() as context:
        hashsvc = HashServiceConfig(allow_prefixes=(f"{demo.origin_url}/hls/",), port=0)
        doc: dict[str, Any] = {}  # config.json, read at request time
        async with run_hash_service(hashsvc) as svc, serve(page_app(app, doc), page_sock) as base:
            doc.update(
                tracker=demo.tracker_url,
                token=demo.token,
                url=demo.master_url("live-ts"),
                engine={"hashService": svc.base_url},
            )
            a = await open_demo_page(context, f"{base}/importmap.html", log_a)
            sa = await wait_for(a, playing_past(2.0), 60, "the import-map page to play", log_a)
            assert sa["trackerConnected"] and await a.evaluate("window.supported"), sa
            b = await open_demo_page(context, f"{base}/bundle.html", log_b)
            sb = await wait_for(
                b,
                lambda s: s["bytesFromPeers"] > 0 and s["currentTime"] > 1.0,
                60,
                "the bundled page to play with bytes from the import-map page",
                log_b,
            )
            # bytesFromPeers counts bytes as they arrive: wait for a whole segment from the peer.
            loaded_b = await peer_segments(b, sa["peerId"], 60)
            assert loaded_b, await events(b, "segment-loaded")
            assert await events(a, "tracker-connected"), log_a
            assert not await events(a, "error") and not await events(b, "error")
            sources_a = {e["source"] for e in await events(a, "segment-loaded")}
            assert sources_a & {"cdn", "peer", "store"}, sources_a
            [mode] = await events(a, "integrity-mode")
            assert mode["mode"] == "sha256", mode
            assert mode["manifestUrl"].startswith(f"{svc.base_url}/manifest?playlist="), mode
            hashed = svc.stats()
            assert hashed["requests"] >= 2 and hashed["segments_hashed"] >= 3, hashed
            # P2P off at runtime: the bundled page leaves the swarm and plays on from the CDN
            # alone; on again: it rejoins.
            await b.evaluate("window.p2p.setP2PEnabled(false)")
            off = await wait_for(
                b,
                lambda s: not s["p2pEnabled"] and s["connectedPeers"] == 0,
                30,
                "the bundled page to leave the swarm",
                log_b,
            )
            cdn_then, t_then = off["bytesFromCdn"], off["currentTime"]
            on_cdn = await wait_for(
                b,
                lambda s: s["bytesFromCdn"] > cdn_then and playing_past(t_then + 2.0)(s),
                40,
                "the bundled page to play on from the CDN",
                log_b,
            )
            assert on_cdn["bytesFromPeers"] == off["bytesFromPeers"], (off, on_cdn)
            await b.evaluate("window.p2p.setP2PEnabled(true)")
            await wait_for(
                b,
                lambda s: s["trackerConnected"] and s["connectedPeers"] >= 1,
                40,
                "the bundled page to rejoin the swarm",
                log_b,
            )
    assert sb["hashFailures"] == 0 and sb["integrity"] == "sha256", sb
    print(
        f"bundled page: {sb['bytesFromPeers']} B from peers, {sb['bytesFromCdn']} B from the CDN; "
        f"{len(loaded_b)} segment-loaded events"
    )


async def test_a_refused_origin_gets_the_origin_forbidden_error_event(tmp_path: Path) -> None:
    app = install_package(tmp_path)
    log: list[str] = []
    config = DemoConfig(page_port=0, agents=0, **DEMO_MEDIA)  # allows only the demo page
    async with run_demo(config) as demo, browser_context() as context:
        doc = {"tracker": demo.tracker_url, "token": demo.token, "url": demo.master_url("live-ts")}
        async with serve(page_app(app, doc)) as base:
            page = await open_demo_page(context, f"{base}/importmap.html", log)
            s = await wait_for(
                page,
                lambda s: s["trackerRefused"] is not None and s["currentTime"] > 1.0,
                60,
                "the refusal and CDN playback",
                log,
            )
            errors = await events(page, "error")
            await asyncio.sleep(2.0)  # no retries: still exactly one error
            assert len(await events(page, "error")) == 1, errors
    assert s["trackerRefused"] == "origin_forbidden", s
    [error] = errors
    assert (error["source"], error["reason"], error["code"], error["fatal"]) == (
        "tracker",
        "origin_forbidden",
        4003,
        True,
    ), error
    assert "--origins" in error["message"], error
    assert s["bytesFromCdn"] > 0 and s["bytesFromPeers"] == 0 and not s["trackerConnected"], s
    assert any("origin_forbidden" in line for line in log), log[-10:]
