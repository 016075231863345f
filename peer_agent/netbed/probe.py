"""UDP probes that show how a bed NAT maps and filters (run inside bed namespaces).

``python -m peer_agent.netbed.probe echo HOST PORT [PORT ...] [--timeout-s S]``
    answers every datagram on each port with the sender's ``address:port`` as seen here; a
    datagram ``"other PORT"`` is answered from ``PORT`` (another of its sockets) instead, to test
    whether a NAT lets in a reply from an address:port the inside never sent to. Exits after
    ``--timeout-s``.
``python -m peer_agent.netbed.probe map HOST PORT [PORT ...] --other PORT``
    from one socket, asks each ``HOST:PORT`` for the mapped address, then asks the first port
    to answer from ``--other`` (a port this socket never sent to); prints
    ``{"mapped": {PORT: "a:p"}, "other_reply": bool}``.
``python -m peer_agent.netbed.probe tcp-wait HOST PORT``
    waits (bounded by --timeout-s, at most 300 s) until a TCP connection to HOST:PORT
    succeeds (a server is up).
``python -m peer_agent.netbed.probe rtt HOST PORT --count N``
    sends N datagrams one after the other (0.5 s each to answer); prints
    ``{"sent": N, "replies": K, "min_rtt_s": x, "max_rtt_s": y}``.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time

TRIES = 3
REPLY_TIMEOUT_S = 1.0
RTT_TIMEOUT_S = 0.5


def _echo(host: str, ports: list[int], timeout_s: float) -> int:
    socks = {}
    for port in ports:
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind((host, port))
        socks[port] = s
    print("ready", flush=True)
    deadline = time.monotonic() + timeout_s
    while (left := deadline - time.monotonic()) > 0:
        readable, _, _ = select.select(list(socks.values()), [], [], left)
        for s in readable:
            data, addr = s.recvfrom(2048)
            text = data.decode("ascii", "replace")
            out = s
            if text.startswith("other "):
                out = socks.get(int(text.split()[1]), s)
            out.sendto(f"{addr[0]}:{addr[1]}".encode(), addr)
    return 0


def _ask(s: socket.socket, dest: tuple[str, int], payload: bytes) -> str | None:
    for _ in range(TRIES):
        s.sendto(payload, dest)
        readable, _, _ = select.select([s], [], [], REPLY_TIMEOUT_S)
        if readable:
            data, _ = s.recvfrom(2048)
            return data.decode("ascii", "replace")
    return None


def _map(host: str, ports: list[int], other_port: int | None) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    mapped = {str(p): _ask(s, (host, p), b"map") for p in ports}
    other = None
    if other_port is not None:
        other = _ask(s, (host, ports[0]), f"other {other_port}".encode()) is not None
    print(json.dumps({"mapped": mapped, "other_reply": other}), flush=True)
    return 0


def _rtt(host: str, port: int, count: int) -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("0.0.0.0", 0))
    rtts: list[float] = []
    for i in range(count):
        start = time.monotonic()
        s.sendto(f"ping {i}".encode(), (host, port))
        deadline = start + RTT_TIMEOUT_S
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([s], [], [], left)
            if not readable:
                break
            s.recvfrom(2048)
            rtts.append(time.monotonic() - start)
            break
    summary = {
        "sent": count,
        "replies": len(rtts),
        "min_rtt_s": min(rtts, default=None),
        "max_rtt_s": max(rtts, default=None),
    }
    print(json.dumps(summary), flush=True)
    return 0


def _tcp_wait(host: str, port: int, timeout_s: float) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection((host, port), timeout=1.0).close()
            return 0
        except OSError:
            time.sleep(0.1)
    print(f"nothing listens on {host}:{port} after {timeout_s} s", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m peer_agent.netbed.probe")
    parser.add_argument("mode", choices=("echo", "map", "rtt", "tcp-wait"))
    parser.add_argument("host")
    parser.add_argument("ports", type=int, nargs="+")
    parser.add_argument("--timeout-s", type=float, default=60.0)
    parser.add_argument("--other", type=int, default=None)
    parser.add_argument("--count", type=int, default=10)
    args = parser.parse_args(argv)
    if args.mode == "echo":
        return _echo(args.host, args.ports, args.timeout_s)
    if args.mode == "tcp-wait":
        return _tcp_wait(args.host, args.ports[0], min(args.timeout_s, 300.0))
    if args.mode == "rtt":
        return _rtt(args.host, args.ports[0], args.count)
    return _map(args.host, args.ports, args.other)


if __name__ == "__main__":
    raise SystemExit(main())
