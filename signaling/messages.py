"""Parse and validate client frames into frozen dataclasses; build server replies.

Every function here is pure. Bad input raises :class:`MalformedMessage` or
:class:`RuleViolation` (recoverable: answered with a failure reason) or :class:`FatalViolation`
(the connection is closed). Ids (``info_hash``, ``peer_id``) are 20-character strings whose
characters are bytes (U+0000..U+00FF), as the WebTorrent tracker protocol sends them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from signaling import closecodes, peerkey
from signaling.errors import FatalViolation, MalformedMessage, RuleViolation
from signaling.fetchers import parse_uplink
from signaling.pairing import NO_HINTS, PeerHints

ID_CHARS = 20
MAX_OFFER_ID_CHARS = 64
MAX_REGION_CHARS = 32
MAX_CAPS = 16
MAX_CAP_CHARS = 32
MAX_CONNECTED_IDS = 256
MAX_POSITION_S = 1e9
MAX_NUMWANT = 1000
MAX_BYTE_COUNTER = 2**53
EVENTS = ("started", "stopped", "completed", "update", "paused")


@dataclass(frozen=True)
class MessageLimits:
    max_message_bytes: int = 65536
    max_sdp_bytes: int = 16384
    max_offers_per_announce: int = 5
    max_scrape_hashes: int = 50


@dataclass(frozen=True)
class Offer:
    offer_id: str
    sdp: str


@dataclass(frozen=True)
class Announce:
    info_hash: str
    peer_id: str
    numwant: int
    event: Literal["started", "stopped", "completed", "update", "paused"] | None
    seeding: bool | None
    offers: tuple[Offer, ...]
    hints: PeerHints
    peer_key: str | None = None  # proves a keyed peer_id (signaling/peerkey.py); never logged


@dataclass(frozen=True)
class Answer:
    info_hash: str
    peer_id: str
    to_peer_id: str
    offer_id: str
    sdp: str


@dataclass(frozen=True)
class Scrape:
    info_hashes: tuple[str, ...]  # empty: every swarm (up to the limit)


@dataclass(frozen=True)
class Stats:
    info_hash: str
    peer_id: str
    bytes_p2p_down: int
    bytes_p2p_up: int
    bytes_cdn: int
    #: Optional (ours): cumulative CDN segment fetches by phase (docs/simulator.md, "Join ramp
    #: and steady state"); ``None`` when the peer did not send them.
    cdn_fetches_join_ramp: int | None = None
    cdn_fetches_steady: int | None = None


#: Why a peer reports another (docs/signaling.md, "Reports").
REPORT_REASONS = ("hash_failure", "protocol", "lies", "stall", "flood")


@dataclass(frozen=True)
class Report:
    """A member of a swarm reports another member it banned or refused."""

    info_hash: str
    peer_id: str
    reported_peer_id: str
    reason: str


@dataclass(frozen=True)
class IceRequest:
    """Our extension: the client asks for its ICE servers (STUN/TURN with credentials)."""


@dataclass(frozen=True)
class TokenRefresh:
    """Our extension: a new join token for this connection (never logged)."""

    token: str = field(repr=False)


Message = Announce | Answer | Scrape | Stats | IceRequest | TokenRefresh | Report

MAX_TOKEN_CHARS = 4096


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def decode_frame(frame: str | bytes, limits: MessageLimits) -> dict[str, Any]:
    """Size and type checks, then JSON. Returns the top-level object."""
    if isinstance(frame, bytes | bytearray):
        raise FatalViolation(
            "binary frames are not supported",
            reason="binary_frame",
            close_code=closecodes.UNSUPPORTED_DATA,
        )
    if len(frame) > limits.max_message_bytes or (
        len(frame) * 4 > limits.max_message_bytes
        and len(frame.encode("utf-8", "surrogatepass")) > limits.max_message_bytes
    ):
        raise FatalViolation(
            f"message larger than {limits.max_message_bytes} bytes",
            reason="message_too_big",
            close_code=closecodes.MESSAGE_TOO_BIG,
        )
    try:
        obj = json.loads(frame, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise MalformedMessage("invalid JSON", reason="invalid_json") from exc
    if not isinstance(obj, dict):
        raise MalformedMessage("a message must be a JSON object", reason="not_an_object")
    return obj


def _wrong_type(name: str, expected: str) -> MalformedMessage:
    return MalformedMessage(f"{name} must be {expected}", reason="wrong_type")


def _require(obj: dict[str, Any], name: str) -> Any:
    if name not in obj:
        raise MalformedMessage(f"missing field {name}", reason="missing_field")
    return obj[name]


def _byte_string(value: Any, name: str, reason: str) -> str:
    if not isinstance(value, str):
        raise _wrong_type(name, "a string")
    if len(value) != ID_CHARS or any(ord(ch) > 0xFF for ch in value):
        raise MalformedMessage(f"{name} must be {ID_CHARS} byte characters", reason=reason)
    return value


def _offer_id(value: Any) -> str:
    if not isinstance(value, str):
        raise _wrong_type("offer_id", "a string")
    if not 0 < len(value) <= MAX_OFFER_ID_CHARS:
        raise MalformedMessage(
            f"offer_id must be 1..{MAX_OFFER_ID_CHARS} characters", reason="bad_offer_id"
        )
    return value


def _sdp(value: Any, name: str, kind: str, limits: MessageLimits) -> str:
    if not isinstance(value, dict):
        raise _wrong_type(name, "an object {type, sdp}")
    if value.get("type") != kind:
        raise MalformedMessage(f"{name}.type must be {kind!r}", reason="bad_sdp")
    sdp = value.get("sdp")
    if not isinstance(sdp, str):
        raise _wrong_type(f"{name}.sdp", "a string")
    if not sdp:
        raise MalformedMessage(f"{name}.sdp is empty", reason="bad_sdp")
    if len(sdp) > limits.max_sdp_bytes or len(sdp.encode("utf-8", "surrogatepass")) > (
        limits.max_sdp_bytes
    ):
        raise RuleViolation(
            f"{name}.sdp larger than {limits.max_sdp_bytes} bytes", reason="sdp_too_big"
        )
    return sdp


def _int(value: Any, name: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(name, "an integer")
    if not lo <= value <= hi:
        raise MalformedMessage(f"{name} must be in {lo}..{hi}", reason="out_of_range")
    return value


def _hints(obj: dict[str, Any]) -> PeerHints:
    position_s = obj.get("position_s")
    if position_s is not None:
        if isinstance(position_s, bool) or not isinstance(position_s, int | float):
            raise _wrong_type("position_s", "a number")
        if not math.isfinite(position_s) or not 0 <= position_s <= MAX_POSITION_S:
            raise MalformedMessage("position_s out of range", reason="bad_extension")
        position_s = float(position_s)
    region = obj.get("region")
    if region is not None:
        if not isinstance(region, str):
            raise _wrong_type("region", "a string")
        if not 0 < len(region) <= MAX_REGION_CHARS or not all(
            ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in region
        ):
            raise MalformedMessage("region must be 1..32 of [A-Za-z0-9._-]", reason="bad_extension")
    max_peers = obj.get("max_peers")
    if max_peers is not None:
        max_peers = _int(max_peers, "max_peers", 0, 1000)
    caps_raw = obj.get("caps")
    caps: tuple[str, ...] = ()
    if caps_raw is not None:
        if not isinstance(caps_raw, list) or len(caps_raw) > MAX_CAPS:
            raise MalformedMessage(
                f"caps must be a list of at most {MAX_CAPS}", reason="bad_extension"
            )
        for cap in caps_raw:
            if not isinstance(cap, str) or not 0 < len(cap) <= MAX_CAP_CHARS:
                raise MalformedMessage("each cap must be a short string", reason="bad_extension")
            try:
                parse_uplink(cap)
            except ValueError as exc:
                raise MalformedMessage(str(exc), reason="bad_extension") from exc
        caps = tuple(caps_raw)
    connected_raw = obj.get("connected")
    connected: frozenset[str] = frozenset()
    if connected_raw is not None:
        if not isinstance(connected_raw, list) or len(connected_raw) > MAX_CONNECTED_IDS:
            raise MalformedMessage(
                f"connected must be a list of at most {MAX_CONNECTED_IDS} peer_ids",
                reason="bad_extension",
            )
        connected = frozenset(
            _byte_string(pid, "connected[]", "bad_extension") for pid in connected_raw
        )
    if position_s is None and region is None and max_peers is None and not caps and not connected:
        return NO_HINTS
    return PeerHints(position_s, region, max_peers, caps, connected)


def _parse_announce(obj: dict[str, Any], limits: MessageLimits) -> Announce | Answer:
    info_hash = _byte_string(_require(obj, "info_hash"), "info_hash", "bad_info_hash")
    peer_id = _byte_string(_require(obj, "peer_id"), "peer_id", "bad_peer_id")
    if "answer" in obj:
        to_peer_id = _byte_string(_require(obj, "to_peer_id"), "to_peer_id", "bad_peer_id")
        offer_id = _offer_id(_require(obj, "offer_id"))
        sdp = _sdp(obj["answer"], "answer", "answer", limits)
        return Answer(info_hash, peer_id, to_peer_id, offer_id, sdp)
    numwant_raw = obj.get("numwant", 0)
    numwant = 0 if numwant_raw is None else _int(numwant_raw, "numwant", 0, MAX_NUMWANT)
    event = obj.get("event")
    if event is not None and event not in EVENTS:
        if not isinstance(event, str):
            raise _wrong_type("event", "a string")
        raise MalformedMessage(f"unknown event {event[:32]!r}", reason="bad_event")
    left = obj.get("left")
    seeding: bool | None = None
    if left is not None:
        if isinstance(left, bool) or not isinstance(left, int | float):
            raise _wrong_type("left", "a number")
        seeding = left == 0
    offers_raw = obj.get("offers")
    offers: list[Offer] = []
    if offers_raw is not None and event != "stopped":
        if not isinstance(offers_raw, list):
            raise _wrong_type("offers", "a list")
        if len(offers_raw) > limits.max_offers_per_announce:
            raise RuleViolation(
                f"at most {limits.max_offers_per_announce} offers per announce",
                reason="too_many_offers",
            )
        seen: set[str] = set()
        for item in offers_raw:
            if not isinstance(item, dict):
                raise _wrong_type("offers[]", "an object {offer_id, offer}")
            offer_id = _offer_id(_require(item, "offer_id"))
            if offer_id in seen:
                raise MalformedMessage("duplicate offer_id", reason="bad_offer_id")
            seen.add(offer_id)
            offers.append(Offer(offer_id, _sdp(_require(item, "offer"), "offer", "offer", limits)))
    peer_key = _peer_key(obj, peer_id)
    return Announce(
        info_hash, peer_id, numwant, event, seeding, tuple(offers), _hints(obj), peer_key
    )


def _peer_key(obj: dict[str, Any], peer_id: str) -> str | None:
    """The announce's ``peer_key``: required for, and checked against, a keyed peer_id."""
    raw = obj.get("peer_key")
    if raw is None:
        if peerkey.is_keyed(peer_id):
            raise RuleViolation(
                "this peer_id is keyed: announce it with its peer_key", reason="peer_id_unproven"
            )
        return None
    if not isinstance(raw, str) or not peerkey.valid_peer_key(raw):
        raise MalformedMessage(
            "peer_key must be 16..64 characters of [0-9A-Za-z_-]", reason="bad_peer_key"
        )
    if not peerkey.proves(peer_id, raw):
        raise RuleViolation("peer_key does not prove this peer_id", reason="peer_id_unproven")
    return raw


