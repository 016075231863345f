"""coturn on the bed's public segment, with TURN REST API credentials (``use-auth-secret``).

:class:`Coturn` writes a configuration file (mode 0600, in a temporary directory: the secret is
never on a command line), starts ``turnserver`` inside the public namespace, and waits until it
answers a STUN Binding request. Its log (``simple-log``) stays in the directory while it runs;
:meth:`Coturn.usage` sums the per-session usage coturn logs when an allocation is deleted (on
its next one-second timer tick after a client's Refresh with lifetime 0, or at expiry). coturn
does not log the sessions still open when it is terminated, so :meth:`Coturn.stop` first waits
(at most ``close_wait_s``) until every session it has logged as new has logged its usage; the
sessions still open then are counted (:attr:`TurnUsage.open_sessions`) and logged as a warning.
The deployment recipe for a real server is in docs/deployment.md.

``python -m peer_agent.netbed.turn wait HOST PORT`` sends STUN Binding requests (bounded: 40
tries, 0.25 s apart) and exits 0 at the first answer, 1 otherwise.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import select
import socket
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from peer_agent.netbed.bed import PUB_ADDRESS, BedError, NetBed

logger = logging.getLogger(__name__)

STUN_MAGIC = 0x2112A442
WAIT_TRIES = 40
WAIT_GAP_S = 0.25
# "session N: usage: realm=<..>, username=<..>, rp=, rb=, sp=, sb=" (client side of the
# allocation: packets/bytes received from and sent to the client); "peer usage:" lines differ.
_USAGE = re.compile(r"session (\S+): usage: .*?rp=(\d+), rb=(\d+), sp=(\d+), sb=(\d+)")
# the same for the relay side of the allocation (packets/bytes received from and sent to peers)
_PEER_USAGE = re.compile(r"session (\S+): peer usage: .*?rp=(\d+), rb=(\d+), sp=(\d+), sb=(\d+)")
_NEW = re.compile(r"session (\S+): new,")
CLOSE_POLL_S = 0.1


@dataclass(frozen=True)
class TurnUsage:
    """What coturn's log says about its allocations so far."""

    #: bytes received from plus sent to clients, over the sessions closed so far (ChannelData,
    #: Send/Data indications and the allocation's own STUN requests/responses)
    client_bytes: int
    #: bytes received from plus sent to peers on relay ports: the data actually relayed
    peer_bytes: int
    closed_sessions: int
    #: sessions logged as new whose usage is not (yet) logged; after :meth:`Coturn.stop`: lost
    open_sessions: int


def parse_usage(log_text: str) -> TurnUsage:
    closed = {m[0] for m in _USAGE.findall(log_text)}
    opened = set(_NEW.findall(log_text))
    return TurnUsage(
        client_bytes=sum(int(m[2]) + int(m[4]) for m in _USAGE.findall(log_text)),
        peer_bytes=sum(int(m[2]) + int(m[4]) for m in _PEER_USAGE.findall(log_text)),
        closed_sessions=len(closed),
        open_sessions=len(opened - closed),
    )


@dataclass(frozen=True)
class TurnConfig:
    host: str = PUB_ADDRESS  #: listening and relay address
    port: int = 3478
    min_relay_port: int = 49160
    max_relay_port: int = 49999
    realm: str = "p2p-hls.bed"
    #: how long :meth:`Coturn.stop` waits for open sessions to log their usage before it
    #: terminates coturn (a deleted allocation is logged within about a second)
    close_wait_s: float = 5.0
    #: shared with the signaling server (``--turn-secret``); a fresh random one by default
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24), repr=False)

    @property
    def urls(self) -> tuple[str, str]:
        return (f"stun:{self.host}:{self.port}", f"turn:{self.host}:{self.port}?transport=udp")


