"""Each console-script defect of issue 13, as a real subprocess: its message and exit status.

Exit statuses (p2p_cli/serving.py): 0 done or stopped by a signal, 1 failed (one line says
why), 2 bad arguments, 130 interrupted before a result.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from p2p_cli.serving import ChildStdout
from peer_agent.net.swarm import swarm_id_for
from signaling.tokens import verify_token

ROOT = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(ROOT)}
SECRET = "a-secret-of-enough-length-for-tests"


def run(module: str, *argv: str, env: dict[str, str] | None = None, timeout_s: float = 180.0):
    """Run ``python -m module argv`` to the end; (status, stdout, stderr)."""
    proc = subprocess.run(
        [sys.executable, "-m", module, *argv],
        cwd=ROOT,
        env={**ENV, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout_s,
    )
    return proc.returncode, proc.stdout, proc.stderr


@contextlib.contextmanager
def taken_port() -> Iterator[int]:
    """A loopback port some other socket listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        yield int(s.getsockname()[1])


@contextlib.contextmanager
def refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections to it are refused, and no other
    process can listen on it meanwhile (as it could on a port found free and let go)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield int(s.getsockname()[1])


def start_server(
    module: str, *argv: str, stdout: ChildStdout, env: dict[str, str] | None = None
) -> tuple[subprocess.Popen[str], int]:
    """``python -m module --port 0 argv``, and the port it reports in its "listening on" line
    (no other process can take it between our choice and its bind: it chose)."""
    proc = subprocess.Popen(
        [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", "0", *argv],
        cwd=ROOT,
        env={**ENV, **(env or {})},
        stdout=stdout.file,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120.0  # imports alone take seconds on a busy machine
    while (port := stdout.port()) is None:
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise AssertionError(f"{module} never said where it listens: {proc.communicate()}")
        time.sleep(0.05)
    return proc, port


def wait_http(url: str, proc: subprocess.Popen[str], timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(url, timeout=2.0).status_code == 200:
                return
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


# --- servers: a port in use, Ctrl-C ---------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "extra"),
    [
        ("signaling.cli", []),
        ("signaling.hashsvc.cli", ["--allow-prefix", "http://127.0.0.1:9/"]),
        ("peer_agent.origin.cli", []),
    ],
    ids=["p2p-signaling", "p2p-hashsvc", "p2p-origin"],
)
def test_a_port_in_use_is_one_line_and_status_1(module: str, extra: list[str]) -> None:
    with taken_port() as port:
        code, _, err = run(module, "--host", "127.0.0.1", "--port", str(port), *extra)
    assert code == 1, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert f"error: cannot listen on 127.0.0.1:{port}: the port is already in use" in err


@pytest.mark.slow
def test_signaling_ctrl_c_exits_0_without_a_traceback() -> None:
    stdout = ChildStdout()
    proc, port = start_server("signaling.cli", "--log-level", "warning", stdout=stdout)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        out = stdout.text()
    finally:
        stop(proc)
        stdout.close()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err, err
    assert f"p2p-signaling listening on http://127.0.0.1:{port}" in out


# --- mint-token -----------------------------------------------------------------------------


def test_mint_token_takes_the_swarm_id_as_the_page_and_agent_show_it() -> None:
    swarm = swarm_id_for("http://127.0.0.1:8080/hls/live-ts/master.m3u8")
    assert len(swarm) == 20
    env = {"P2P_SIGNALING_TOKEN_SECRET": SECRET}
    code, out, err = run("signaling.cli", "mint-token", "--info-hash", swarm, env=env)
    assert code == 0, err
    grant = verify_token(SECRET, out.strip(), time.time())
    assert grant.allows(swarm.encode("latin-1").hex())
    # the 40-hex form /api/swarms shows is accepted too, and names the same swarm
    code, out, _ = run("signaling.cli", "mint-token", "--info-hash", swarm.encode().hex(), env=env)
    assert code == 0 and verify_token(SECRET, out.strip(), time.time()).swarms == grant.swarms
    code, out, _ = run("signaling.cli", "mint-token", "--help")
    assert code == 0 and "20-character" in " ".join(out.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--info-hash", "too-short"], "not a swarm id: 'too-short' (9 characters)"),
        (["--info-hash", "0123456789abcdef0123", "--ttl-s", "-5"], "not a validity in seconds"),
    ],
)
def test_mint_token_bad_values_exit_2(argv: list[str], message: str) -> None:
    env = {"P2P_SIGNALING_TOKEN_SECRET": SECRET}
    code, out, err = run("signaling.cli", "mint-token", *argv, env=env)
    assert code == 2 and out == ""
    assert message in err


# --- p2p-agent ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["http://127.0.0.1:9/x.m3u8", "--duration-s", "-5"], "--duration-s: duration_s must be"),
        (["http://127.0.0.1:9/x.m3u8", "--duration-s", "nan"], "--duration-s: duration_s must be"),
        (["http://127.0.0.1:9/x.m3u8", "--max-peers", "-1"], "--max-peers: max_peers must be"),
        (["127.0.0.1:9/x.m3u8"], "PLAYLIST_URL: playlist_url must be a URL starting with http"),
        (
            ["http://127.0.0.1:9/x.m3u8", "--tracker", "http://127.0.0.1:9/announce"],
            "the tracker is a WebSocket: ws://HOST:PORT/announce",
        ),
    ],
    ids=["negative-duration", "nan-duration", "negative-peers", "no-scheme", "http-tracker"],
)
def test_agent_rejects_bad_arguments_with_status_2(argv: list[str], message: str) -> None:
    code, out, err = run("peer_agent.agent.cli", *argv)
    assert code == 2, err
    assert message in err and out == ""


