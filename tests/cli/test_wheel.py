"""A wheel built from the repo, installed into a fresh venv (dependencies from pip's cache or
PyPI), runs every console script; its contents are what the README says they are."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SKIP = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "build", "*.egg-info", "__pycache__", ".*_cache", "tests"
)


def _run(argv: list[str], cwd: Path, timeout_s: float = 600) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )


@pytest.mark.slow
def test_wheel_installs_into_a_fresh_venv_and_its_console_scripts_run(tmp_path: Path) -> None:
    # Build from a copy, so no stale build/ directory of the checkout leaks into the wheel.
    src = tmp_path / "src"
    shutil.copytree(ROOT, src, ignore=SKIP, symlinks=True)
    dist = tmp_path / "dist"
    built = _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(dist), str(src)], tmp_path
    )
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = dist.glob("p2p_hls-*.whl")

    tops = {name.split("/")[0] for name in zipfile.ZipFile(wheel).namelist()}
    packages = {t for t in tops if not t.endswith(".dist-info")}
    assert packages == {"p2p_cli", "peer_agent", "signaling"}  # the Python side only (README)

    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", str(venv)], tmp_path)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run([str(python), "-m", "pip", "install", "-q", str(wheel)], tmp_path, 900)
    assert installed.returncode == 0, installed.stderr[-3000:]

    where = _run(
        [str(python), "-c", "import p2p_cli, peer_agent, signaling; print(peer_agent.__file__)"],
        tmp_path,
    )
    assert where.returncode == 0 and str(venv) in where.stdout, where.stderr  # not the checkout

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert set(scripts) == {
        "p2p-signaling", "p2p-hashsvc", "p2p-origin", "p2p-agent", "p2p-loadtest", "p2p-sim",
    }  # fmt: skip
    for name in scripts:
        result = _run([str(venv / "bin" / name), "--help"], tmp_path, 120)
        assert result.returncode == 0, (name, result.stderr[-2000:])
        assert f"usage: {name}" in result.stdout and "Exit status" in result.stdout, name

    # The demo needs the page and hls.js, which only a checkout has: it says so, loudly.
    demo = _run([str(python), "-m", "peer_agent.demo", "--port", "0"], tmp_path, 120)
    assert demo.returncode == 1
    assert "the installed package carries the Python side only" in demo.stderr
