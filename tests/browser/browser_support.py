"""Shared helpers of the real-browser tests (a uniquely named module, importable from any test
directory order): Debian's Chromium through Playwright, with the flags docs/DESIGN.md requires
for loopback WebRTC, and the demo stack (``peer_agent.demo``) with small live streams.

Missing Chromium, Playwright or hls.js skips these tests on a developer box, and fails them
loudly under CI (environment variable ``CI`` set).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
HLSJS = ROOT / "node_modules" / "hls.js" / "dist" / "hls.mjs"

CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
    "--mute-audio",
    "--allow-loopback-in-peer-connection",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]

# Small live streams: 2-second segments, one tiny rendition (hls.js then has a single level, so
# the page and the agents always watch the same rendition).
DEMO_MEDIA: dict[str, Any] = {
    "segment_duration_s": 2.0,
    "content_duration_s": 24.0,
    "renditions": "lo:160x90@120000",
    "fps": 10,
    "live_window_segments": 6,
    "host_addresses": ("127.0.0.1",),
}


def require_browser_stack() -> None:
    """Skip (or, under CI, fail) unless Chromium, Playwright and hls.js are all here."""
    missing = []
    if not (Path(CHROMIUM).exists() or shutil.which("chromium")):
        missing.append("Debian's chromium (/usr/bin/chromium)")
    try:
        import playwright.async_api  # noqa: F401
    except ImportError:
        missing.append("the playwright Python package")
    if not HLSJS.exists():
        missing.append("hls.js (node_modules/hls.js: npm ci)")
    if missing:
        message = "browser tests need " + ", ".join(missing)
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def chromium_path() -> str:
    return CHROMIUM if Path(CHROMIUM).exists() else str(shutil.which("chromium"))


@contextlib.asynccontextmanager
async def browser_context() -> AsyncIterator[Any]:
    """One headless Chromium and one context allowed to gather loopback ICE candidates."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
        try:
            context = await browser.new_context(viewport={"width": 1280, "height": 720})
            await context.grant_permissions(["camera", "microphone"])
            yield context
        finally:
            await browser.close()


# hls.js alone, as a page embedding it without the engine would (the demo page's back buffer
# and live sync), in a document of the demo's page server (a loopback Origin, like the demo
# page: Chromium lets it reach the loopback origin) with the same hls.js build. Argument: the
# master playlist's URL.
PLAIN_JS = """async (url) => {
  const { default: Hls } = await import('/vendor/hls.js/hls.mjs');
  document.body.replaceChildren();
  const video = document.body.appendChild(document.createElement('video'));
  video.muted = true;
  const hls = (window.hls = new Hls({liveSyncDurationCount: 3, backBufferLength: 30}));
  hls.attachMedia(video);
  hls.loadSource(url);
  video.play().catch(() => {});
}"""
STATS_JS = """() => {
  const v = document.querySelector('video');
  if (!window.p2p) return null;
  const s = window.p2p.stats();
  return {...s, currentTime: v.currentTime, paused: v.paused,
          mediaError: v.error ? v.error.code : null};
}"""


async def open_demo_page(context: Any, url: str, log: list[str]) -> Any:
    page = await context.new_page()
    page.on("console", lambda m: log.append(f"{m.type}: {m.text}"[:400]))
    page.on("pageerror", lambda e: log.append(f"pageerror: {e}"))
    await page.goto(url)
    return page


async def stats(page: Any) -> dict[str, Any]:
    result = await page.evaluate(STATS_JS)
    assert result is not None, "window.p2p is missing"
    return dict(result)


async def wait_for(
    page: Any, predicate: Any, timeout_s: float, what: str, log: list[str] | None = None
) -> dict[str, Any]:
    """Poll the page's stats until ``predicate(stats)`` holds; fail with the last stats."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        with contextlib.suppress(AssertionError):
            last = await stats(page)
            if predicate(last):
                return last
        await asyncio.sleep(0.5)
    last.pop("history", None)
    tail = "\n".join((log or [])[-30:])
    raise AssertionError(f"timed out waiting for {what}; last stats: {last}\n{tail}")
