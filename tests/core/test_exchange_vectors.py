"""The shared vectors of docs/vectors/exchange/ are the contract of SegmentExchange."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.exchange_vectors import load, run, vector_files

FILES = vector_files("exchange")


def test_there_are_vectors() -> None:
    assert len(FILES) >= 12


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_exchange_vector(path: Path) -> None:
    vector = load(path)
    assert set(vector) <= {"description", "config", "blobs", "steps"}, sorted(vector)
    run(vector)
