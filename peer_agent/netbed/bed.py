"""The network test bed: namespaces, home routers with NAT, impaired and shaped access links.

Topology (every address is the bed's own; nothing has a route off the machine)::

    peer ns p2pnb-<pid>-pI      router ns p2pnb-<pid>-rI          public ns p2pnb-<pid>-pub
    10.242.I.2  --TUN link--  10.242.I.1 | wan 10.241.0.(10+I) --veth-- bridge br0 10.241.0.1
     (tbf: uplink)   (impair.py)  (tbf: downlink)  (nftables NAT)          origin, signaling, TURN

- ``p2pnb-<pid>-pub`` holds a bridge with 10.241.0.1/24: the servers (origin, signaling,
  coturn) listen on that address. It routes to the no-NAT peers' subnets; its default route is
  a TUN device (``void``) whose reader discards everything, so nothing leaves and unroutable
  sends are dropped silently, as on the internet.
- each peer gets a home router namespace (``p2pnb-<pid>-rI``) on the bridge, whose default route is
  10.241.0.1, and a peer namespace (``p2pnb-<pid>-pI``) whose only link is a point-to-point TUN pair
  served by :mod:`peer_agent.netbed.impair` (delay, jitter, loss per direction), with ``tbf``
  qdiscs for bandwidth: on the peer's TUN egress (uplink) and the router's TUN egress (downlink).
- NAT on the router's ``wan`` (nftables ``masquerade`` in a ``srcnat`` chain):

  ``none``       no NAT; the public namespace routes 10.242.I.0/24 to the router (a public host).
  ``cone``       ``masquerade``: Linux keeps the inside source port when it is free, so one inside
                 socket keeps one public port for every destination (endpoint-independent
                 mapping); conntrack admits only replies from an address:port the inside sent
                 to (address- and port-dependent filtering): a port-restricted cone NAT.
  ``symmetric``  ``masquerade fully-random``: every new flow (new destination address:port) gets
                 a random public port (endpoint-dependent mapping), with the same filtering.

  ``tests/netbed/test_bed.py`` checks both mappings with a UDP probe. ``persistent`` only pins
  the public *address* (one here), so it makes no difference on this bed.

Namespaces are named ``p2pnb-<pid>-*`` after the process that built the bed (namespace names are
global to the machine: two beds, e.g. two engineers' tests, run at once without touching each
other); :func:`remove_stale` deletes those of a process that no longer runs (and kills the
processes inside them) before a bed starts, and :meth:`NetBed.close` removes its own.
Needs root, ``ip``, ``tc``, ``nft`` and ``/dev/net/tun``.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Literal

logger = logging.getLogger(__name__)

NS_PREFIX = "p2pnb-"
PUB_ADDRESS = "10.241.0.1"
PUB_PREFIX_LEN = 24
MAX_PEERS = 200
CMD_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0

NatKind = Literal["none", "cone", "symmetric"]
NAT_KINDS: tuple[NatKind, ...] = ("none", "cone", "symmetric")


class BedError(RuntimeError):
    """The bed could not be built (not root, a tool missing, a command failed)."""


@dataclass(frozen=True)
class LinkShape:
    """One direction of a peer's access link. Defaults: unimpaired, unlimited."""

    delay_ms: float = 0.0  #: one-way delay added by the TUN router
    jitter_ms: float = 0.0  #: uniform +- jitter on that delay (FIFO: no reordering)
    loss: float = 0.0  #: packet loss probability (independent per packet)
    rate_kbit: int = 0  #: tbf rate in kbit/s; 0 = no shaping
    queue_ms: float = 200.0  #: tbf queue: packets waiting longer than this are dropped

    def impairment(self) -> dict[str, float]:
        return {
            "delay_s": self.delay_ms / 1000,
            "jitter_s": self.jitter_ms / 1000,
            "loss": self.loss,
        }


@dataclass(frozen=True)
class PeerSpec:
    nat: NatKind = "cone"
    up: LinkShape = field(default_factory=LinkShape)  #: peer -> router (uplink)
    down: LinkShape = field(default_factory=LinkShape)  #: router -> peer (downlink)

    def __post_init__(self) -> None:
        if self.nat not in NAT_KINDS:
            raise ValueError(f"nat must be one of {NAT_KINDS}, got {self.nat!r}")


