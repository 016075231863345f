"""The shared vectors of docs/vectors/wire/ are the contract of the Python codec."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from peer_agent.core import wire
from peer_agent.core.errors import WireError
from peer_agent.core.ids import SegmentId

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors" / "wire"


def _load(name: str) -> list[dict[str, Any]]:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


VALID = _load("valid.json")
INVALID = _load("invalid.json")


def vector_bytes(vector: dict[str, Any]) -> bytes:
    raw = bytes.fromhex(vector["hex"])
    repeat = vector.get("hex_repeat")
    if repeat:
        raw += bytes.fromhex(repeat["byte"]) * repeat["count"]
    return raw


def _segment(obj: dict[str, int]) -> SegmentId:
    return SegmentId(obj["rendition"], obj["sequence"])


def _entry(obj: dict[str, Any]) -> wire.FetchingEntry:
    return wire.FetchingEntry(_segment(obj["segment"]), obj["expected_bytes"])


def message_from_json(obj: dict[str, Any]) -> wire.Message:
    """Build the message a vector describes (the JSON form of docs/protocol.md)."""
    kind = obj["type"]
    if kind == "hello":
        return wire.Hello(
            swarm_id=bytes.fromhex(obj["swarm_id"]),
            peer_id=bytes.fromhex(obj["peer_id"]),
            flags=obj["flags"],
            have=tuple(
                wire.SegmentRange(r["rendition"], r["first_sequence"], r["count"])
                for r in obj["have"]
            ),
            fetching=tuple(_entry(e) for e in obj["fetching"]),
            version=obj["version"],
        )
    if kind == "have":
        return wire.Have(tuple(_segment(s) for s in obj["segments"]))
    if kind == "lost":
        return wire.Lost(tuple(_segment(s) for s in obj["segments"]))
    if kind == "fetching":
        return wire.Fetching(tuple(_entry(e) for e in obj["entries"]))
    if kind == "request":
        return wire.Request(obj["request_id"], _segment(obj["segment"]), obj["offset"])
    if kind == "response":
        return wire.Response(obj["request_id"], obj["total_bytes"])
    if kind == "data":
        if "payload_repeat" in obj:
            rep = obj["payload_repeat"]
            payload = bytes.fromhex(rep["byte"]) * rep["count"]
        else:
            payload = bytes.fromhex(obj["payload"])
        return wire.Data(obj["request_id"], obj["offset"], payload)
    if kind == "cancel":
        return wire.Cancel(obj["request_id"])
    if kind == "absent":
        return wire.Absent(obj["request_id"])
    if kind == "busy":
        return wire.Busy(obj["request_id"], obj["retry_after_ms"])
    if kind == "abort":
        return wire.Abort(obj["request_id"], obj["reason"])
    if kind == "close":
        return wire.Close(obj["code"], obj["reason"])
    raise AssertionError(f"unknown vector type {kind}")


def _ids(vectors: list[dict[str, Any]]) -> list[str]:
    return [v["name"] for v in vectors]


def test_vector_names_are_unique() -> None:
    names = _ids(VALID) + _ids(INVALID)
    assert len(names) == len(set(names))


def test_every_message_type_has_a_valid_vector() -> None:
    kinds = {v["message"]["type"] for v in VALID}
    assert kinds == {t.name.lower() for t in wire.MessageType}


def test_every_decode_error_code_has_an_invalid_vector() -> None:
    from peer_agent.core.errors import WireErrorCode

    assert {v["error"] for v in INVALID} == {c.value for c in WireErrorCode}


def test_committed_vectors_equal_generator_output() -> None:
    spec = importlib.util.spec_from_file_location("wire_vector_generator", VECTORS / "generate.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    for name, text in module.outputs().items():
        assert (VECTORS / name).read_text(encoding="utf-8") == text, (
            f"{name} is stale: run python docs/vectors/wire/generate.py"
        )


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_valid_vector_decodes_to_its_fields(vector: dict[str, Any]) -> None:
    assert wire.decode(vector_bytes(vector)) == message_from_json(vector["message"])


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_valid_vector_encodes_to_its_bytes(vector: dict[str, Any]) -> None:
    assert wire.encode(message_from_json(vector["message"])) == vector_bytes(vector)


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_valid_vector_decodes_from_memoryview_and_bytearray(vector: dict[str, Any]) -> None:
    raw = vector_bytes(vector)
    expected = message_from_json(vector["message"])
    assert wire.decode(memoryview(raw)) == expected
    assert wire.decode(bytearray(raw)) == expected


@pytest.mark.parametrize("vector", INVALID, ids=_ids(INVALID))
def test_invalid_vector_raises_its_code(vector: dict[str, Any]) -> None:
    with pytest.raises(WireError) as info:
        wire.decode(vector_bytes(vector))
    assert info.value.code == vector["error"]


@pytest.mark.parametrize("vector", VALID, ids=_ids(VALID))
def test_every_truncated_prefix_raises_wire_error(vector: dict[str, Any]) -> None:
    raw = vector_bytes(vector)
    # A DATA prefix that keeps >= 1 payload byte is itself a valid, shorter DATA message.
    stop = wire.DATA_HEADER_BYTES + 1 if raw[0] == wire.MessageType.DATA else len(raw)
    for cut in range(stop):
        with pytest.raises(WireError):
            wire.decode(raw[:cut])
