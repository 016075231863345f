"""``Range`` header parsing (RFC 9110 14.2), single ranges only. Pure."""

from __future__ import annotations

import re

from peer_agent.origin.errors import BadRange

_RANGE_RE = re.compile(r"^bytes=(\d{0,19})-(\d{0,19})$")


def parse_range(header: str, size: int) -> tuple[int, int]:
    """Return the inclusive ``(first, last)`` byte positions of ``header`` for a body of ``size``.

    Accepts ``bytes=a-b``, ``bytes=a-`` and the suffix form ``bytes=-n``. Multiple ranges,
    other units, garbage and unsatisfiable ranges raise :class:`BadRange` (answered 416).
    """
    match = _RANGE_RE.match(header.strip().replace(" ", ""))
    if match is None:
        raise BadRange(f"unsupported Range header {header[:80]!r}", size=size)
    first_s, last_s = match.groups()
    if not first_s and not last_s:
        raise BadRange("empty range", size=size)
    if not first_s:
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise BadRange("unsatisfiable suffix range", size=size)
        return max(0, size - suffix), size - 1
    first = int(first_s)
    last = int(last_s) if last_s else size - 1
    if last < first:
        raise BadRange("range ends before it starts", size=size)
    if first >= size:
        raise BadRange(f"range starts at {first}, body has {size} bytes", size=size)
    return first, min(last, size - 1)
