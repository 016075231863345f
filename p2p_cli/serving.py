"""How every console script starts, fails and stops (the same for all six).

Exit status, documented in each script's ``--help``:

- ``0``: done, or a server stopped by SIGINT (Ctrl-C) or SIGTERM after its graceful shutdown;
- ``1``: it could not do its job: a port already in use, a tracker that never answered, a
  failed run. One line on stderr says why (``p2p-x: error: ...``), never a traceback;
- ``2``: bad arguments or environment values (argparse's convention);
- ``130``: interrupted (Ctrl-C) before it had anything to report (128 + SIGINT, the shell's
  convention).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130

EXIT_STATUS_HELP = (
    "Exit status: 0 when done (a server: after a graceful shutdown on SIGINT/SIGTERM); 1 when it "
    "failed (one line on stderr says why, e.g. a port already in use); 2 on bad arguments; "
    "130 when interrupted before it had a result."
)


def run_main(main: Callable[..., int], *args: Any) -> int:
    """``main(*args)``, with a Ctrl-C that arrives before the program took over SIGINT (while
    parsing, generating media, starting up) ending in :data:`EXIT_INTERRUPTED`, no traceback."""
    try:
        return main(*args)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


def error(prog: str, message: str) -> None:
    """The one line a script prints when it fails: ``prog: error: message``."""
    print(f"{prog}: error: {message}", file=sys.stderr, flush=True)


def print_result(text: str) -> None:
    """Print a script's result on stdout. A reader that went away (``p2p-sim --json | head``)
    is not an error of ours: no ``BrokenPipeError`` traceback, at print or at exit."""
    try:
        print(text, flush=True)
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())  # the interpreter's final flush must not fail


def listen_error(host: str, port: int, exc: OSError) -> str:
    """A short reason for a failed bind, naming the address."""
    shown = f"[{host}]" if ":" in host else host
    if exc.errno == errno.EADDRINUSE:
        why = "the port is already in use (another process listens on it; pick another --port)"
    elif exc.errno == errno.EACCES:
        why = "permission denied (ports below 1024 need privileges)"
    elif exc.errno == errno.EADDRNOTAVAIL:
        why = "this machine has no such address (check --host)"
    else:
        why = exc.strerror or str(exc)
    return f"cannot listen on {shown}:{port}: {why}"


def bind_tcp(host: str, port: int, backlog: int = 1024) -> socket.socket:
    """A listening, non-blocking TCP socket (``port`` 0: a free one); IPv6 when ``host`` has
    a colon. Raises ``OSError`` (see :func:`listen_error`)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


#: The line each server prints on stdout once its socket listens (p2p-signaling, p2p-origin,
#: p2p-hashsvc): ``PROG listening on http://HOST:PORT ...``.
_LISTENING_LINE = re.compile(r"^\S+ listening on http://(?:\[[^\]\s]*\]|[^\s:/\[]+):(\d+)", re.M)


def listening_port(output: str) -> int | None:
    """The port in a server's "listening on" line within ``output``, ``None`` before the line.

    A parent that starts a server with ``--port 0`` learns its port this way: unlike picking a
    free port first and handing it over, no other process can take the port in between."""
    match = _LISTENING_LINE.search(output)
    return int(match.group(1)) if match is not None else None


class ChildStdout:
    """A child process's stdout in an unlinked temporary file, readable while the child writes.

    Pass :attr:`file` as the child's ``stdout``; :meth:`port` finds its "listening on" line.
    Unlike a pipe, nothing has to drain it: a child that prints more than a pipe holds never
    blocks. Reads use ``pread`` and leave the offset the child writes at alone."""

    def __init__(self) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 (closed by close(), at the child's end)

    def text(self, max_bytes: int = 1 << 16) -> str:
        return os.pread(self.file.fileno(), max_bytes, 0).decode("utf-8", "replace")

    def port(self) -> int | None:
        return listening_port(self.text())

    def close(self) -> None:
        self.file.close()

    def wait_port(self, proc: subprocess.Popen[Any], timeout_s: float) -> int:
        """Blocking: the port once ``proc`` (whose stdout is :attr:`file`) printed its line;
        ``RuntimeError`` if it exits first or says nothing within ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        while (port := self.port()) is None:
            if proc.poll() is not None:
                raise RuntimeError(f"{proc.args!r} exited with status {proc.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{proc.args!r} did not say where it listens")
            time.sleep(0.05)
        return port


@contextlib.contextmanager
def exit_signals(handle_exit: Callable[[int, FrameType | None], None]) -> Iterator[None]:
    """While inside, SIGINT and SIGTERM call ``handle_exit(sig, None)`` in the running loop.

    For ``uvicorn.Server.capture_signals``: uvicorn's own handling re-raises the signal after
    its graceful shutdown, so the process dies by it (a KeyboardInterrupt traceback for
    Ctrl-C); with this the shutdown ends in a normal return and exit status 0.
    """
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)
    for sig in signals:
        loop.add_signal_handler(sig, handle_exit, sig, None)
    try:
        yield
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
