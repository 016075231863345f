"""Chromium plays the generated streams, natively and through hls.js.

Skipped unless Debian's Chromium and the playwright package are installed; the hls.js test also
needs ``hls.min.js`` (``node_modules/hls.js/dist/`` or the path in ``$HLSJS_PATH``).
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest
from origin_support import origin_config

from peer_agent.origin import MediaSet
from peer_agent.origin.server import run_origin

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
HLSJS = Path(
    os.environ.get("HLSJS_PATH")
    or Path(__file__).resolve().parents[2] / "node_modules" / "hls.js" / "dist" / "hls.min.js"
)
async_api = pytest.importorskip("playwright.async_api")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
]

# Resolves once the video has played ``untilS`` seconds, or reports why not.
WAIT_JS = """
  const fatal = [];
  const done = new Promise((resolve) => {
    const t0 = performance.now();
    const check = () => {
      if (fatal.length) return resolve({error: fatal});
      if (v.error) return resolve({error: v.error.code + ' ' + (v.error.message || '')});
      if (v.currentTime >= untilS) {
        return resolve({
          time: v.currentTime, width: v.videoWidth, height: v.videoHeight,
          decoded: v.getVideoPlaybackQuality().totalVideoFrames,
        });
      }
      if (performance.now() - t0 > timeoutMs) {
        return resolve({timeout: v.currentTime, state: v.readyState, net: v.networkState});
      }
      setTimeout(check, 50);
    };
    check();
  });
"""

NATIVE_JS = (
    """
async ([url, untilS, timeoutMs]) => {
  const v = document.createElement('video');
  v.muted = true;
  document.body.appendChild(v);
  if (!v.canPlayType('application/vnd.apple.mpegurl')) return {skip: 'no native HLS'};
"""
    + WAIT_JS
    + """
  v.src = url;
  v.play().catch(() => {});
  return await done;
}
"""
)

HLSJS_JS = (
    """
async ([url, untilS, timeoutMs]) => {
  if (!Hls.isSupported()) return {skip: 'hls.js not supported'};
  const v = document.createElement('video');
  v.muted = true;
  document.body.appendChild(v);
  const hls = new Hls({liveSyncDurationCount: 3});
"""
    + WAIT_JS
    + """
  hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) fatal.push(d.type + ':' + d.details); });
  hls.attachMedia(v);
  hls.loadSource(url);
  v.play().catch(() => {});
  const result = await done;
  hls.destroy();
  return result;
}
"""
)


PATHS = [
    "vod-ts/master.m3u8",
    "vod-fmp4/master.m3u8",
    "vod-byterange/hi/index.m3u8",
    "live-ts/master.m3u8",
    "live-fmp4/hi/index.m3u8",
]


async def play_all(media: MediaSet, script: str, hlsjs: Path | None = None) -> dict[str, Any]:
    """Play every path in its own page of one Chromium; returns path -> result."""
    async with (
        run_origin(origin_config(), media=media, clock=time.time) as origin,
        async_api.async_playwright() as pw,
    ):
        browser = await pw.chromium.launch(
            executable_path=CHROMIUM, args=["--autoplay-policy=no-user-gesture-required"]
        )
        try:

            async def play(path: str) -> dict[str, Any]:
                page = await browser.new_page()
                await page.goto(origin.url("/healthz"))
                if hlsjs is not None:
                    await page.add_script_tag(path=str(hlsjs))
                url = origin.url(f"/hls/{path}")
                # VOD is 3 s long; live plays past a loop of the content (a discontinuity)
                until_s = 4.5 if path.startswith("live") else 2.5
                return dict(await page.evaluate(script, [url, until_s, 20_000]))

            results = await asyncio.gather(*(play(p) for p in PATHS))
        finally:
            await browser.close()
    return dict(zip(PATHS, results, strict=True))


def check(by_path: dict[str, Any]) -> None:
    results = list(by_path.values())
    if all("skip" in r for r in results):
        pytest.skip(results[0]["skip"])
    for path, result in by_path.items():
        assert "time" in result, (path, result)
        assert result["decoded"] > 25, (path, result)
        assert result["width"] in (160, 320), (path, result)


async def test_chromium_plays_every_stream_natively(media: MediaSet) -> None:
    check(await play_all(media, NATIVE_JS))


@pytest.mark.skipif(not HLSJS.exists(), reason="needs hls.js (node_modules or $HLSJS_PATH)")
async def test_hlsjs_plays_every_stream(media: MediaSet) -> None:
    check(await play_all(media, HLSJS_JS, HLSJS))
