"""Swarm ids match the shared reference vectors (docs/vectors/wire/identity.json)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from peer_agent.net.swarm import make_peer_id, swarm_id_for

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/wire/identity.json").read_text()
)


@pytest.mark.parametrize("case", VECTORS["swarm_ids"], ids=lambda c: c["url"])
def test_swarm_id_vector(case: dict) -> None:
    assert swarm_id_for(case["url"]) == case["swarm_id"]


def test_peer_id_shape() -> None:
    peer_id = make_peer_id(random.Random(7))
    assert len(peer_id) == 20 and peer_id.startswith("-PH0001-") and peer_id.isascii()
    assert peer_id[8:].isalnum()
