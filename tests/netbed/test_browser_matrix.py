"""Browser (Chromium) <-> agent on the bed (root): web_demo's tracker/rtc code in a headless
Chromium inside one peer namespace, the agent's probe in another, the servers on the public
segment. Issue 14's matrix, two pairs at a time: browser behind a cone NAT <-> agent behind a
symmetric NAT with ICE servers from the tracker (TURN credentials): relay; browser (cone) <->
agent (cone) with STUN only: server-reflexive (hole punching); then, with the tracker's ICE
servers, no NAT on either side: host (a direct pair wins over the relay), and symmetric <->
symmetric: relay."""

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
from typing import Any

import pytest

from peer_agent.netbed.bed import PUB_ADDRESS, NetBed, PeerSpec
from peer_agent.netbed.turn import Coturn
from tests.netbed.test_matrix import SIGNALING_PORT, TRACKER, path_type, probe_results

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("need_bed")]

ROOT = Path(__file__).resolve().parents[2]
PAGE_PORT = 8081
TIMEOUT_S = 60
#: (browser host, agent host, page query, agent ICE flags, expected path type)
Case = tuple[int, int, dict[str, str], list[str], str]


@pytest.fixture
def bed_with_page() -> Iterator[tuple[NetBed, Coturn]]:
    if not Path("/usr/bin/chromium").exists():
        pytest.skip("needs Debian's chromium")
    pytest.importorskip("playwright")
    kinds = ["cone", "symmetric", "cone", "cone", "none", "none", "symmetric", "symmetric"]
    specs = [PeerSpec(kind) for kind in kinds]
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


def _run_pairs(bed: NetBed, cases: list[Case], first: int) -> list[dict[str, Any]]:
    """Start every case's page and agent at once; their one-line JSON results, in order."""
    procs = []
    for i, (browser, agent, query, flags, _) in enumerate(cases, start=first):
        info_hash = (f"browser-{i}" + "-" * 20)[:20]
        params = urllib.parse.urlencode({"tracker": TRACKER, "ih": info_hash, **query})
        page = f"http://{PUB_ADDRESS}:{PAGE_PORT}/bed.html?{params}"
        probe = [sys.executable, str(ROOT / "tests/netbed/browser_probe.py"), page, str(TIMEOUT_S)]
        agent_argv = [sys.executable, "-m", "peer_agent.netbed.connect", TRACKER, info_hash]
        agent_argv += [*flags, "--timeout-s", str(TIMEOUT_S)]
        procs.append(bed.popen(bed.hosts[browser].ns, probe, stdout=subprocess.PIPE, text=True))
        procs.append(bed.popen(bed.hosts[agent].ns, agent_argv, stdout=subprocess.PIPE, text=True))
    return probe_results(procs)


def test_browser_and_agent_connect_across_nats(bed_with_page: tuple[NetBed, Coturn]) -> None:
    bed, turn = bed_with_page
    stun = turn.config.urls[0]
    tracker: tuple[dict[str, str], list[str]] = ({"from_tracker": "1"}, ["--ice-from-tracker"])
    rounds: list[list[Case]] = [  # (browser host, agent host, page query, agent flags, path)
        [
            (0, 1, *tracker, "relay"),  # cone <-> symmetric
            (2, 3, {"ice": json.dumps([{"urls": stun}])}, ["--ice-server", stun], "srflx"),
        ],
        [
            (4, 5, *tracker, "host"),  # no NAT on either side
            (6, 7, *tracker, "relay"),  # symmetric <-> symmetric
        ],
    ]
    first = 0
    for cases in rounds:
        results = _run_pairs(bed, cases, first)
        first += len(cases)
        for i, (_, _, query, _, expected) in enumerate(cases):
            browser_side, agent_side = results[2 * i], results[2 * i + 1]
            assert browser_side["ok"] and agent_side["ok"], (expected, browser_side, agent_side)
            assert path_type([browser_side, agent_side]) == expected, (browser_side, agent_side)
            if "from_tracker" in query:  # STUN + TURN with credentials from the tracker
                assert browser_side["ice_servers"] == 2, browser_side
                assert browser_side["ice_failures"] == 0, browser_side
