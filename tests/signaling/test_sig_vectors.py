"""docs/vectors/signaling: every valid vector parses; every invalid one is rejected with its reason,
both by the pure parse layer (stateless cases) and by a live server (all cases)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signaling.errors import SignalingError
from signaling.messages import (
    Announce,
    Answer,
    IceRequest,
    MessageLimits,
    Report,
    Scrape,
    Stats,
    TokenRefresh,
    parse_message,
)
from tests.signaling.sig_support import Client, ServerFactory, connect, exchange_works

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors" / "signaling"
VALID = json.loads((VECTORS / "valid.json").read_text())
INVALID = json.loads((VECTORS / "invalid.json").read_text())
LIMITS = MessageLimits(**VALID["limits"])


def frame_of(case: dict[str, Any]) -> str | bytes:
    if "raw" in case:
        return str(case["raw"])
    if "binary_hex" in case:
        return bytes.fromhex(case["binary_hex"])
    message = dict(case["message"])
    if "pad_field_chars" in case:
        message["pad"] = "x" * case["pad_field_chars"]
    return json.dumps(message)


def summary(
    msg: Announce | Answer | Scrape | Stats | IceRequest | TokenRefresh | Report,
) -> dict[str, Any]:
    if isinstance(msg, TokenRefresh):
        return {"kind": "token"}
    if isinstance(msg, IceRequest):
        return {"kind": "ice_servers"}
    if isinstance(msg, Announce):
        return {
            "kind": "announce",
            "event": msg.event,
            "offers": len(msg.offers),
            "numwant": msg.numwant,
            "seeding": msg.seeding,
            "hints": not msg.hints.empty,
        }
    if isinstance(msg, Scrape):
        return {"kind": "scrape", "info_hashes": len(msg.info_hashes)}
    if isinstance(msg, Report):
        return {"kind": "report", "reason": msg.reason}
    return {"kind": "answer" if isinstance(msg, Answer) else "stats"}


def test_vector_files_agree_on_limits() -> None:
    assert VALID["limits"] == INVALID["limits"]
    assert INVALID["limits"]["max_message_bytes"] == 65536


@pytest.mark.parametrize("case", VALID["cases"], ids=lambda c: c["name"])
def test_valid_vectors_parse(case: dict[str, Any]) -> None:
    assert summary(parse_message(frame_of(case), LIMITS)) == case["expect"]


STATELESS = [c for c in INVALID["cases"] if "setup" not in c]


@pytest.mark.parametrize("case", STATELESS, ids=lambda c: c["name"])
def test_invalid_vectors_rejected_by_parser(case: dict[str, Any]) -> None:
    with pytest.raises(SignalingError) as info:
        parse_message(frame_of(case), LIMITS)
    assert info.value.reason == case["reason"]
    assert info.value.close_code == case["close_code"]


def test_every_stateful_vector_is_valid_for_the_parser() -> None:
    for case in INVALID["cases"]:
        if "setup" in case:
            parse_message(frame_of(case), LIMITS)  # well-formed: the rule is in the registry


@pytest.mark.parametrize("case", INVALID["cases"], ids=lambda c: c["name"])
async def test_invalid_vectors_rejected_by_live_server(
    start_server: ServerFactory, case: dict[str, Any]
) -> None:
    server = await start_server()
    conns: dict[str, Client] = {}

    async def conn(name: str) -> Client:
        if name not in conns:
            conns[name] = await connect(server.url, f"vec-{name}")
        return conns[name]

    for step in case.get("setup", []):
        c = await conn(step["conn"])
        await c.send(step["message"])
        reply = await c.recv_where(lambda m: m.get("action") == "announce" and "interval" in m)
        assert "failure reason" not in reply
    c = await conn(case.get("conn", "a"))
    await c.send(frame_of(case))
    if case["close_code"] is None:
        reply = await c.recv_where(lambda m: "failure reason" in m)
        assert reply["reason"] == case["reason"], reply
        assert isinstance(reply["failure reason"], str) and reply["failure reason"]
        # the same socket keeps working
        ok = await c.announce("k" * 20)
        assert ok["incomplete"] >= 1, ok
    else:
        assert await c.closed_with() == case["close_code"]
    assert await server.rejections(case["reason"]) == 1
    await exchange_works(server)
