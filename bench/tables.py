"""Markdown tables for the bench sections."""

from __future__ import annotations

from typing import Any


def markdown_table(columns: list[str], rows: list[dict[str, Any]]) -> list[str]:
    """The lines of a Markdown table of ``rows`` (a missing cell prints ``None``)."""
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c)) for c in columns) + " |")
    return lines
