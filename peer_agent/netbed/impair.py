"""A user-space router on TUN devices that delays, jitters and drops packets (no netem here).

Each bed link is a pair of TUN devices, one in the peer's namespace and one in its home router's
namespace; this process holds both file descriptors and copies every IP packet from one to the
other through a :class:`DirectionModel` per direction. One process serves every link of a bed
(asyncio, ``add_reader`` on each descriptor, one timer per direction).

What it models, per direction, independently:

- a fixed one-way delay ``delay_s``;
- jitter: each packet's delay is ``delay_s + U(-jitter_s, +jitter_s)`` (clamped at 0), but a
  packet never overtakes the one before it (FIFO, like one physical path: no reordering), so
  under load the effective jitter is lower than the nominal one;
- random loss: each packet is dropped with probability ``loss`` (Bernoulli, independent: no
  bursts, no Gilbert-Elliott states);
- a bounded queue of ``max_queue_packets``; beyond it packets are dropped (tail drop).

Bandwidth is not modelled here: the bed puts a ``tbf`` qdisc on the TUN devices' egress (the
kernel shapes before this process reads), so a thin uplink queues in the kernel, then gets
delayed here. Limits: timers run on one asyncio loop in one Python process, so delivery times
are accurate to about a millisecond on an idle machine and degrade under CPU load (a busy
machine adds delay and jitter of its own); throughput through this process is bounded by Python
(tens of thousands of packets per second in total); no duplication, corruption or MTU changes.

Run: ``python -m peer_agent.netbed.impair SPEC.json``; SPEC lists the links
(``{"links": [{"name", "peer_ns", "router_ns", "up": {...}, "down": {...}}], "seed", "sink"}``).
It creates ``<name>p`` and ``<name>r`` TUN devices, moves them into their namespaces, and a
``sink`` TUN device in its own namespace whose packets it discards (counted); it prints
``ready`` and forwards until SIGTERM/SIGINT, then prints one JSON line of counters.
"""

from __future__ import annotations

import asyncio
import collections
import fcntl
import json
import os
import random
import signal
import struct
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from typing import Any

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000
MAX_PACKET_BYTES = 65536
READS_PER_WAKE = 64


@dataclass(frozen=True)
class Impairment:
    """One direction of one link. Defaults: a perfect link."""

    delay_s: float = 0.0  #: fixed one-way delay
    jitter_s: float = 0.0  #: uniform +-jitter added to the delay (no reordering)
    loss: float = 0.0  #: probability that a packet is dropped
    max_queue_packets: int = 2000  #: packets waiting for their delivery time (tail drop above)

    def __post_init__(self) -> None:
        if self.delay_s < 0 or self.jitter_s < 0:
            raise ValueError("delay_s and jitter_s must be >= 0")
        if not 0.0 <= self.loss < 1.0:
            raise ValueError("loss must be in [0, 1)")
        if self.max_queue_packets < 1:
            raise ValueError("max_queue_packets must be >= 1")


@dataclass
class DirectionStats:
    packets_in: int = 0
    packets_out: int = 0
    bytes_out: int = 0
    dropped_loss: int = 0
    dropped_queue: int = 0
    dropped_write: int = 0


@dataclass
class DirectionModel:
    """Pure model of one direction: when (if ever) a packet arriving at ``now_s`` leaves."""

    imp: Impairment
    rng: random.Random
    queued: collections.deque[tuple[float, bytes]] = field(default_factory=collections.deque)
    stats: DirectionStats = field(default_factory=DirectionStats)
    _last_s: float = 0.0

    def admit(self, now_s: float, packet: bytes) -> bool:
        """Queue ``packet`` for its delivery time; False if it was dropped."""
        self.stats.packets_in += 1
        if self.imp.loss and self.rng.random() < self.imp.loss:
            self.stats.dropped_loss += 1
            return False
        if len(self.queued) >= self.imp.max_queue_packets:
            self.stats.dropped_queue += 1
            return False
        delay_s = self.imp.delay_s
        if self.imp.jitter_s:
            delay_s = max(0.0, delay_s + self.rng.uniform(-self.imp.jitter_s, self.imp.jitter_s))
        due_s = max(now_s + delay_s, self._last_s)
        self._last_s = due_s
        self.queued.append((due_s, packet))
        return True

    def due(self, now_s: float) -> list[bytes]:
        """Packets whose time has come, in order."""
        out: list[bytes] = []
        while self.queued and self.queued[0][0] <= now_s:
            out.append(self.queued.popleft()[1])
        return out

    def next_due_s(self) -> float | None:
        return self.queued[0][0] if self.queued else None


