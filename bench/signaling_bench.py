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

Scale-out (a second table): the same load against 1 process in memory, 1 process on Redis, and
2 processes joined by Redis (a real redis-server started here), peers spread over the processes
so that about half of the relays cross the bus. Offer latency is split into relays within one
process and relays across processes; CPU is summed over the signaling processes (and Redis is
shown apart), and divided by the relayed messages (offers + answers) for the CPU cost per relay.
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
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from p2p_cli.serving import ChildStdout

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
        self.urls: list[str] = spec["urls"]
        # (peer_id, info_hash, index of the server it connects to)
        self.peers: list[tuple[str, str, int]] = [(p, s, u) for p, s, u in spec["peers"]]
        self.interval_s: float = spec["interval_s"]
        self.offers: int = spec["offers"]
        self.measuring = False
        self.announces = 0
        self.offers_in = 0
        self.answers_in = 0
        self.errors: dict[str, int] = {}
        self.offer_latency_ms: list[float] = []
        self.cross_latency_ms: list[float] = []  # offerer on another server process
        self.stop = asyncio.Event()
        self.go = asyncio.Event()
        self.handshakes = asyncio.Semaphore(64)

    def _err(self, what: str) -> None:
        self.errors[what] = self.errors.get(what, 0) + 1

    async def _peer(
        self, peer_id: str, info_hash: str, server: int, joined: asyncio.Queue[bool]
    ) -> None:
        import websockets

        try:
            async with self.handshakes:  # a bounded connection storm, not a SYN flood
                ws = await websockets.connect(
                    self.urls[server],
                    max_size=None,
                    open_timeout=60,
                    ping_interval=None,
                    compression=None,
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
                        latency_ms = (time.monotonic_ns() - sent_ns) / 1e6
                        offerer_server = int(msg["peer_id"][-12:]) % len(self.urls)
                        if offerer_server == server:
                            self.offer_latency_ms.append(latency_ms)
                        else:
                            self.cross_latency_ms.append(latency_ms)
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
        for peer_id, info_hash, server in self.peers:
            tasks.append(loop.create_task(self._peer(peer_id, info_hash, server, joined)))
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
        cross = self.cross_latency_ms
        if len(cross) > 50_000:
            cross = random.sample(cross, 50_000)
        print(
            json.dumps(
                {
                    "elapsed_s": elapsed,
                    "cpu_s": cpu_s,
                    "announces": self.announces,
                    "offers_in": self.offers_in,
                    "answers_in": self.answers_in,
                    "offer_latency_ms": lat,
                    "cross_latency_ms": cross,
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


def _start_redis(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """redis-server on a free port: the tests' RedisServer, which checks that the server that
    answers is its own and moves to another port if another process took the chosen one."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install -y redis-server)")
    from tests.signaling_redis.redis_support import RedisServer

    server = RedisServer(binary, tmp)
    server.start()
    assert server.proc is not None
    return server.proc, server.port


def _redis_used_bytes(env: dict[str, str]) -> int:
    url = env.get("P2P_SIGNALING_REDIS_URL")
    if not url:
        return 0
    import redis

    client = redis.Redis.from_url(url)
    try:
        return int(client.info("memory")["used_memory"])
    finally:
        client.close()


def _sum_metric(texts: list[str], name: str) -> float:
    total = 0.0
    for text in texts:
        match = re.search("^" + re.escape(name) + r" (\S+)$", text, re.MULTILINE)
        total += float(match.group(1)) if match else 0.0
    return total


def _merge_histograms(texts: list[str]) -> str:
    """Add the relay-latency bucket counts of several processes into one exposition text."""
    sums: dict[tuple[str, str], float] = {}
    pattern = re.compile(
        r'p2p_signaling_relay_latency_seconds_bucket\{kind="([^"]+)",le="([^"]+)"\} (\S+)'
    )
    for text in texts:
        for kind, le, value in pattern.findall(text):
            sums[(kind, le)] = sums.get((kind, le), 0.0) + float(value)
    return "\n".join(
        f'p2p_signaling_relay_latency_seconds_bucket{{kind="{k}",le="{le}"}} {v}'
        for (k, le), v in sums.items()
    )


def run_size(
    peers: int,
    *,
    interval_s: float,
    window_s: float,
    offers: int,
    workers: int,
    tmp: Path,
    servers: int = 1,
    redis: bool = False,
) -> dict[str, Any]:
    rng = random.Random(peers)
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
    redis_proc: subprocess.Popen[bytes] | None = None
    if redis or servers > 1:
        redis_proc, redis_port = _start_redis(tmp)
        env["P2P_SIGNALING_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
    # port 0 each, then the ports from their listening lines (no other process can take them)
    outs = [ChildStdout() for _ in range(servers)]
    server_procs = [
        subprocess.Popen(
            [sys.executable, "-m", "signaling.cli", "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT,
            env=env,
            stdout=out.file,
            stderr=subprocess.PIPE,
            text=True,
        )
        for out in outs
    ]
    procs: list[subprocess.Popen[str]] = []
    try:
        ports = [out.wait_port(sp, 120.0) for out, sp in zip(outs, server_procs, strict=True)]
        for port in ports:
            for _ in range(200):
                try:
                    health = json.loads(_http_get(port, "/healthz"))
                    if health.get("nodes", 1) == servers:
                        break
                except Exception:
                    pass
                time.sleep(0.05)
        rss_base_kib = sum(_proc_rss_kib(sp.pid) for sp in server_procs)
        redis_mem0 = _redis_used_bytes(env)
        swarm_of = _plan_swarms(peers, rng)
        assignment = [(_peer_id(n), _swarm_id(swarm_of[n]), n % servers) for n in range(peers)]
        t_connect = time.monotonic()
        for w in range(workers):
            spec = {
                "urls": [f"ws://127.0.0.1:{port}/announce" for port in ports],
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
        metrics_before = [_http_get(port, "/metrics") for port in ports]
        watched = [sp.pid for sp in server_procs]
        cpu0 = [_proc_cpu_s(pid) for pid in watched]
        redis_cpu0 = _proc_cpu_s(redis_proc.pid) if redis_proc is not None else 0.0
        wall0 = time.monotonic()
        rss_joined_kib = sum(_proc_rss_kib(pid) for pid in watched)
        redis_mem1 = _redis_used_bytes(env)
        results = [_read_json_line(p, "elapsed_s", window_s + 60) for p in procs]
        cpu1 = [_proc_cpu_s(pid) for pid in watched]
        redis_cpu1 = _proc_cpu_s(redis_proc.pid) if redis_proc is not None else 0.0
        wall1 = time.monotonic()
        metrics_after = [_http_get(port, "/metrics") for port in ports]
        rss_end_kib = sum(_proc_rss_kib(pid) for pid in watched)
        health = json.loads(_http_get(ports[0], "/healthz"))
        for p in procs:
            p.wait(timeout=30)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
        for sp in server_procs:
            sp.terminate()
        for sp in server_procs:
            try:
                sp.wait(timeout=15)
            except subprocess.TimeoutExpired:
                sp.kill()
        if redis_proc is not None:
            redis_proc.kill()
            redis_proc.wait(10)
        for out in outs:
            out.close()
    elapsed = max(r["elapsed_s"] for r in results)
    same = [x for r in results for x in r["offer_latency_ms"]]
    cross = [x for r in results for x in r["cross_latency_ms"]]
    latencies = same + cross
    errors: dict[str, int] = {}
    for r in results:
        for k, v in r["errors"].items():
            errors[k] = errors.get(k, 0) + v
    merged_after = _merge_histograms(metrics_after)
    merged_before = _merge_histograms(metrics_before)
    offers_relayed = _histogram_counts(merged_after, "offer") - _histogram_counts(
        merged_before, "offer"
    )
    answers_relayed = _histogram_counts(merged_after, "answer") - _histogram_counts(
        merged_before, "answer"
    )
    wall_s = wall1 - wall0
    server_cpu_s = sum(cpu1) - sum(cpu0)

    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 2)

    def s_to_ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000, 2)

    relays = offers_relayed + answers_relayed
    return {
        "peers": peers,
        "servers": servers,
        "backend": "redis" if redis_proc is not None else "memory",
        "peers_joined": ready,
        "swarms": len(set(swarm_of)),
        "interval_s": interval_s,
        "offers_per_announce": offers,
        "window_s": round(elapsed, 2),
        "connect_s": round(connect_s, 2),
        "announces_per_s": round(sum(r["announces"] for r in results) / elapsed, 1),
        "offers_relayed_per_s": round(offers_relayed / wall_s, 1),
        "answers_relayed_per_s": round(answers_relayed / wall_s, 1),
        "offers_received": sum(r["offers_in"] for r in results),
        "answers_received": sum(r["answers_in"] for r in results),
        "offer_latency_ms_p50": ms(_percentile(latencies, 0.5)),
        "offer_latency_ms_p99": ms(_percentile(latencies, 0.99)),
        "offer_latency_ms_mean": ms(statistics.fmean(latencies)) if latencies else None,
        "same_process_ms_p50": ms(_percentile(same, 0.5)),
        "same_process_ms_p99": ms(_percentile(same, 0.99)),
        "cross_process_ms_p50": ms(_percentile(cross, 0.5)),
        "cross_process_ms_p99": ms(_percentile(cross, 0.99)),
        "cross_share": round(len(cross) / len(latencies), 3) if latencies else None,
        "server_relay_ms_p50": s_to_ms(_histogram_quantile(merged_after, "offer", 0.5)),
        "server_relay_ms_p99": s_to_ms(_histogram_quantile(merged_after, "offer", 0.99)),
        "server_rss_kib_base": rss_base_kib,
        "server_rss_kib_joined": rss_joined_kib,
        "server_rss_kib_end": rss_end_kib,
        "server_rss_kib_per_peer": round((rss_end_kib - rss_base_kib) / max(1, ready), 1),
        "server_cpu_cores": round(server_cpu_s / wall_s, 3),
        "server_cpu_us_per_relay": round(server_cpu_s / relays * 1e6, 1) if relays else None,
        "redis_cpu_cores": round((redis_cpu1 - redis_cpu0) / wall_s, 3),
        "redis_bytes_per_peer": round((redis_mem1 - redis_mem0) / max(1, ready))
        if redis_proc is not None
        else None,
        "bus_messages_out": _sum_metric(
            metrics_after, 'p2p_signaling_bus_messages_total{direction="out",kind="offer"}'
        )
        + _sum_metric(
            metrics_after, 'p2p_signaling_bus_messages_total{direction="out",kind="answer"}'
        ),
        "load_cpu_cores": round(sum(r["cpu_s"] for r in results) / elapsed, 3),
        "server_peers_seen": health.get("peers"),
        "errors": sum(errors.values()),
        "error_kinds": errors,
    }


SCALE_COLUMNS = [
    "mode",
    "peers",
    "announces_per_s",
    "offers_relayed_per_s",
    "offer_latency_ms_p50",
    "offer_latency_ms_p99",
    "same_process_ms_p50",
    "same_process_ms_p99",
    "cross_process_ms_p50",
    "cross_process_ms_p99",
    "cross_share",
    "server_cpu_cores",
    "server_cpu_us_per_relay",
    "redis_cpu_cores",
    "redis_bytes_per_peer",
    "load_cpu_cores",
    "errors",
]


def run_scaleout(
    out_dir: Path, *, peers: int, interval_s: float, window_s: float
) -> tuple[list[dict[str, Any]], str]:
    """The same load on 1 process (memory), 1 process (Redis) and 2 processes (Redis)."""
    rows = []
    for mode, servers, redis in (
        ("1 process, memory", 1, False),
        ("1 process, Redis", 1, True),
        ("2 processes, Redis", 2, True),
    ):
        print(f"signaling bench: scale-out, {mode}, {peers} peers ...", file=sys.stderr, flush=True)
        row = run_size(
            peers, interval_s=interval_s, window_s=window_s, offers=2, workers=2, tmp=out_dir,
            servers=servers, redis=redis,
        )  # fmt: skip
        row["mode"] = mode
        rows.append(row)
        for leftover in out_dir.glob(f"signaling-bench-{peers}-*.json"):
            leftover.unlink()
    base, two = rows[0], rows[2]

    def ratio(a: Any, b: Any) -> str:
        if isinstance(a, int | float) and isinstance(b, int | float) and b:
            return f"{a / b:.2f}"
        return "n/a"

    lines = [
        "## Signaling scale-out (Redis)",
        "",
        f"The same load ({peers} peers, swarms of 2..200, a re-announce every {interval_s:g} s "
        "with 2 offers, each answered) against one process in memory, one process on Redis, "
        "and two processes joined by one Redis (a local redis-server), peers spread evenly so "
        "that about half of the relays cross processes. Latency is end to end (offerer send to "
        "target receive); *same*/*cross* split it by whether offerer and target sit on the same "
        "process. CPU is summed over the signaling processes; Redis's own CPU is apart. "
        f"Measured over {window_s:g} s on 2 cores shared by everything (servers, Redis, 2 load "
        "processes), so the 2-process figures show the cost of the bus, not added capacity.",
        "",
        "| " + " | ".join(SCALE_COLUMNS) + " |",
        "|" + "---|" * len(SCALE_COLUMNS),
    ]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c)) for c in SCALE_COLUMNS) + " |")
    lines += [
        "",
        "2 processes / 1 process (memory): announces/s "
        f"{ratio(two['announces_per_s'], base['announces_per_s'])}, offers relayed/s "
        f"{ratio(two['offers_relayed_per_s'], base['offers_relayed_per_s'])}, server CPU per "
        f"relay {ratio(two['server_cpu_us_per_relay'], base['server_cpu_us_per_relay'])}, "
        f"offer latency p50 {ratio(two['offer_latency_ms_p50'], base['offer_latency_ms_p50'])}"
        f", p99 {ratio(two['offer_latency_ms_p99'], base['offer_latency_ms_p99'])}.",
        "",
    ]
    return rows, "\n".join(lines)


def run(
    out_dir: Path,
    quick: bool = False,
    sizes: list[int] | None = None,
    interval_s: float | None = None,
    scaleout_peers: int | None = None,
    scaleout_only: bool = False,
) -> str:
    _raise_nofile()
    out_dir.mkdir(parents=True, exist_ok=True)
    scale = _scaleout_section(out_dir, quick, scaleout_peers)
    if scaleout_only:
        return scale
    single = _single_section(out_dir, quick, sizes, interval_s)
    # One swarm of 1,000 / 10,000 / 100,000 members (issue 16): bench/signaling_swarm.py.
    from bench import signaling_swarm

    return single + "\n" + scale + "\n" + signaling_swarm.run(out_dir, quick=quick)


def _scaleout_section(out_dir: Path, quick: bool, peers: int | None) -> str:
    if shutil.which("redis-server") is None:
        return "## Signaling scale-out (Redis)\n\nSkipped: redis-server is not installed.\n"
    peers = peers or (1000 if quick else 2000)
    rows, text = run_scaleout(
        out_dir, peers=peers, interval_s=5.0, window_s=10.0 if quick else 20.0
    )
    (out_dir / "signaling_scaleout.json").write_text(json.dumps({"rows": rows}, indent=1))
    return text


def _single_section(
    out_dir: Path, quick: bool, sizes: list[int] | None, interval_s: float | None
) -> str:
    if sizes is None:
        sizes = [1000] if quick else [1000, 5000, 10000]
    window_s = 10.0 if quick else 20.0
    if interval_s is None:
        interval_s = 10.0 if quick else 20.0
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
    parser.add_argument(
        "--scaleout-peers", type=int, help="peers in the scale-out comparison (default 2000)"
    )
    parser.add_argument(
        "--scaleout-only", action="store_true", help="only the 1-vs-2-process Redis comparison"
    )
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        _worker_main(args.worker)
        return 0
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else None
    print(
        run(
            args.out,
            quick=args.quick,
            sizes=sizes,
            interval_s=args.interval_s,
            scaleout_peers=args.scaleout_peers,
            scaleout_only=args.scaleout_only,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