def test_agent_unknown_host_fails_at_once_without_retries() -> None:
    code, _, err = run("peer_agent.agent.cli", "http://nonexistent.invalid/x.m3u8", "--json")
    assert code == 1
    assert "http://nonexistent.invalid/x.m3u8: unknown host" in err
    assert "gave up after" not in err  # not retried 5 times


@pytest.fixture(scope="module")
def origin_url() -> Iterator[str]:
    """A real p2p-origin (tiny media) in a subprocess."""
    stdout = ChildStdout()
    proc, port = start_server(
        "peer_agent.origin.cli",
        "--segment-duration-s", "1", "--content-duration-s", "6", "--fps", "10",
        "--renditions", "lo:128x72@60000", "--log-level", "warning",
        stdout=stdout,
    )  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc, timeout_s=120)
        yield f"http://127.0.0.1:{port}/hls/vod-ts/master.m3u8"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        stdout.close()


@pytest.fixture(scope="module")
def token_tracker() -> Iterator[str]:
    """A real p2p-signaling that requires join tokens."""
    stdout = ChildStdout()
    proc, port = start_server(
        "signaling.cli",
        "--log-level",
        "warning",
        stdout=stdout,
        env={"P2P_SIGNALING_TOKEN_SECRET": SECRET},
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        yield f"ws://127.0.0.1:{port}/announce"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        stdout.close()


def agent(origin_url: str, tracker: str, *extra: str, token: str | None = None):
    env = {"P2P_AGENT_TOKEN": token} if token else {"P2P_AGENT_TOKEN": ""}
    return run(
        "peer_agent.agent.cli",
        origin_url,
        "--tracker",
        tracker,
        "--duration-s",
        "3",
        "--json",
        *extra,
        env=env,
        timeout_s=90,
    )


@pytest.mark.slow
def test_agent_with_an_unreachable_tracker_warns_and_exits_1(origin_url: str) -> None:
    with refusing_port() as port:
        tracker = f"ws://127.0.0.1:{port}/announce"
        code, out, err = agent(origin_url, tracker)
    assert code == 1, err
    assert f"tracker {tracker}: cannot connect: connection refused" in err  # the warning
    assert f"never joined the swarm at the tracker {tracker}" in err
    summary = json.loads(out)
    assert summary["bytes_cdn"] > 0  # it still played, from the CDN
    assert summary["swarm_id"] == swarm_id_for(origin_url)  # what mint-token --info-hash takes


@pytest.mark.slow
def test_agent_with_an_unknown_tracker_host_gives_up_at_once(origin_url: str) -> None:
    code, _, err = agent(origin_url, "ws://nonexistent.invalid:8000/announce")
    assert code == 1, err
    assert "cannot connect: unknown host" in err and "giving up" in err
    assert err.count("cannot connect") == 1 + 1  # the warning, then the final error line


@pytest.mark.slow
def test_agent_whose_token_is_refused_says_so_and_exits_1(
    origin_url: str, token_tracker: str
) -> None:
    bogus = "v1." + base64.urlsafe_b64encode(b'{"swarms":[],"exp":1}').decode().rstrip("=") + ".x"
    code, _, err = agent(origin_url, token_tracker, token=bogus)
    assert code == 1, err
    assert "the join token was refused" in err and "giving up" in err
    assert bogus not in err  # never print the token
    code, _, err = agent(origin_url, token_tracker)  # no token at all
    assert code == 1 and "the join token was refused (a join token is required)" in err


# --- make demo ------------------------------------------------------------------------------


def test_demo_with_its_page_port_taken_names_it_and_starts_nothing() -> None:
    marker = f"cli-test-{os.getpid()}-{time.monotonic_ns()}"
    with taken_port() as port:
        code, _, err = run(
            "peer_agent.demo", "--port", str(port), "--agents", "0", env={"P2P_TEST_RUN": marker}
        )
    assert code == 1, err
    assert f"the page: cannot listen on 127.0.0.1:{port}: the port is already in use" in err
    assert "--port 0" in err and "Traceback" not in err
    assert _processes_with(marker) == []  # no origin or signaling server left running


def _processes_with(marker: str) -> list[int]:
    """PIDs whose environment holds ``marker`` (children inherit it, orphans keep it)."""
    found = []
    needle = f"P2P_TEST_RUN={marker}".encode()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                if needle in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
    return found


# --- p2p-loadtest ---------------------------------------------------------------------------


def test_loadtest_zero_agents_is_an_error_about_agents() -> None:
    code, _, err = run("peer_agent.loadtest.cli", "--agents", "0")
    assert code == 2
    assert "--agents must be at least 1" in err and "peers" not in err.splitlines()[-1]


@pytest.mark.slow
def test_loadtest_prints_plain_progress_lines_when_stderr_is_not_a_terminal(
    tmp_path: Path,
) -> None:
    code, out, err = run(
        "peer_agent.loadtest.cli",
        "--agents", "2", "--workers", "1", "--duration-s", "12", "--segment-s", "1",
        "--join-over-s", "1", "--no-plots", "--out", str(tmp_path),
        timeout_s=240,
    )  # fmt: skip
    assert code == 0, err
    lines = [line for line in err.splitlines() if line.startswith("P2P [")]
    assert len(lines) >= 2, err  # one at the start, one about every 10 s
    assert "\r" not in err
    assert out.startswith("p2p-loadtest summary: 2 agents, live")
    assert "offload_ratio" in out and "share of media bytes received from peers" in out


# --- a reader that goes away ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("module", "argv"),
    [
        ("peer_agent.sim.cli", ["--peers", "3", "--duration-s", "10", "--json"]),
        ("signaling.cli", ["mint-token", "--info-hash", "0123456789abcdef0123"]),
    ],
    ids=["p2p-sim", "mint-token"],
)
def test_a_closed_stdout_is_no_traceback(module: str, argv: list[str]) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", module, *argv],
        cwd=ROOT,
        env={**ENV, "P2P_SIGNALING_TOKEN_SECRET": SECRET},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # like `| head -c 0`: the reader is gone before the result is written
    err = proc.stderr.read()
    assert proc.wait(60) == 0, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err


