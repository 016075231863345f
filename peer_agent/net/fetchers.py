"""The signaling server's fetcher assignment, as our clients read it (docs/signaling.md,
"Fetcher assignment"; the browser's twin is ``parseFetchers`` in web_demo/tracker.js).

``{"action":"fetchers", info_hash, region?, slot, fetchers:[peer_id, ...], valid_s}`` names the
peers the server picked to fetch new segments from the CDN for our swarm (our region); the
scheduler orders them per segment (docs/scheduling.md, rule 8). Only the tracker socket
delivers it. A malformed one raises :class:`BadFetchersMessage` and changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: The announce cap that asks the server for the assignment (and offers to fetch).
FETCHERS_CAP = "fetchers"
MAX_FETCHERS = 16
MAX_VALID_S = 3600.0
MAX_REGION_CHARS = 32


class BadFetchersMessage(ValueError):
    """A ``fetchers`` message that breaks the spec (the server's fault)."""


@dataclass(frozen=True)
class FetcherAssignment:
    fetchers: tuple[str, ...]
    valid_s: float
    slot: int
    region: str | None = None


def _byte_id(value: Any) -> bool:
    return isinstance(value, str) and len(value) == 20 and all(ord(ch) < 256 for ch in value)


def parse_fetchers(msg: dict[str, Any], info_hash: str) -> FetcherAssignment:
    """Validate a ``fetchers`` message for swarm ``info_hash``."""
    if msg.get("info_hash") != info_hash:
        raise BadFetchersMessage("fetchers: info_hash is not our swarm's")
    fetchers = msg.get("fetchers")
    if not isinstance(fetchers, list) or not 0 < len(fetchers) <= MAX_FETCHERS:
        raise BadFetchersMessage(f"fetchers: fetchers must be a list of 1..{MAX_FETCHERS} ids")
    if not all(_byte_id(f) for f in fetchers) or len(set(fetchers)) != len(fetchers):
        raise BadFetchersMessage("fetchers: each fetcher must be a distinct 20-byte peer_id")
    valid_s = msg.get("valid_s")
    if (
        isinstance(valid_s, bool)
        or not isinstance(valid_s, int | float)
        or not 0 < valid_s <= MAX_VALID_S
    ):
        raise BadFetchersMessage(f"fetchers: valid_s must be a number in (0, {MAX_VALID_S:g}]")
    slot = msg.get("slot")
    if isinstance(slot, bool) or not isinstance(slot, int) or slot < 0:
        raise BadFetchersMessage("fetchers: slot must be a non-negative integer")
    region = msg.get("region")
    if region is not None and (
        not isinstance(region, str)
        or not 0 < len(region) <= MAX_REGION_CHARS
        or not all(ch.isascii() and (ch.isalnum() or ch in "-_.") for ch in region)
    ):
        raise BadFetchersMessage("fetchers: region must be 1..32 of [A-Za-z0-9._-]")
    return FetcherAssignment(tuple(fetchers), float(valid_s), slot, region)
