"""docs/configuration.md lists every config class and every JS defaults object, with its file:
the README's "where the defaults live" stays true as classes are added."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TABLE = (ROOT / "docs" / "configuration.md").read_text()
CONFIG_NAME = re.compile(r"(Config|Limits)$|^Scenario$")


def _is_frozen_dataclass(node: ast.ClassDef) -> bool:
    return any(
        isinstance(deco, ast.Call)
        and getattr(deco.func, "id", None) == "dataclass"
        and any(k.arg == "frozen" and getattr(k.value, "value", False) for k in deco.keywords)
        for deco in node.decorator_list
    )


def python_configs() -> list[tuple[str, str]]:
    found = []
    for package in ("peer_agent", "signaling", "p2p_cli"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if (
                    isinstance(node, ast.ClassDef)
                    and CONFIG_NAME.search(node.name)
                    and _is_frozen_dataclass(node)
                ):
                    found.append((node.name, path.relative_to(ROOT).as_posix()))
    return found


def js_defaults() -> list[tuple[str, str]]:
    pattern = re.compile(r"^export const (DEFAULT_\w+_(?:CONFIG|OPTIONS)) =", re.MULTILINE)
    return [
        (name, path.relative_to(ROOT).as_posix())
        for path in sorted((ROOT / "web_demo").glob("*.js"))
        for name in pattern.findall(path.read_text())
    ]


def test_every_config_class_has_a_row_naming_its_file() -> None:
    configs = python_configs() + js_defaults()
    assert len(configs) >= 20  # the scan itself works
    rows = [line for line in TABLE.splitlines() if line.startswith("| `")]
    missing = [
        f"{name} ({path})"
        for name, path in configs
        if not any(f"`{name}`" in row and f"`{path}`" in row for row in rows)
    ]
    assert not missing, f"add a row to docs/configuration.md for: {', '.join(missing)}"


def test_the_readme_points_to_the_table() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "docs/configuration.md" in readme
    assert "defaults in one\nplace" not in readme
