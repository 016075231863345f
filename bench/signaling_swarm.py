"""Signaling with one big swarm: announce cost, offer relay latency and memory per member at
1,000, 10,000 and 100,000 members of a single swarm (issue 16). Part of ``bench.signaling_bench``.

Two measurements per size, each in its own process:

- the registry alone (``--registry N``): N members joined with our clients' hints (position,
  region, peer limit), then re-announces with 5 offer targets by random members: time per
  announce (p50/p99, pairing included), candidates pairing read per announce, and the Python
  heap per member (``tracemalloc``) and RSS growth per member;
- a real ``p2p-signaling`` process: N members join one swarm over loopback WebSockets, then
  ``PROBES`` members re-announce every ``interval`` with 2 offers each. Offer relay latency is
  from the offerer's send to the target's receive (monotonic clock shared by the processes);
  announce latency from the announce's send to its reply. The swarm's members are multiplexed
  over connections (``MEMBERS_PER_CONNECTION`` peer_ids on each, ``max_swarms_per_connection``
  raised to match): 100,000 sockets do not fit this shared 2-core machine next to their
  clients, and per-connection cost is the other table's business; RSS per member here is the
  server's growth over its idle RSS divided by members, so it is what membership costs.

Flat means: the 100,000-member figures within 2x of the 1,000-member ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import re
import resource
import subprocess
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

from p2p_cli.serving import ChildStdout

ROOT = Path(__file__).resolve().parents[1]
INFO_HASH = "bench-one-swarm-0001"
MEMBERS_PER_CONNECTION = 500
PROBES = 50
SDP_PAD = "a=x-pad:" + "0" * 600
REGIONS = ("eu-west", "eu-east", "us-east", "us-west")
COLUMNS = [
    "members",
    "registry_announce_us_p50",
    "registry_announce_us_p99",
    "pairing_candidates_per_announce",
    "registry_heap_bytes_per_member",
    "registry_rss_bytes_per_member",
    "server_cpu_ms_per_announce",
    "server_announce_ms_p50",
    "server_announce_ms_p99",
    "offer_relay_ms_p50",
    "offer_relay_ms_p99",
    "server_rss_bytes_per_member",
    "fill_s",
    "errors",
]


def _rss_kib(pid: int | str = "self") -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


def _cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _member_id(n: int) -> str:
    return f"-SW0001-{n:012d}"


def _hints(n: int) -> dict[str, Any]:
    return {"position_s": float(n % 600), "region": REGIONS[n % len(REGIONS)], "max_peers": 20}


# -- the registry alone ------------------------------------------------------------------------


def registry_main(members: int, announces: int) -> dict[str, Any]:
    from signaling.pairing import PeerHints
    from signaling.registry import InMemorySwarmRegistry, RegistryLimits

    rng = random.Random(members)
    reg = InMemorySwarmRegistry(RegistryLimits(max_peers_per_swarm=members + 1), rng)
    hints = [PeerHints(**_hints(n)) for n in range(len(REGIONS) * 600)]  # shared, as parsed
    rss0 = _rss_kib()
    tracemalloc.start()
    heap0 = tracemalloc.get_traced_memory()[0]
    for n in range(members):
        reg.announce(
            0.0, f"c{n}", INFO_HASH, _member_id(n), event="started", seeding=False,
            hints=hints[n % len(hints)], want_targets=0,
        )  # fmt: skip
    heap1 = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rss1 = _rss_kib()
    times_us: list[float] = []
    read0 = reg.pairing_candidates_read
    cpu0 = time.process_time()
    for i in range(announces):
        n = rng.randrange(members)
        t = time.perf_counter_ns()
        result = reg.announce(
            1.0 + i * 1e-6, f"c{n}", INFO_HASH, _member_id(n), event=None, seeding=None,
            hints=hints[n % len(hints)], want_targets=5,
        )  # fmt: skip
        times_us.append((time.perf_counter_ns() - t) / 1000)
        assert len(result.targets) == 5
    cpu_s = time.process_time() - cpu0
    return {
        "members": members,
        "registry_announce_us_p50": round(_pct(times_us, 0.5) or 0, 1),
        "registry_announce_us_p99": round(_pct(times_us, 0.99) or 0, 1),
        "registry_announce_cpu_us_mean": round(cpu_s / announces * 1e6, 1),
        "pairing_candidates_per_announce": (reg.pairing_candidates_read - read0) / announces,
        "registry_heap_bytes_per_member": round((heap1 - heap0) / members),
        "registry_rss_bytes_per_member": round((rss1 - rss0) * 1024 / members),
    }


# -- a real server -----------------------------------------------------------------------------


class _Load:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.url: str = spec["url"]
        self.members: int = spec["members"]
        self.interval_s: float = spec["interval_s"]
        self.window_s: float = spec["window_s"]
        self.measuring = False
        self.relay_ms: list[float] = []
        self.announce_ms: list[float] = []
        self.announces_sent = 0
        self.errors: dict[str, int] = {}
        self.stop = asyncio.Event()

    def _err(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    def _on_message(self, raw: str | bytes) -> dict[str, Any]:
        msg: dict[str, Any] = json.loads(raw)
        if "offer" in msg and self.measuring:
            sent_ns = int(msg["offer"]["sdp"].split(" ", 2)[1])
            self.relay_ms.append((time.monotonic_ns() - sent_ns) / 1e6)
        elif "failure reason" in msg:
            self._err(f"failure:{msg.get('reason')}")
        return msg

    async def filler(self, first: int, count: int, joined: asyncio.Queue[int]) -> None:
        """One connection holding ``count`` members; it receives offers and never answers."""
        import websockets

        ws = await websockets.connect(
            self.url, max_size=None, open_timeout=120, ping_interval=None, compression=None
        )
        try:
            for n in range(first, first + count):
                announce = {
                    "action": "announce", "info_hash": INFO_HASH, "peer_id": _member_id(n),
                    "numwant": 0, "event": "started", "offers": [], **_hints(n),
                }  # fmt: skip
                await ws.send(json.dumps(announce))
            replies = 0
            async for raw in ws:
                msg = self._on_message(raw)
                if "interval" in msg or "failure reason" in msg and replies < count:
                    replies += 1
                    if replies == count:
                        joined.put_nowait(count)
        except websockets.ConnectionClosed:
            if not self.stop.is_set():
                self._err("filler_closed")
        finally:
            await ws.close()

    async def probe(self, n: int, go: asyncio.Event) -> None:
        import websockets

        ws = await websockets.connect(
            self.url, max_size=None, open_timeout=120, ping_interval=None, compression=None
        )
        sent_at: list[int] = []
        reply = asyncio.Event()

        async def announcer() -> None:
            await go.wait()
            await asyncio.sleep(random.random() * self.interval_s)
            k = 0
            while not self.stop.is_set():
                k += 1
                now_ns = time.monotonic_ns()
                offers = [
                    {"offer_id": f"{k:08d}-{i}-{n:06d}",
                     "offer": {"type": "offer", "sdp": f"v=0 {now_ns} {SDP_PAD}"}}
                    for i in range(2)
                ]  # fmt: skip
                reply.clear()
                sent_at.append(now_ns)
                self.announces_sent += 1
                await ws.send(
                    json.dumps(
                        {
                            "action": "announce",
                            "info_hash": INFO_HASH,
                            "peer_id": _member_id(n),
                            "numwant": 2,
                            "offers": offers,
                            **_hints(n),
                        }  # fmt: skip
                    )
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.interval_s)

        task = asyncio.get_running_loop().create_task(announcer())
        try:
            await ws.send(
                json.dumps(
                    {
                        "action": "announce",
                        "info_hash": INFO_HASH,
                        "peer_id": _member_id(n),
                        "numwant": 0,
                        "event": "started",
                        "offers": [],
                        **_hints(n),
                    }  # fmt: skip
                )
            )
            async for raw in ws:
                msg = self._on_message(raw)
                if "interval" in msg and sent_at:
                    if self.measuring:
                        self.announce_ms.append((time.monotonic_ns() - sent_at[-1]) / 1e6)
                    sent_at.clear()
        except websockets.ConnectionClosed:
            if not self.stop.is_set():
                self._err("probe_closed")
        finally:
            task.cancel()
            await ws.close()

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        joined: asyncio.Queue[int] = asyncio.Queue()
        fill_members = self.members - PROBES
        tasks = []
        t0 = time.monotonic()
        for first in range(0, fill_members, MEMBERS_PER_CONNECTION):
            count = min(MEMBERS_PER_CONNECTION, fill_members - first)
            tasks.append(loop.create_task(self.filler(first, count, joined)))
        total = 0
        while total < fill_members:
            total += await joined.get()
        fill_s = time.monotonic() - t0
        go = asyncio.Event()
        for i in range(PROBES):
            tasks.append(loop.create_task(self.probe(fill_members + i, go)))
        await asyncio.sleep(1.0)
        print(json.dumps({"joined": total + PROBES, "fill_s": fill_s}), flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        go.set()
        await asyncio.sleep(self.interval_s)
        self.measuring = True
        await asyncio.sleep(self.window_s)
        self.measuring = False
        print(
            json.dumps(
                {
                    "relay_ms": self.relay_ms,
                    "announce_ms": self.announce_ms,
                    "announces_sent": self.announces_sent,
                    "errors": self.errors,
                    "fill_s": fill_s,
                }  # fmt: skip
            ),
            flush=True,
        )
        self.stop.set()
        await asyncio.sleep(0.3)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _read(proc: subprocess.Popen[str], key: str, timeout_s: float) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"load process exited before {key!r}")
        with contextlib.suppress(ValueError):
            obj = json.loads(line)
            if key in obj:
                return dict(obj)
    raise TimeoutError(key)


def server_row(members: int, tmp: Path, *, interval_s: float, window_s: float) -> dict[str, Any]:
    import httpx

    big = str(members * 4 + 1000)
    env = dict(
        os.environ,
        P2P_SIGNALING_LOG_LEVEL="warning",
        P2P_SIGNALING_ANNOUNCE_INTERVAL_S=str(interval_s),
        P2P_SIGNALING_MAX_PEERS_PER_SWARM=str(members + 10),
        P2P_SIGNALING_MAX_SWARMS_PER_CONNECTION=str(MEMBERS_PER_CONNECTION),
        P2P_SIGNALING_MAX_CONNECTIONS=big,
        P2P_SIGNALING_MAX_CONNECTIONS_PER_ADDRESS=big,
        P2P_SIGNALING_MAX_SWARMS_PER_ADDRESS=big,
        P2P_SIGNALING_RATE_PER_ADDRESS_S=big,
        P2P_SIGNALING_RATE_BURST_PER_ADDRESS=big,
        P2P_SIGNALING_RATE_PER_S=big,
        P2P_SIGNALING_RATE_BURST=big,
        P2P_SIGNALING_SEND_QUEUE_MAX="100000",
        P2P_SIGNALING_IDLE_TIMEOUT_S="600",
        P2P_SIGNALING_WS_PING_INTERVAL_S="0",
    )
    stdout = ChildStdout()  # port 0, then the port from its listening line
    server = subprocess.Popen(
        [sys.executable, "-m", "signaling.cli", "--host", "127.0.0.1", "--port", "0"],
        cwd=ROOT, env=env, stdout=stdout.file, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    load: subprocess.Popen[str] | None = None
    try:
        port = stdout.wait_port(server, 120.0)
        for _ in range(400):
            with contextlib.suppress(Exception):
                httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2.0)
                break
            time.sleep(0.05)
        rss0 = _rss_kib(server.pid)
        spec = {
            "url": f"ws://127.0.0.1:{port}/announce", "members": members,
            "interval_s": interval_s, "window_s": window_s,
        }  # fmt: skip
        spec_path = tmp / f"signaling-swarm-{members}.json"
        spec_path.write_text(json.dumps(spec))
        load = subprocess.Popen(
            [sys.executable, "-m", "bench.signaling_swarm", "--load", str(spec_path)],
            cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        ready = _read(load, "joined", 1800)
        rss1 = _rss_kib(server.pid)
        assert load.stdin is not None
        cpu0 = _cpu_s(server.pid)
        load.stdin.write("go\n")
        load.stdin.flush()
        result = _read(load, "relay_ms", window_s + interval_s + 120)
        server_cpu_s = _cpu_s(server.pid) - cpu0
        load.wait(timeout=60)
        spec_path.unlink()
    finally:
        if load is not None and load.poll() is None:
            load.kill()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
        stdout.close()

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {
        "members_joined": ready["joined"],
        "fill_s": round(ready["fill_s"], 1),
        "server_announce_ms_p50": ms(_pct(result["announce_ms"], 0.5)),
        "server_announce_ms_p99": ms(_pct(result["announce_ms"], 0.99)),
        "offer_relay_ms_p50": ms(_pct(result["relay_ms"], 0.5)),
        "offer_relay_ms_p99": ms(_pct(result["relay_ms"], 0.99)),
        "offers_measured": len(result["relay_ms"]),
        "announces_measured": len(result["announce_ms"]),
        "server_rss_bytes_per_member": round((rss1 - rss0) * 1024 / members),
        "server_cpu_ms_per_announce": round(
            server_cpu_s / max(1, result["announces_sent"]) * 1000, 3
        ),
        "errors": sum(result["errors"].values()),
        "error_kinds": result["errors"],
    }


def _registry_row(members: int, announces: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "bench.signaling_swarm", "--registry", str(members),
         "--announces", str(announces)],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return dict(json.loads(out))


def run(out_dir: Path, quick: bool = False) -> str:
    sizes = [1000, 10_000] if quick else [1000, 10_000, 100_000]
    interval_s, window_s = 4.0, (8.0 if quick else 20.0)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for members in sizes:
        print(f"signaling bench: one swarm of {members} ...", file=sys.stderr, flush=True)
        row = _registry_row(members, 2000 if quick else 5000)
        row.update(server_row(members, out_dir, interval_s=interval_s, window_s=window_s))
        rows.append(row)
    first, last = rows[0], rows[-1]
    flat = {
        key: _ratio(last.get(key), first.get(key))
        for key in (
            "registry_announce_us_p50",
            "registry_announce_us_p99",
            "server_cpu_ms_per_announce",
            "server_announce_ms_p99",
            "offer_relay_ms_p99",
        )
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "signaling_swarm.json").write_text(
        json.dumps({"rows": rows, "ratios_largest_vs_smallest": flat}, indent=1)
    )
    lines = [
        "## Signaling, one big swarm",
        "",
        "One swarm of N members (issue 16). *registry*: the pure registry in its own process, "
        "N members joined with position/region/peer-limit hints, then re-announces with 5 "
        "targets by random members (pairing samples at most 256). *server*: a real "
        f"`p2p-signaling` process; N members over loopback WebSockets ({MEMBERS_PER_CONNECTION} "
        f"peer_ids per connection), {PROBES} of them re-announcing every {interval_s:g} s with "
        "2 offers; latencies end to end (send to receive, client event loop included); server "
        "CPU per announce is the server's process CPU over the window (its 2 offer relays "
        "included) divided by the probes' announces, robust to a busy machine. RSS and "
        "heap per member are growth over the idle process divided by members. 2 cores shared "
        "by the server, its clients and other work on the machine.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c)) for c in COLUMNS) + " |")
    lines += [
        "",
        f"{last['members']} vs {first['members']} members: "
        + ", ".join(f"{k} x{v}" for k, v in flat.items())
        + " (flat: within 2x).",
        "",
    ]
    return "\n".join(lines)


def _ratio(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return round(a / b, 2)
    return None


def main(argv: list[str]) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.signaling_swarm")
    parser.add_argument("--registry", type=int, help="measure the registry alone, N members")
    parser.add_argument("--announces", type=int, default=5000)
    parser.add_argument("--load", help=argparse.SUPPRESS)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.registry:
        print(json.dumps(registry_main(args.registry, args.announces)))
    elif args.load:
        asyncio.run(_Load(json.loads(Path(args.load).read_text())).main())
    else:
        print(run(ROOT / "bench" / "results", quick=args.quick))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