def open_tun(name: str) -> int:
    """Create TUN device ``name`` (no packet-info header) in this process's namespace."""
    fd = os.open("/dev/net/tun", os.O_RDWR | os.O_NONBLOCK)
    try:
        fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError:
        os.close(fd)
        raise
    return fd


class _Pipe:
    """Forward packets read from ``src`` to ``dst`` through one :class:`DirectionModel`."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, src: int, dst: int, model: DirectionModel
    ) -> None:
        self.loop, self.src, self.dst, self.model = loop, src, dst, model
        self.timer: asyncio.TimerHandle | None = None
        loop.add_reader(src, self._readable)

    def _readable(self) -> None:
        now_s = self.loop.time()
        for _ in range(READS_PER_WAKE):
            try:
                packet = os.read(self.src, MAX_PACKET_BYTES)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:  # the device went away (namespace deleted)
                self.loop.remove_reader(self.src)
                return
            self.model.admit(now_s, packet)
        self._flush()

    def _flush(self) -> None:
        self.timer = None
        stats = self.model.stats
        for packet in self.model.due(self.loop.time()):
            try:
                os.write(self.dst, packet)
            except OSError:
                stats.dropped_write += 1
                continue
            stats.packets_out += 1
            stats.bytes_out += len(packet)
        next_s = self.model.next_due_s()
        if next_s is not None and self.timer is None:
            self.timer = self.loop.call_at(next_s, self._flush)
        elif next_s is None and self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def close(self) -> None:
        self.loop.remove_reader(self.src)
        if self.timer is not None:
            self.timer.cancel()


def _impairment(raw: dict[str, Any]) -> Impairment:
    return Impairment(**raw)


async def _serve(spec: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    rng = random.Random(spec.get("seed", 0))
    pipes: dict[str, tuple[_Pipe, _Pipe]] = {}
    fds: list[int] = []
    for link in spec["links"]:
        name = link["name"]
        peer_fd, router_fd = open_tun(name + "p"), open_tun(name + "r")
        fds += [peer_fd, router_fd]
        for dev, ns in ((name + "p", link["peer_ns"]), (name + "r", link["router_ns"])):
            subprocess.run(["ip", "link", "set", "dev", dev, "netns", ns], check=True, timeout=10)
        up = DirectionModel(_impairment(link.get("up", {})), random.Random(rng.random()))
        down = DirectionModel(_impairment(link.get("down", {})), random.Random(rng.random()))
        pipes[name] = (_Pipe(loop, peer_fd, router_fd, up), _Pipe(loop, router_fd, peer_fd, down))
    sink_packets = [0]
    sink = spec.get("sink")
    if sink:
        sink_fd = open_tun(sink)
        fds.append(sink_fd)

        def discard() -> None:
            for _ in range(READS_PER_WAKE):
                try:
                    os.read(sink_fd, MAX_PACKET_BYTES)
                except OSError:
                    return
                sink_packets[0] += 1

        loop.add_reader(sink_fd, discard)
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    await stop.wait()
    out: dict[str, Any] = {"sink_packets": sink_packets[0]}
    if sink:
        loop.remove_reader(sink_fd)
    for name, (up_pipe, down_pipe) in pipes.items():
        up_pipe.close()
        down_pipe.close()
        out[name] = {"up": asdict(up_pipe.model.stats), "down": asdict(down_pipe.model.stats)}
    for fd in fds:
        os.close(fd)
    return out


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m peer_agent.netbed.impair SPEC.json", file=sys.stderr)
        return 2
    with open(args[0], encoding="utf-8") as f:
        spec = json.load(f)
    stats = asyncio.run(_serve(spec))
    print(json.dumps(stats), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