@dataclass(frozen=True)
class PeerHost:
    """Where peer ``index`` lives on the bed."""

    index: int
    nat: NatKind
    ns: str
    router_ns: str
    address: str  #: the peer's own (inside) address
    public_address: str  #: its router's wan address (what others see when NATed)


def _run(argv: Sequence[str], *, check: bool = True, stdin: str | None = None) -> str:
    try:
        done = subprocess.run(
            list(argv),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=CMD_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise BedError(f"{' '.join(argv)}: {exc}") from exc
    if check and done.returncode != 0:
        raise BedError(f"{' '.join(argv)}: exit {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def run_prefix(pid: int | None = None) -> str:
    """The namespace prefix of the bed built by process ``pid`` (default: this one)."""
    return f"{NS_PREFIX}{os.getpid() if pid is None else pid}-"


def bed_namespaces(prefix: str = NS_PREFIX) -> list[str]:
    """The namespaces whose name starts with ``prefix`` (default: every bed's)."""
    out = _run(["ip", "netns", "list"], check=False)
    names = [line.split()[0] for line in out.splitlines() if line.strip()]
    return [n for n in names if n.startswith(prefix)]


def _owner_pid(name: str) -> int | None:
    """The pid in a ``p2pnb-<pid>-...`` name (``None`` for another shape)."""
    head, _, rest = name[len(NS_PREFIX) :].partition("-")
    return int(head) if head.isdigit() and rest else None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _kill_namespace(name: str) -> None:
    for pid in _run(["ip", "netns", "pids", name], check=False).split():
        with contextlib.suppress(ProcessLookupError, ValueError):
            os.kill(int(pid), signal.SIGKILL)
    _run(["ip", "netns", "del", name], check=False)


def remove_stale() -> list[str]:
    """Delete the ``p2pnb-<pid>-*`` namespaces of processes that no longer run (and kill what
    runs inside); returns their names. Another running bed's namespaces are left alone."""
    names = []
    for name in bed_namespaces():
        pid = _owner_pid(name)
        if pid is not None and not _alive(pid):
            names.append(name)
    for name in names:
        _kill_namespace(name)
    if names:
        logger.warning("removed %d stale bed namespaces", len(names))
    return names


def check_prerequisites() -> None:
    if os.geteuid() != 0:
        raise BedError("the network bed needs root")
    for tool in ("ip", "tc", "nft"):
        if _run(["sh", "-c", f"command -v {tool}"], check=False).strip() == "":
            raise BedError(f"the network bed needs {tool!r} (make install-system)")
    if not os.path.exists("/dev/net/tun"):
        raise BedError("the network bed needs /dev/net/tun")


def _nat_ruleset(nat: NatKind) -> str:
    # The input chain drops unsolicited packets to the router itself before their conntrack
    # entry is confirmed: otherwise a peer's hole-punching packet that arrives before our own
    # first packet to it leaves an UNREPLIED entry holding the public port, and masquerade
    # then maps our outgoing flow to another port (simultaneous open fails). Home routers drop
    # unsolicited inbound packets too.
    flags = " fully-random" if nat == "symmetric" else ""
    return (
        "table ip p2pnb {\n"
        "  chain input {\n"
        "    type filter hook input priority filter; policy accept;\n"
        '    iifname "wan" ct state new drop\n'
        "  }\n"
        "  chain postrouting {\n"
        "    type nat hook postrouting priority srcnat; policy accept;\n"
        f'    oifname "wan" masquerade{flags}\n'
        "  }\n"
        "}\n"
    )


def _tbf(ns: str, dev: str, shape: LinkShape) -> None:
    if shape.rate_kbit <= 0:
        return
    # burst: at least one MTU and ~10 ms at the rate, so the bucket never starves a packet
    burst_bytes = max(3000, shape.rate_kbit * 1000 // 8 // 100)
    _run(
        ["ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", dev, "root", "tbf"]
        + ["rate", f"{shape.rate_kbit}kbit", "burst", str(burst_bytes)]
        + ["latency", f"{int(shape.queue_ms)}ms"]
    )


class NetBed:
    """Build with :meth:`start` (or ``with NetBed(...) as bed``), tear down with :meth:`close`."""

    def __init__(self, peers: Sequence[PeerSpec], seed: int = 0) -> None:
        if not 0 < len(peers) <= MAX_PEERS:
            raise ValueError(f"between 1 and {MAX_PEERS} peers")
        self.specs = tuple(peers)
        self.seed = seed
        #: this bed's namespaces are named ``prefix + "pub"``, ``prefix + "pI"``, ``"rI"``
        self.prefix = run_prefix()
        #: the public segment's namespace (origin, signaling, coturn)
        self.pub_ns = self.prefix + "pub"
        self.hosts: list[PeerHost] = []
        self._impair: subprocess.Popen[str] | None = None
        self._procs: list[subprocess.Popen[Any]] = []
        self._spec_dir: tempfile.TemporaryDirectory[str] | None = None
        self.impair_stats: dict[str, Any] = {}

    def __enter__(self) -> NetBed:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- building ------------------------------------------------------------------------

    def start(self) -> None:
        check_prerequisites()
        remove_stale()
        if bed_namespaces(self.prefix):
            raise BedError(f"this process already runs a bed ({self.prefix}*): one at a time")
        try:
            self._build()
        except BaseException:
            self.close()
            raise

    def _ns(self, ns: str, *argv: str) -> str:
        return _run(["ip", "netns", "exec", ns, *argv])

    def _build(self) -> None:
        pub = self.pub_ns
        _run(["ip", "netns", "add", pub])
        _run(["ip", "-n", pub, "link", "set", "lo", "up"])
        _run(["ip", "-n", pub, "link", "add", "br0", "type", "bridge"])
        _run(["ip", "-n", pub, "addr", "add", f"{PUB_ADDRESS}/{PUB_PREFIX_LEN}", "dev", "br0"])
        _run(["ip", "-n", pub, "link", "set", "br0", "up"])
        self._ns(pub, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        links = []
        for i, spec in enumerate(self.specs):
            host = PeerHost(
                index=i,
                nat=spec.nat,
                ns=f"{self.prefix}p{i}",
                router_ns=f"{self.prefix}r{i}",
                address=f"10.242.{i}.2",
                public_address=f"10.241.0.{10 + i}",
            )
            self.hosts.append(host)
            for ns in (host.router_ns, host.ns):
                _run(["ip", "netns", "add", ns])
                _run(["ip", "-n", ns, "link", "set", "lo", "up"])
            bridge_port = f"b{i}"
            _run(
                ["ip", "-n", pub, "link", "add", bridge_port, "type", "veth"]
                + ["peer", "name", "wan", "netns", host.router_ns]
            )
            _run(["ip", "-n", pub, "link", "set", bridge_port, "master", "br0", "up"])
            r = host.router_ns
            _run(
                ["ip", "-n", r, "addr", "add", f"{host.public_address}/{PUB_PREFIX_LEN}"]
                + ["dev", "wan"]
            )
            _run(["ip", "-n", r, "link", "set", "wan", "up"])
            _run(["ip", "-n", r, "route", "add", "default", "via", PUB_ADDRESS])
            self._ns(r, "sysctl", "-qw", "net.ipv4.ip_forward=1")
            if spec.nat == "none":
                _run(
                    ["ip", "-n", pub, "route", "add", f"10.242.{i}.0/24"]
                    + ["via", host.public_address]
                )
            else:
                _run(["ip", "netns", "exec", r, "nft", "-f", "-"], stdin=_nat_ruleset(spec.nat))
            links.append(
                {
                    "name": f"nb{i}",
                    "peer_ns": host.ns,
                    "router_ns": host.router_ns,
                    "up": spec.up.impairment(),
                    "down": spec.down.impairment(),
                }
            )
        self._start_impair(links)
        # Packets to addresses nobody routes (a peer's private address in an ICE candidate) are
        # dropped silently, as on the internet, instead of failing sendto() with ENETUNREACH
        # (coturn closes an allocation whose relay socket sees such an error): the default
        # route of the public segment is a TUN device whose reader (the TUN router) discards
        # and counts what it reads.
        _run(["ip", "-n", self.pub_ns, "link", "set", "void", "up"])
        _run(["ip", "-n", self.pub_ns, "route", "add", "default", "dev", "void"])
        for host, spec in zip(self.hosts, self.specs, strict=True):
            i = host.index
            inside, router_side = f"nb{i}p", f"nb{i}r"
            _run(
                ["ip", "-n", host.ns, "addr", "add", host.address]
                + ["peer", f"10.242.{i}.1", "dev", inside]
            )
            _run(["ip", "-n", host.ns, "link", "set", inside, "up"])
            _run(["ip", "-n", host.ns, "route", "add", "default", "dev", inside])
            _run(
                ["ip", "-n", host.router_ns, "addr", "add", f"10.242.{i}.1"]
                + ["peer", host.address, "dev", router_side]
            )
            _run(["ip", "-n", host.router_ns, "link", "set", router_side, "up"])
            _tbf(host.ns, inside, spec.up)
            _tbf(host.router_ns, router_side, spec.down)
        logger.info("bed up: %d peers", len(self.hosts))

    def _start_impair(self, links: list[dict[str, Any]]) -> None:
        self._spec_dir = tempfile.TemporaryDirectory(prefix="p2pnb-")
        path = os.path.join(self._spec_dir.name, "impair.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump({"links": links, "seed": self.seed, "sink": "void"}, f)
        proc = self.popen(
            self.pub_ns,
            [sys.executable, "-m", "peer_agent.netbed.impair", path],
            stdout=subprocess.PIPE,
            text=True,
            track=False,
        )
        self._impair = proc
        assert proc.stdout is not None
        line = _readline(proc.stdout, CMD_TIMEOUT_S)
        if line.strip() != "ready":
            raise BedError(f"the TUN router did not start (exit {proc.poll()}): {line[:200]!r}")

    # -- running things inside -----------------------------------------------------------

    def popen(
        self, ns: str, argv: Sequence[str], *, track: bool = True, **kwargs: Any
    ) -> subprocess.Popen[Any]:
        """Start ``argv`` inside namespace ``ns``; the bed kills it on :meth:`close`."""
        env = dict(os.environ if kwargs.get("env") is None else kwargs["env"])
        env.setdefault("PYTHONPATH", os.getcwd())
        kwargs["env"] = env
        proc: subprocess.Popen[Any] = subprocess.Popen(["ip", "netns", "exec", ns, *argv], **kwargs)
        if track:
            self._procs.append(proc)
        return proc

    def run(self, ns: str, argv: Sequence[str], timeout_s: float = 60.0) -> str:
        """Run ``argv`` inside ``ns`` to completion; its stdout (BedError on failure)."""
        try:
            done = subprocess.run(
                ["ip", "netns", "exec", ns, *argv],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired as exc:
            raise BedError(f"{argv[0]} in {ns} timed out after {timeout_s} s") from exc
        if done.returncode != 0:
            raise BedError(f"{argv[0]} in {ns}: exit {done.returncode}: {done.stderr[-500:]}")
        return done.stdout

    # -- teardown ------------------------------------------------------------------------

    def close(self) -> None:
        for proc in self._procs:
            _stop(proc)
        self._procs.clear()
        if self._impair is not None:
            out = _stop(self._impair)
            lines = [line for line in (out or "").splitlines() if line.startswith("{")]
            if lines:
                self.impair_stats = json.loads(lines[-1])
            self._impair = None
        for name in reversed(bed_namespaces(self.prefix)):
            _kill_namespace(name)
        if self._spec_dir is not None:
            self._spec_dir.cleanup()
            self._spec_dir = None


def _stop(proc: subprocess.Popen[Any]) -> str | None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate(timeout=STOP_TIMEOUT_S)
    return out if isinstance(out, str) else None


def _readline(stream: IO[str], timeout_s: float) -> str:
    import selectors

    with selectors.DefaultSelector() as sel:
        sel.register(stream, selectors.EVENT_READ)
        if not sel.select(timeout_s):
            raise BedError(f"no line within {timeout_s} s")
    return stream.readline()