# --- p2p-loadtest plots and matplotlib --------------------------------------------------------


def test_loadtest_plots_have_titles_unit_labels_and_legends_beside_the_axes(
    tmp_path: Path,
) -> None:
    from peer_agent.loadtest.plots import PLOTS, write_plots
    from peer_agent.loadtest.runner import RunResult

    def run_result(p2p: bool) -> RunResult:
        r = RunResult(p2p=p2p, specs=[])
        for t in range(12):
            r.samples.append(
                {"t_s": float(t), "bytes_cdn": 1000 * (t + 1), "bytes_p2p": 3000 * t * p2p,
                 "origin_segment_bytes": 1000 * (t + 1), "stall_count": 0,
                 "latency_s_median": 6.0}
            )  # fmt: skip
        r.agents = [
            {"index": i, "kind": "normal", "startup_s": 1.0 + i, "bytes_cdn": 10, "bytes_p2p": 20,
             "bytes_uploaded": 5}
            for i in range(3)
        ]  # fmt: skip
        return r

    seen: dict[str, tuple[str, str, str, list[str], float]] = {}

    def inspect(name: str, fig: object) -> None:
        (ax,) = fig.axes  # type: ignore[attr-defined]
        legend = ax.get_legend()
        x0 = legend.get_bbox_to_anchor().transformed(ax.transAxes.inverted()).x0
        texts = [t.get_text() for t in legend.get_texts()]
        seen[name] = (ax.get_title(), ax.get_xlabel(), ax.get_ylabel(), texts, x0)

    written = write_plots(run_result(True), run_result(False), tmp_path, inspect=inspect)
    assert sorted(p.name for p in written) == sorted(PLOTS) == sorted(seen)
    for name, (title, xlabel, ylabel, texts, x0) in seen.items():
        assert title and texts, name
        assert "(" in xlabel and "(" in ylabel, (name, xlabel, ylabel)  # units in brackets
        assert x0 > 1.0, name  # the legend sits beside the axes, not over the data
    assert "CDN only\n(baseline)" in seen["cdn_egress.png"][3]


def test_loadtest_without_matplotlib_names_the_extra_before_running() -> None:
    code = (
        "import sys; sys.modules['matplotlib'] = None\n"
        "from peer_agent.loadtest import cli\n"
        "sys.exit(cli.main(['--agents', '1', '--duration-s', '1']))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 1, proc.stderr
    assert "pip install 'p2p-hls[loadtest]' (or pass --no-plots)" in proc.stderr
