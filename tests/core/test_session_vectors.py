"""The shared vectors of docs/vectors/session/ are the contract of PeerSession."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.core.exchange_vectors import load, vector_files
from tests.core.session_vectors import run

FILES = vector_files("session")


def test_there_are_vectors() -> None:
    assert len(FILES) >= 8


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_session_vector(path: Path) -> None:
    vector = load(path)
    assert set(vector) <= {"description", "swarm_id", "sessions", "blobs", "steps"}, sorted(vector)
    run(vector)
