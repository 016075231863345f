"""Signaling server benchmark: thousands of WebSocket peers announcing with offers, answered.

The server (`python -m signaling.cli`) runs in its own process; load comes from two worker
processes of this module (`--worker`), each holding half of the peers over real loopback
WebSockets. Peers sit in swarms of varied size (2..200). Every peer re-announces every
`interval_s` with `offers` offers; the server relays each offer to a swarm member, which answers
at once, and the server relays the answer back.

Measured over a window after every peer has joined:
- announces/s: announce replies received by the peers, per second;
- offer relay latency: from the offerer's `send` to the target's `recv` (monotonic clock, shared
  by the processes), so it includes both client event loops, not only the server;
- the server's own relay latency (its histogram, frame in to hand-off to the target's socket);
- server RSS per peer: (RSS with every peer joined - RSS before connections) / peers;
- server CPU: process CPU seconds / wall seconds over the window (1.0 = one core).

This machine has 2 cores shared by the server and both load processes: the load generators
compete with the server, so the figures are a floor for the server alone.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SWARM_SIZES = (2, 5, 10, 20, 50, 100, 200)
SDP_PAD = "a=x-pad:" + "0" * 600  # real data-channel SDPs are ~0.5-1.5 KB
COLUMNS = [
    "peers",
    "swarms",
    "announces_per_s",
    "offers_relayed_per_s",
    "answers_relayed_per_s",
    "offer_latency_ms_p50",
    "offer_latency_ms_p99",
    "server_relay_ms_p50",
    "server_relay_ms_p99",
    "server_rss_kib_per_peer",
    "server_cpu_cores",
    "load_cpu_cores",
    "errors",
]


# -- helpers -----------------------------------------------------------------------------------


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1 << 20
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _proc_rss_kib(pid: int) -> int:
    match = re.search(r"VmRSS:\s+(\d+)", Path(f"/proc/{pid}/status").read_text())
    return int(match.group(1)) if match else 0


def _peer_id(n: int) -> str:
    return f"-BN0001-{n:012d}"


def _swarm_id(n: int) -> str:
    return f"bench-swarm-{n:08d}"


def _plan_swarms(peers: int, rng: random.Random) -> list[int]:
    """Swarm index for each peer, swarms of varied size."""
    out: list[int] = []
    swarm = 0
    while len(out) < peers:
        size = min(rng.choice(SWARM_SIZES), peers - len(out))
        out.extend([swarm] * size)
        swarm += 1
    return out


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def _histogram_quantile(text: str, kind: str, q: float) -> float | None:
    """Upper bound of the bucket holding quantile q of the server's relay latency histogram."""
    pattern = re.compile(
        r'p2p_signaling_relay_latency_seconds_bucket\{kind="' + kind + r'",le="([^"]+)"\} (\S+)'
    )
    buckets = [(float(le), float(v)) for le, v in pattern.findall(text)]
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    for le, count in buckets:
        if count >= q * total:
            return le if le != float("inf") else None  # beyond the last finite bucket
    return None


def _histogram_counts(text: str, kind: str) -> float:
    match = re.search(
        r'p2p_signaling_relay_latency_seconds_bucket\{kind="' + kind + r'",le="\+Inf"\} (\S+)',
        text,
    )
    return float(match.group(1)) if match else 0.0


def _http_get(port: int, path: str) -> str:
    import httpx

    return httpx.get(f"http://127.0.0.1:{port}{path}", timeout=10.0).text


# -- load worker (a separate process) -----------------------------------------------------------