def _parse_scrape(obj: dict[str, Any], limits: MessageLimits) -> Scrape:
    raw = obj.get("info_hash")
    if raw is None:
        return Scrape(())
    items = raw if isinstance(raw, list) else [raw]
    if len(items) > limits.max_scrape_hashes:
        raise RuleViolation(
            f"at most {limits.max_scrape_hashes} info_hashes per scrape", reason="too_many_hashes"
        )
    hashes = (_byte_string(h, "info_hash", "bad_info_hash") for h in items)
    return Scrape(tuple(dict.fromkeys(hashes)))


def _parse_stats(obj: dict[str, Any]) -> Stats:
    info_hash = _byte_string(_require(obj, "info_hash"), "info_hash", "bad_info_hash")
    peer_id = _byte_string(_require(obj, "peer_id"), "peer_id", "bad_peer_id")
    counters = [
        _int(_require(obj, name), name, 0, MAX_BYTE_COUNTER)
        for name in ("bytes_p2p_down", "bytes_p2p_up", "bytes_cdn")
    ]
    fetches = [
        None if obj.get(name) is None else _int(obj[name], name, 0, MAX_BYTE_COUNTER)
        for name in ("cdn_fetches_join_ramp", "cdn_fetches_steady")
    ]
    return Stats(info_hash, peer_id, *counters, *fetches)