def coturn_conf(cfg: TurnConfig, workdir: str) -> str:
    return "\n".join(
        [
            f"listening-ip={cfg.host}",
            f"relay-ip={cfg.host}",
            f"listening-port={cfg.port}",
            f"min-port={cfg.min_relay_port}",
            f"max-port={cfg.max_relay_port}",
            f"realm={cfg.realm}",
            "use-auth-secret",
            f"static-auth-secret={cfg.secret}",
            "fingerprint",
            "no-cli",
            "no-tls",
            "no-dtls",
            "no-multicast-peers",
            # one relay thread: with several, coturn 4.6 can hand a client's later packets to a
            # thread that does not hold its session (438 then 400 on CHANNEL_BIND)
            "relay-threads=1",
            f"userdb={workdir}/turndb",
            f"pidfile={workdir}/turnserver.pid",
            f"log-file={workdir}/turn.log",
            "simple-log",
            "verbose",
            "no-stdout-log",
            "",
        ]
    )


class Coturn:
    def __init__(self, bed: NetBed, config: TurnConfig | None = None) -> None:
        self.bed = bed
        self.config = config if config is not None else TurnConfig()
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[Any] | None = None
        self._final_log: str | None = None

    @property
    def log_path(self) -> str:
        assert self._dir is not None
        return os.path.join(self._dir.name, "turn.log")

    def start(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="p2pnb-turn-")
        path = os.path.join(self._dir.name, "turnserver.conf")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(coturn_conf(self.config, self._dir.name))
        self._proc = self.bed.popen(
            self.bed.pub_ns,
            ["turnserver", "-c", path],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait = [sys.executable, "-m", "peer_agent.netbed.turn", "wait"]
        try:
            self.bed.run(
                self.bed.pub_ns, [*wait, self.config.host, str(self.config.port)], timeout_s=30
            )
        except BedError as exc:
            raise BedError(f"coturn did not start (exit {self._proc.poll()}): {exc}") from exc

    def _log_text(self) -> str:
        if self._dir is None:
            return self._final_log or ""
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def usage(self) -> TurnUsage:
        """Usage over the sessions closed so far (after :meth:`stop`: all that coturn logged)."""
        return parse_usage(self._log_text())

    def relayed_bytes(self) -> int:
        """Bytes coturn received from plus sent to its clients over allocations, summed over
        the sessions closed so far (:attr:`TurnUsage.client_bytes`)."""
        return self.usage().client_bytes

    def _wait_sessions_closed(self) -> None:
        deadline = time.monotonic() + self.config.close_wait_s
        while (open_sessions := self.usage().open_sessions) > 0:
            if time.monotonic() >= deadline:
                logger.warning(
                    "coturn: %d sessions still open after %.1f s; their usage is not counted",
                    open_sessions,
                    self.config.close_wait_s,
                )
                return
            time.sleep(CLOSE_POLL_S)

    def stop(self) -> None:
        """Wait (bounded) for open sessions to log their usage, then terminate coturn."""
        if self._proc is not None and self._proc.poll() is None:
            self._wait_sessions_closed()
            self._proc.terminate()
            try:
                self._proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=5)
        if self._dir is not None:
            self._final_log = self._log_text()
            self._dir.cleanup()
            self._dir = None


def _binding_request() -> tuple[bytes, bytes]:
    tid = secrets.token_bytes(12)
    return struct.pack("!HHI", 0x0001, 0, STUN_MAGIC) + tid, tid


def wait_for_stun(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for _ in range(WAIT_TRIES):
            request, tid = _binding_request()
            s.sendto(request, (host, port))
            readable, _, _ = select.select([s], [], [], WAIT_GAP_S)
            if readable:
                data = s.recv(2048)
                if len(data) >= 20 and data[8:20] == tid:
                    return True
    return False


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 3 or args[0] != "wait":
        print("usage: python -m peer_agent.netbed.turn wait HOST PORT", file=sys.stderr)
        return 2
    return 0 if wait_for_stun(args[1], int(args[2])) else 1


if __name__ == "__main__":
    raise SystemExit(main())