class _Worker:
    def __init__(self, spec: dict[str, Any]) -> None:
        self.url: str = spec["url"]
        self.peers: list[tuple[str, str]] = [(p, s) for p, s in spec["peers"]]
        self.interval_s: float = spec["interval_s"]
        self.offers: int = spec["offers"]
        self.measuring = False
        self.announces = 0
        self.offers_in = 0
        self.answers_in = 0
        self.errors: dict[str, int] = {}
        self.offer_latency_ms: list[float] = []
        self.stop = asyncio.Event()
        self.go = asyncio.Event()
        self.handshakes = asyncio.Semaphore(64)

    def _err(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    async def _peer(self, peer_id: str, info_hash: str, joined: asyncio.Queue[bool]) -> None:
        import websockets

        try:
            async with self.handshakes:  # a bounded connection storm, not a SYN flood
                ws = await websockets.connect(
                    self.url, max_size=None, open_timeout=60, ping_interval=None, compression=None
                )
        except Exception as exc:
            self._err(f"connect:{type(exc).__name__}")
            joined.put_nowait(False)
            return
        first = asyncio.Event()

        async def announce_loop() -> None:
            n = 0
            await ws.send(self._announce(peer_id, info_hash, n, event="started"))
            await self.go.wait()
            await asyncio.sleep(random.random() * self.interval_s)
            while not self.stop.is_set():
                n += 1
                await ws.send(self._announce(peer_id, info_hash, n))
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.stop.wait(), self.interval_s)

        sender = asyncio.get_running_loop().create_task(announce_loop())
        try:
            async for raw in ws:
                msg = json.loads(raw)
                if "offer" in msg:
                    sent_ns = int(msg["offer"]["sdp"].split(" ", 2)[1])
                    if self.measuring:
                        self.offers_in += 1
                        self.offer_latency_ms.append((time.monotonic_ns() - sent_ns) / 1e6)
                    await ws.send(
                        json.dumps(
                            {
                                "action": "announce",
                                "info_hash": info_hash,
                                "peer_id": peer_id,
                                "to_peer_id": msg["peer_id"],
                                "offer_id": msg["offer_id"],
                                "answer": {"type": "answer", "sdp": "v=0 answer " + SDP_PAD},
                            }
                        )
                    )
                elif "answer" in msg:
                    if self.measuring:
                        self.answers_in += 1
                elif "failure reason" in msg:
                    self._err(f"failure:{msg.get('reason')}")
                elif "interval" in msg:
                    if not first.is_set():
                        first.set()
                        joined.put_nowait(True)
                    elif self.measuring:
                        self.announces += 1
        except Exception as exc:
            if not self.stop.is_set():
                self._err(f"recv:{type(exc).__name__}")
        finally:
            if not first.is_set():
                joined.put_nowait(False)
            sender.cancel()
            await ws.close()

    def _announce(self, peer_id: str, info_hash: str, n: int, event: str | None = None) -> str:
        now_ns = time.monotonic_ns()
        msg: dict[str, Any] = {
            "action": "announce",
            "info_hash": info_hash,
            "peer_id": peer_id,
            "numwant": self.offers,
            "offers": [
                {
                    "offer_id": f"{n:06d}-{i}-{peer_id[-8:]}",
                    "offer": {"type": "offer", "sdp": f"v=0 {now_ns} {SDP_PAD}"},
                }
                for i in range(self.offers)
            ]
            if event is None
            else [],
        }
        if event:
            msg["event"] = event
        return json.dumps(msg)

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        joined: asyncio.Queue[bool] = asyncio.Queue()
        tasks = []
        for peer_id, info_hash in self.peers:
            tasks.append(loop.create_task(self._peer(peer_id, info_hash, joined)))
        ok = 0
        for _ in self.peers:
            ok += bool(await joined.get())
        print(json.dumps({"ready": ok}), flush=True)
        line = await loop.run_in_executor(None, sys.stdin.readline)
        window_s = float(json.loads(line)["window_s"])
        self.go.set()
        await asyncio.sleep(self.interval_s)  # let the announce phases spread out
        self.measuring = True
        start = time.monotonic()
        cpu_start = time.process_time()
        print(json.dumps({"measuring": True}), flush=True)
        await asyncio.sleep(window_s)
        self.measuring = False
        elapsed = time.monotonic() - start
        cpu_s = time.process_time() - cpu_start
        lat = self.offer_latency_ms
        if len(lat) > 50_000:
            lat = random.sample(lat, 50_000)
        print(
            json.dumps(
                {
                    "elapsed_s": elapsed,
                    "cpu_s": cpu_s,
                    "announces": self.announces,
                    "offers_in": self.offers_in,
                    "answers_in": self.answers_in,
                    "offer_latency_ms": lat,
                    "errors": self.errors,
                }
            ),
            flush=True,
        )
        self.stop.set()
        await asyncio.sleep(0.5)
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _worker_main(spec_path: str) -> None:
    _raise_nofile()
    spec = json.loads(Path(spec_path).read_text())
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(_Worker(spec).main())


