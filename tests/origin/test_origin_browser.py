"""Chromium plays the generated streams (its native HLS player; hls.js is tested elsewhere).

Skipped unless Debian's Chromium and the playwright package are installed.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from typing import Any

import pytest
from conftest import origin_config

from peer_agent.origin import MediaSet
from peer_agent.origin.server import run_origin

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
async_api = pytest.importorskip("playwright.async_api")

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("chromium") is None, reason="needs Debian's chromium"),
]

PLAY_JS = """
async ([url, untilS, timeoutMs]) => {
  const v = document.createElement('video');
  v.muted = true;
  document.body.appendChild(v);
  if (!v.canPlayType('application/vnd.apple.mpegurl')) return {skip: 'no native HLS'};
  const done = new Promise((resolve) => {
    const t0 = performance.now();
    const check = () => {
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
  v.src = url;
  v.play().catch(() => {});
  return await done;
}
"""


PATHS = [
    "vod-ts/master.m3u8",
    "vod-fmp4/master.m3u8",
    "vod-byterange/hi/index.m3u8",
    "live-ts/master.m3u8",
    "live-fmp4/hi/index.m3u8",
]


async def test_chromium_plays_every_stream(media: MediaSet) -> None:
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
                url = origin.url(f"/hls/{path}")
                # VOD is 3 s long; live plays past a loop of the content (a discontinuity)
                until_s = 4.5 if path.startswith("live") else 2.5
                return dict(await page.evaluate(PLAY_JS, [url, until_s, 20_000]))

            results = await asyncio.gather(*(play(p) for p in PATHS))
        finally:
            await browser.close()
    by_path = dict(zip(PATHS, results, strict=True))
    if all("skip" in r for r in results):
        pytest.skip(results[0]["skip"])
    for path, result in by_path.items():
        assert "time" in result, (path, result)
        assert result["decoded"] > 25, (path, result)
        assert result["width"] in (160, 320), (path, result)