def _parse_report(obj: dict[str, Any]) -> Report:
    info_hash = _byte_string(_require(obj, "info_hash"), "info_hash", "bad_info_hash")
    peer_id = _byte_string(_require(obj, "peer_id"), "peer_id", "bad_peer_id")
    reported = _byte_string(
        _require(obj, "reported_peer_id"), "reported_peer_id", "bad_reported_peer_id"
    )
    if reported == peer_id:
        raise RuleViolation("a peer cannot report itself", reason="self_report")
    reason = _require(obj, "reason")
    if reason not in REPORT_REASONS:
        raise MalformedMessage(
            f"reason must be one of {', '.join(REPORT_REASONS)}", reason="bad_report_reason"
        )
    return Report(info_hash, peer_id, reported, reason)


def parse_object(obj: dict[str, Any], limits: MessageLimits) -> Message:
    action = _require(obj, "action")
    if not isinstance(action, str):
        raise _wrong_type("action", "a string")
    if action == "announce":
        return _parse_announce(obj, limits)
    if action == "scrape":
        return _parse_scrape(obj, limits)
    if action == "stats":
        return _parse_stats(obj)
    if action == "report":
        return _parse_report(obj)
    if action == "ice_servers":
        return IceRequest()
    if action == "token":
        token = _require(obj, "token")
        if not isinstance(token, str):
            raise _wrong_type("token", "a string")
        if not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise MalformedMessage(
                f"token must be 1..{MAX_TOKEN_CHARS} characters", reason="out_of_range"
            )
        return TokenRefresh(token)
    raise MalformedMessage(f"unknown action {action[:32]!r}", reason="unknown_action")


