"""Browser (Chromium) <-> agent on the bed (root): web_demo's tracker/rtc code in a headless
Chromium inside one peer namespace, the agent's probe in another, the servers on the public
segment. Two pairs at once: browser behind a cone NAT <-> agent behind a symmetric NAT with
ICE servers from the tracker (TURN credentials): relay; browser (cone) <-> agent (cone) with
STUN only: server-reflexive (hole punching)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest

from peer_agent.netbed.bed import PUB_ADDRESS, NetBed, PeerSpec
from peer_agent.netbed.turn import Coturn
from tests.netbed.test_matrix import SIGNALING_PORT, TRACKER, path_type

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("need_bed")]

ROOT = Path(__file__).resolve().parents[2]
PAGE_PORT = 8081
TIMEOUT_S = 60


@pytest.fixture
def bed_with_page() -> Iterator[tuple[NetBed, Coturn]]:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs Debian's chromium")
    pytest.importorskip("playwright")
    specs = [PeerSpec("cone"), PeerSpec("symmetric"), PeerSpec("cone"), PeerSpec("cone")]
    with NetBed(specs, seed=5) as bed, tempfile.TemporaryDirectory(prefix="p2pnb-page-") as root:
        shutil.copy(ROOT / "tests/netbed/page/bed.html", Path(root) / "bed.html")
        os.symlink(ROOT / "web_demo", Path(root) / "web_demo")
        turn = Coturn(bed)
        turn.start()
        try:
            env = {
                "P2P_SIGNALING_TURN_SECRET": turn.config.secret,
                "P2P_SIGNALING_ICE_URLS": ",".join(turn.config.urls),
                "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            }
            bed.popen(
                bed.pub_ns,
                [sys.executable, "-m", "signaling.cli", "--host", PUB_ADDRESS]
                + ["--port", str(SIGNALING_PORT), "--log-level", "warning"],
                env=env,
            )
            bed.popen(
                bed.pub_ns,
                [sys.executable, "-m", "http.server", str(PAGE_PORT), "--bind", PUB_ADDRESS]
                + ["--directory", root],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            wait = [sys.executable, "-m", "peer_agent.netbed.probe", "tcp-wait", PUB_ADDRESS]
            for port in (SIGNALING_PORT, PAGE_PORT):
                # 120 s: a busy machine stretches the servers' start (test_matrix.py)
                bed.run(bed.pub_ns, [*wait, str(port), "--timeout-s", "120"], timeout_s=130)
            yield bed, turn
        finally:
            turn.stop()


def test_browser_and_agent_connect_across_nats(bed_with_page: tuple[NetBed, Coturn]) -> None:
    bed, turn = bed_with_page
    stun = turn.config.urls[0]
    cases = [  # (browser host, agent host, page query, agent ICE flags, expected path)
        (0, 1, {"from_tracker": "1"}, ["--ice-from-tracker"], "relay"),
        (2, 3, {"ice": json.dumps([{"urls": stun}])}, ["--ice-server", stun], "srflx"),
    ]
    procs = []
    for i, (browser, agent, query, flags, _) in enumerate(cases):
        info_hash = (f"browser-{i}" + "-" * 20)[:20]
        params = urllib.parse.urlencode({"tracker": TRACKER, "ih": info_hash, **query})
        page = f"http://{PUB_ADDRESS}:{PAGE_PORT}/bed.html?{params}"
        probe = [sys.executable, str(ROOT / "tests/netbed/browser_probe.py"), page, str(TIMEOUT_S)]
        agent_argv = [sys.executable, "-m", "peer_agent.netbed.connect", TRACKER, info_hash]
        agent_argv += [*flags, "--timeout-s", str(TIMEOUT_S)]
        procs.append(bed.popen(bed.hosts[browser].ns, probe, stdout=subprocess.PIPE, text=True))
        procs.append(bed.popen(bed.hosts[agent].ns, agent_argv, stdout=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        results.append(json.loads(line) if line.strip() else {"ok": False, "error": "no output"})
    for proc in procs:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=15)
    for i, (_, _, _, _, expected) in enumerate(cases):
        browser_side, agent_side = results[2 * i], results[2 * i + 1]
        assert browser_side["ok"] and agent_side["ok"], (expected, browser_side, agent_side)
        assert path_type([browser_side, agent_side]) == expected, (browser_side, agent_side)
    assert results[0]["ice_servers"] == 2 and results[0]["ice_failures"] == 0, results[0]
