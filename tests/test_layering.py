"""Dependencies point one way (README, "What is here"; DESIGN.md): a static check of every
import statement, type-checking-only ones included.

- ``signaling`` and ``peer_agent`` never import each other;
- ``peer_agent.core`` imports only the standard library and itself;
- ``peer_agent.net`` does not import ``peer_agent.agent``; ``peer_agent.sim`` not
  ``peer_agent.net``;
- the modules of ``peer_agent.agent`` form no import circle.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, relative imports resolved to absolute names."""
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                prefix = ".".join(base)
                module = f"{prefix}.{node.module}" if node.module else prefix
                # ``from . import x`` names submodules
                if node.module is None:
                    out.update(f"{prefix}.{alias.name}" for alias in node.names)
                    continue
            else:
                module = node.module or ""
            out.add(module)
            out.update(f"{module}.{alias.name}" for alias in node.names)
    return out


def modules(package: str) -> list[Path]:
    return sorted((ROOT / package.replace(".", "/")).rglob("*.py"))


def under(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def offending(package: str, forbidden: str) -> list[str]:
    return [
        f"{module_name(path)} imports {name}"
        for path in modules(package)
        for name in sorted(imports(path))
        if under(name, forbidden)
    ]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("signaling", "peer_agent"),
        ("peer_agent", "signaling"),
        ("peer_agent.net", "peer_agent.agent"),
        ("peer_agent.sim", "peer_agent.net"),
    ],
)
def test_no_forbidden_imports(package: str, forbidden: str) -> None:
    assert modules(package), f"no modules under {package}"
    assert offending(package, forbidden) == []


def test_core_imports_only_the_standard_library_and_itself() -> None:
    bad = []
    for path in modules("peer_agent.core"):
        for name in sorted(imports(path)):
            top = name.split(".")[0]
            if under(name, "peer_agent.core") or top in sys.stdlib_module_names:
                continue
            if top == "__future__":
                continue
            bad.append(f"{module_name(path)} imports {name}")
    assert bad == []


def test_the_agent_package_has_no_import_circle() -> None:
    package = "peer_agent.agent"
    graph: dict[str, set[str]] = {}
    for path in modules(package):
        name = module_name(path)
        if name == package:
            continue  # the package's __init__ re-exports; its modules never import it
        graph[name] = {
            target
            for target in imports(path)
            if under(target, package) and target != package and target in _names(package)
        }
    cycles = [path for path in _cycles(graph)]
    assert cycles == [], cycles


def _names(package: str) -> set[str]:
    return {module_name(p) for p in modules(package)}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle per strongly connected part with more than one module (or a self-import)."""
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_checker_sees_relative_imports() -> None:
    """The check would catch what it is for: the old agent imported itself in a circle."""
    path = ROOT / "peer_agent" / "agent" / "glue.py"
    assert "peer_agent.core.exchange" in imports(path)
    assert "peer_agent.agent.links" in imports(path)
    assert "peer_agent.agent.intake" in imports(ROOT / "peer_agent" / "agent" / "agent.py")
