"""The core stays pure: no asyncio, sockets, clock reads or module-level randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "peer_agent" / "core"
FORBIDDEN_MODULES = {
    "asyncio",
    "socket",
    "time",
    "threading",
    "selectors",
    "ssl",
    "aiortc",
    "httpx",
    "websockets",
    "datetime",
    "secrets",
    "os",
}
MODULES = sorted(CORE.glob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_module_imports_nothing_impure(path: Path) -> None:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN_MODULES, f"{path.name} imports {name}"
            if name.split(".")[0] == "random":
                # Allowed only for type hints of an injected random.Random.
                assert isinstance(node, ast.ImportFrom) and all(
                    a.name == "Random" for a in node.names
                ), f"{path.name} uses the random module directly"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_core_module_draws_no_module_level_randomness(path: Path) -> None:
    source = path.read_text()
    for call in (
        "random.random(",
        "random.choice(",
        "random.shuffle(",
        "time.time(",
        "time.monotonic(",
        "os.urandom(",
    ):
        assert call not in source, f"{path.name} calls {call}"


def test_there_is_a_core_to_check() -> None:
    names = {p.name for p in MODULES}
    assert {"scheduler.py", "playback.py", "store.py", "election.py"} <= names
    exchange = {
        "exchange.py",
        "exchange_actions.py",
        "exchange_serve.py",
        "exchange_state.py",
        "exchange_uploads.py",
        "exchange_view.py",
    }
    assert exchange <= names, sorted(exchange - names)
