"""p2p_cli is shared by signaling and peer_agent, so it imports neither, nor anything outside
the standard library."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def imported_tops(path: Path) -> set[str]:
    tops = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            tops |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            tops.add(node.module.split(".")[0])
    return tops


def test_p2p_cli_imports_only_the_standard_library_and_itself() -> None:
    files = sorted((ROOT / "p2p_cli").glob("*.py"))
    assert files
    for path in files:
        foreign = {
            top
            for top in imported_tops(path)
            if top not in sys.stdlib_module_names and top not in ("p2p_cli", "__future__")
        }
        assert not foreign, f"{path.name} imports {sorted(foreign)}"
