"""Chromium without Playwright, for the soak (issue 17): a bare DevTools (CDP) client that
perturbs the pages it measures as little as it can.

Playwright enables the Network domain (and Runtime, Log, Page...) on every page it drives, and
the DevTools Network agent keeps response bodies in the renderer for as long as the session
lives (bench/soak_bench.py's docstring): renderer memory measured under Playwright grows with
the bytes a page fetches. Here the browser is Debian's chromium started directly with
``--remote-debugging-port=0``; pages are opened from the browser's own CDP connection
(``Target.createTarget``), which enables nothing on them, and a page is attached to only while it
is sampled (:meth:`Browser.session`: attach, a few commands, detach). No domain is ever enabled
on a page: ``Runtime.evaluate``, ``Runtime.getHeapUsage``, ``HeapProfiler.collectGarbage`` and
``Memory.getDOMCounters`` work without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

# What Playwright passes to keep background pages running like foreground ones (several pages
# in one headless browser), on top of the tests' flags (tests/browser/browser_support.py).
UNTHROTTLED_ARGS = [
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
]


class CdpError(RuntimeError):
    """A DevTools command failed (its error message), or the browser went away."""


class Browser:
    """One Chromium process and its browser-level CDP connection."""

    def __init__(self, proc: Any, ws: Any, user_dir: tempfile.TemporaryDirectory[str]) -> None:
        self.proc = proc
        self._ws = ws
        self._user_dir = user_dir
        self._ids = itertools.count(1)
        self._pending: dict[int, asyncio.Future[dict[str, Any]]] = {}
        # (session id, event method) -> callback of the event's params (heap_snapshot)
        self._listeners: dict[tuple[str | None, str], Any] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for raw in self._ws:
                msg = json.loads(raw)
                if "id" not in msg:  # an event
                    listener = self._listeners.get((msg.get("sessionId"), msg.get("method", "")))
                    if listener is not None:
                        listener(msg.get("params", {}))
                    continue
                fut = self._pending.pop(msg["id"], None)
                if fut is None or fut.done():
                    continue
                if "error" in msg:
                    fut.set_exception(CdpError(msg["error"].get("message", str(msg["error"]))))
                else:
                    fut.set_result(msg.get("result", {}))
        finally:
            for fut in self._pending.values():
                if not fut.done():
                    fut.set_exception(CdpError("the browser's DevTools connection closed"))

    async def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        session_id: str | None = None,
        timeout_s: float = 60.0,
    ) -> dict[str, Any]:
        msg_id = next(self._ids)
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._pending[msg_id] = fut
        msg: dict[str, Any] = {"id": msg_id, "method": method, "params": params or {}}
        if session_id is not None:
            msg["sessionId"] = session_id
        await self._ws.send(json.dumps(msg))
        try:
            return await asyncio.wait_for(fut, timeout_s)
        finally:
            self._pending.pop(msg_id, None)

    async def open_page(self, url: str) -> str:
        """A new window at `url` (no session attached to it); its target id. Each page gets its own
        window: a muted video in a background tab would not play."""
        params = {"url": url, "newWindow": True}
        return str((await self.send("Target.createTarget", params))["targetId"])

    @contextlib.asynccontextmanager
    async def session(self, target_id: str) -> AsyncIterator[Session]:
        """A DevTools session on one page for the length of the block, detached after."""
        attached = await self.send(
            "Target.attachToTarget", {"targetId": target_id, "flatten": True}
        )
        session = Session(self, str(attached["sessionId"]))
        try:
            yield session
        finally:
            with contextlib.suppress(CdpError, ConnectionError):
                await self.send("Target.detachFromTarget", {"sessionId": session.id})

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.send("Browser.close", timeout_s=10.0)
        with contextlib.suppress(Exception):
            await self._ws.close()
        self._reader.cancel()
        try:
            await asyncio.wait_for(self.proc.wait(), 10.0)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()
        self._user_dir.cleanup()


class Session:
    """Commands on one attached page."""

    def __init__(self, browser: Browser, session_id: str) -> None:
        self.browser = browser
        self.id = session_id

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return await self.browser.send(method, params, session_id=self.id)

    async def evaluate(self, function_js: str, *args: Any) -> Any:
        """Call a JS function source with JSON arguments in the page; its (awaited) value."""
        call = f"({function_js})({', '.join(json.dumps(a) for a in args)})"
        out = await self.send(
            "Runtime.evaluate",
            {"expression": call, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in out:
            details = out["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CdpError(f"page script failed: {text}")
        return out["result"].get("value")

    async def heap_snapshot(self) -> dict[str, Any]:
        """A V8 heap snapshot of the page (HeapProfiler.takeHeapSnapshot; its chunks arrive as
        events on this session), parsed."""
        chunks: list[str] = []
        key = (self.id, "HeapProfiler.addHeapSnapshotChunk")
        self.browser._listeners[key] = lambda p: chunks.append(p["chunk"])
        try:
            await self.browser.send(
                "HeapProfiler.takeHeapSnapshot",
                {"reportProgress": False},
                session_id=self.id,
                timeout_s=300.0,
            )
        finally:
            del self.browser._listeners[key]
        snapshot: dict[str, Any] = json.loads("".join(chunks))
        return snapshot


@contextlib.asynccontextmanager
async def launch(
    chromium: str, args: list[str], start_timeout_s: float = 60.0
) -> AsyncIterator[Browser]:
    """Start `chromium` headless with `args` and a fresh profile; connect to its DevTools."""
    from websockets.asyncio.client import connect

    user_dir = tempfile.TemporaryDirectory(prefix="p2p-soak-chromium-")
    proc = await asyncio.create_subprocess_exec(
        chromium,
        *args,
        *UNTHROTTLED_ARGS,
        f"--user-data-dir={user_dir.name}",
        "--remote-debugging-port=0",
        "about:blank",
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    port_file = Path(user_dir.name) / "DevToolsActivePort"
    deadline = time.monotonic() + start_timeout_s
    while not (port_file.exists() and len(port_file.read_text().splitlines()) >= 2):
        if proc.returncode is not None or time.monotonic() > deadline:
            proc.kill()
            user_dir.cleanup()
            raise CdpError(f"chromium did not open its DevTools port (exit {proc.returncode})")
        await asyncio.sleep(0.1)
    port, path = port_file.read_text().splitlines()[:2]
    ws = await connect(f"ws://127.0.0.1:{port}{path}", max_size=None, ping_interval=None)
    browser = Browser(proc, ws, user_dir)
    try:
        yield browser
    finally:
        await browser.close()