def parse_message(frame: str | bytes, limits: MessageLimits) -> Message:
    """Decode and validate one WebSocket frame."""
    return parse_object(decode_frame(frame, limits), limits)


def reply_context(frame: str | bytes) -> dict[str, str]:
    """Best-effort ``action``/``info_hash`` of a rejected frame, echoed in the failure reply.

    bittorrent-tracker clients ignore replies whose info_hash is not theirs, so a failure reply
    must carry it to be seen at all.
    """
    if isinstance(frame, bytes | bytearray) or len(frame) > 1 << 20:
        return {}
    try:
        obj = json.loads(frame, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        return {}
    out: dict[str, str] = {}
    if isinstance(obj, dict):
        action = obj.get("action")
        if action in ("announce", "scrape", "stats", "ice_servers", "token"):
            out["action"] = action
        info_hash = obj.get("info_hash")
        if isinstance(info_hash, str) and len(info_hash) == ID_CHARS:
            out["info_hash"] = info_hash
    return out


# -- replies ---------------------------------------------------------------------------------


def _dumps(obj: dict[str, Any]) -> str:
    return json.dumps(obj, separators=(",", ":"))


def _interval(interval_s: float) -> int | float:
    return int(interval_s) if float(interval_s).is_integer() else interval_s


def announce_reply(
    info_hash: str,
    interval_s: float,
    complete: int,
    incomplete: int,
    unused_offers: Sequence[str] = (),
) -> str:
    body: dict[str, Any] = {
        "action": "announce",
        "interval": _interval(interval_s),
        "info_hash": info_hash,
        "complete": complete,
        "incomplete": incomplete,
    }
    if unused_offers:
        body["unused_offers"] = list(unused_offers)  # relayed to nobody: close them
    return _dumps(body)


def fetchers_message(
    info_hash: str, region: str, slot: int, fetchers: tuple[str, ...], valid_s: float
) -> str:
    """The fetcher assignment (ours; docs/signaling.md, "Fetcher assignment"): ``region`` is
    omitted for the region-less list."""
    body: dict[str, Any] = {"action": "fetchers", "info_hash": info_hash}
    if region:
        body["region"] = region
    body.update({"slot": slot, "fetchers": list(fetchers), "valid_s": valid_s})
    return _dumps(body)


def token_reply(expires_at_unix_s: int) -> str:
    return _dumps({"action": "token", "expires_at": expires_at_unix_s})


def ice_servers_reply(body: dict[str, Any]) -> str:
    return _dumps(body)


def offer_relay(info_hash: str, from_peer: str, offer: Offer, drop: str | None = None) -> str:
    body = {
        "action": "announce",
        "info_hash": info_hash,
        "peer_id": from_peer,
        "offer_id": offer.offer_id,
        "offer": {"type": "offer", "sdp": offer.sdp},
    }
    if drop is not None:
        body["drop"] = drop  # make room: close the link to this peer for the offerer
    return _dumps(body)


def answer_relay(answer: Answer) -> str:
    return _dumps(
        {
            "action": "announce",
            "info_hash": answer.info_hash,
            "peer_id": answer.peer_id,
            "offer_id": answer.offer_id,
            "answer": {"type": "answer", "sdp": answer.sdp},
        }
    )


def scrape_reply(files: dict[str, tuple[int, int, int]]) -> str:
    return _dumps(
        {
            "action": "scrape",
            "files": {
                h: {"complete": c, "incomplete": i, "downloaded": d}
                for h, (c, i, d) in files.items()
            },
        }
    )


def failure_reply(detail: str, reason: str, context: dict[str, str]) -> str:
    body: dict[str, Any] = {"failure reason": detail, "reason": reason}
    body.update(context)
    if "action" not in body:
        body["action"] = "announce"
    return _dumps(body)


def id_hex(value: str) -> str:
    """Hex form of a byte-character id, for logs, metrics and the HTTP API."""
    return value.encode("latin-1", "replace").hex()
