"""How a parent learns the port of a server it started with ``--port 0`` (p2p_cli/serving.py)."""

from __future__ import annotations

import subprocess
import sys
import time

from p2p_cli.serving import ChildStdout, listening_port


def test_listening_port_reads_each_servers_line_and_nothing_else() -> None:
    signaling = "p2p-signaling listening on http://127.0.0.1:40123 (WebSocket ws://127.0.0.1:40123/announce)"
    assert listening_port(signaling + "\n") == 40123
    assert listening_port("p2p-origin listening on http://0.0.0.0:8080\n  streams: ...\n") == 8080
    assert listening_port("p2p-hashsvc listening on http://[::1]:9001\n") == 9001
    assert listening_port("a warning first\np2p-origin listening on http://h:81\n") == 81
    assert listening_port("") is None
    assert listening_port("p2p-origin listening on http://127.0.0.1:") is None  # half a line
    assert listening_port("GET http://127.0.0.1:80/ says listening on nothing") is None


def test_child_stdout_is_read_while_the_child_still_writes() -> None:
    out = ChildStdout()
    script = (
        "import sys; print('x listening on http://127.0.0.1:5555', flush=True); "
        "sys.stdin.read(); print('more' * 50000)"  # more than a pipe holds, after we read
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=out.file, text=True
    )
    try:
        deadline = time.monotonic() + 60
        while out.port() is None:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        assert out.port() == 5555
        proc.communicate("", timeout=60)  # ends without anyone draining its stdout
        assert proc.returncode == 0
        assert out.text(1 << 20).count("more") == 50000
        assert out.port() == 5555
    finally:
        if proc.poll() is None:
            proc.kill()
        out.close()