# -- driver ------------------------------------------------------------------------------------


def _read_json_line(proc: subprocess.Popen[str], key: str, timeout_s: float) -> dict[str, Any]:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited before {key!r}")
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if key in obj:
            return obj
    raise TimeoutError(key)


def run_size(
    peers: int, *, interval_s: float, window_s: float, offers: int, workers: int, tmp: Path
) -> dict[str, Any]:
    rng = random.Random(peers)
    port = _free_port()
    env = dict(
        os.environ,
        P2P_SIGNALING_LOG_LEVEL="warning",
        P2P_SIGNALING_ANNOUNCE_INTERVAL_S=str(interval_s),
        P2P_SIGNALING_MAX_CONNECTIONS=str(peers * 2),
        P2P_SIGNALING_RATE_PER_S="100",
        P2P_SIGNALING_RATE_BURST="500",
        P2P_SIGNALING_IDLE_TIMEOUT_S="600",
        P2P_SIGNALING_SEND_QUEUE_MAX="4096",
        P2P_SIGNALING_WS_PING_INTERVAL_S="0",
    )
    server = subprocess.Popen(
        [sys.executable, "-m", "signaling.cli", "--host", "127.0.0.1", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    procs: list[subprocess.Popen[str]] = []
    try:
        for _ in range(200):
            try:
                _http_get(port, "/healthz")
                break
            except Exception:
                time.sleep(0.05)
        rss_base_kib = _proc_rss_kib(server.pid)
        swarm_of = _plan_swarms(peers, rng)
        assignment = [(_peer_id(n), _swarm_id(swarm_of[n])) for n in range(peers)]
        t_connect = time.monotonic()
        for w in range(workers):
            spec = {
                "url": f"ws://127.0.0.1:{port}/announce",
                "peers": assignment[w::workers],
                "interval_s": interval_s,
                "offers": offers,
            }
            spec_path = tmp / f"signaling-bench-{peers}-{w}.json"
            spec_path.write_text(json.dumps(spec))
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "bench.signaling_bench", "--worker", str(spec_path)],
                    cwd=ROOT,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                )
            )
        ready = sum(_read_json_line(p, "ready", 120)["ready"] for p in procs)
        connect_s = time.monotonic() - t_connect
        for p in procs:
            assert p.stdin is not None
            p.stdin.write(json.dumps({"window_s": window_s}) + "\n")
            p.stdin.flush()
        for p in procs:
            _read_json_line(p, "measuring", interval_s + 30)
        metrics_before = _http_get(port, "/metrics")
        cpu0, wall0 = _proc_cpu_s(server.pid), time.monotonic()
        rss_joined_kib = _proc_rss_kib(server.pid)
        results = [_read_json_line(p, "elapsed_s", window_s + 60) for p in procs]
        cpu1, wall1 = _proc_cpu_s(server.pid), time.monotonic()
        metrics_after = _http_get(port, "/metrics")
        rss_end_kib = _proc_rss_kib(server.pid)
        health = json.loads(_http_get(port, "/healthz"))
        for p in procs:
            p.wait(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    elapsed = max(r["elapsed_s"] for r in results)
    latencies = [x for r in results for x in r["offer_latency_ms"]]
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    offers_relayed = _histogram_counts(metrics_after, "offer") - _histogram_counts(
        metrics_before, "offer"
    )
    answers_relayed = _histogram_counts(metrics_after, "answer") - _histogram_counts(
        metrics_before, "answer"
    )

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    def s_to_ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    return {
        "peers": peers,
        "peers_joined": ready,
        "swarms": len(set(swarm_of)),
        "interval_s": interval_s,
        "offers_per_announce": offers,
        "window_s": round(elapsed, 2),
        "connect_s": round(connect_s, 2),
        "announces_per_s": round(sum(r["announces"] for r in results) / elapsed, 1),
        "offers_relayed_per_s": round(offers_relayed / (wall1 - wall0), 1),
        "answers_relayed_per_s": round(answers_relayed / (wall1 - wall0), 1),
        "offers_received": sum(r["offers_in"] for r in results),
        "answers_received": sum(r["answers_in"] for r in results),
        "offer_latency_ms_p50": ms(_percentile(latencies, 0.5)),
        "offer_latency_ms_p99": ms(_percentile(latencies, 0.99)),
        "offer_latency_ms_mean": ms(statistics.fmean(latencies)) if latencies else None,
        "server_relay_ms_p50": s_to_ms(_histogram_quantile(metrics_after, "offer", 0.5)),
        "server_relay_ms_p99": s_to_ms(_histogram_quantile(metrics_after, "offer", 0.99)),
        "server_rss_kib_base": rss_base_kib,
        "server_rss_kib_joined": rss_joined_kib,
        "server_rss_kib_end": rss_end_kib,
        "server_rss_kib_per_peer": round((rss_end_kib - rss_base_kib) / max(1, ready), 1),
        "server_cpu_cores": round((cpu1 - cpu0) / (wall1 - wall0), 3),
        "load_cpu_cores": round(sum(r["cpu_s"] for r in results) / elapsed, 3),
        "server_peers_seen": health.get("peers"),
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


def run(
    out_dir: Path,
    quick: bool = False,
    sizes: list[int] | None = None,
    interval_s: float | None = None,
) -> str:
    _raise_nofile()
    if sizes is None:
        sizes = [1000] if quick else [1000, 5000, 10000]
    window_s = 10.0 if quick else 20.0
    if interval_s is None:
        interval_s = 10.0 if quick else 20.0
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for peers in sizes:
        print(f"signaling bench: {peers} peers ...", file=sys.stderr, flush=True)
        rows.append(
            run_size(
                peers, interval_s=interval_s, window_s=window_s, offers=2, workers=2, tmp=out_dir
            )
        )
        for leftover in out_dir.glob(f"signaling-bench-{peers}-*.json"):
            leftover.unlink()
    (out_dir / "signaling.json").write_text(json.dumps({"rows": rows}, indent=1))
    lines = [
        "## Signaling server",
        "",
        f"`p2p-signaling` in one process; peers over loopback WebSockets from 2 load processes, "
        f"in swarms of 2..200; each peer re-announces every {interval_s:g} s with 2 offers "
        f"(~0.6 KB SDP) that the target answers at once. Measured over {window_s:g} s once all "
        "peers joined. Offer latency is end to end (offerer send to target receive, both load "
        "processes included); server relay is the server's own histogram (bucket upper bound). "
        "RSS per peer is the server's growth over its idle RSS divided by peers. The 2 cores "
        "are shared by server and load; a p99 of None is beyond the histogram's 10 s bucket.",
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|" + "---|" * len(COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c)) for c in COLUMNS) + " |")
    lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.signaling_bench")
    parser.add_argument("--quick", action="store_true", help="1k peers, shorter window")
    parser.add_argument("--sizes", help="comma-separated peer counts, e.g. 1000,5000")
    parser.add_argument("--interval-s", type=float, help="re-announce interval (default 20)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker_main(args.worker)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    print(run(args.out, quick=args.quick, sizes=sizes, interval_s=args.interval_s))
    return 0


if __name__ == "__main__":
    sys.exit(main())
