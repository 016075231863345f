"""Run inside a bed namespace: headless Chromium opens the bed probe page and prints its result.

``python tests/netbed/browser_probe.py PAGE_URL TIMEOUT_S`` prints one JSON line: the page's
``window.bedResult`` (``{"ok", "setup_s", "local", "remote", "ice_servers", "ice_failures"}``), or
``{"ok": false, "error": ...}`` when no link opened in time.
"""

from __future__ import annotations

import asyncio
import json
import sys

from playwright.async_api import async_playwright

ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-features=WebRtcHideLocalIpsWithMdns",
]


async def main(url: str, timeout_s: float) -> dict[str, object]:
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path="/usr/bin/chromium", args=ARGS)
        try:
            page = await browser.new_page()
            await page.goto(url)
            try:
                await page.wait_for_function("window.bedResult", timeout=timeout_s * 1000)
            except Exception as exc:  # playwright's TimeoutError
                return {
                    "ok": False,
                    "error": f"no link within {timeout_s} s ({type(exc).__name__})",
                }
            result = await page.evaluate("window.bedResult")
            await page.wait_for_timeout(2000)  # the other side reads our HELLO too
            return dict(result)
        finally:
            await browser.close()


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(sys.argv[1], float(sys.argv[2])))), flush=True)
