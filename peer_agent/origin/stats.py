"""Egress and request counters behind ``GET /stats``. Pure bookkeeping, no I/O."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any


@dataclass
class _Tally:
    requests: int = 0
    bytes_served: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"requests": self.requests, "bytes_served": self.bytes_served}


@dataclass
class _StreamTally(_Tally):
    renditions: dict[str, _Tally] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = super().as_dict()
        out["renditions"] = {k: v.as_dict() for k, v in sorted(self.renditions.items())}
        return out


class OriginStats:
    """Counts media requests (everything under ``/hls/``) and body bytes actually sent.

    ``bytes_served`` counts body bytes handed to the socket (headers excluded): a truncated
    response counts what was sent, a response cut short by the client counts what was sent
    before the disconnect.
    """

    def __init__(self, now_s: float = 0.0) -> None:
        self.reset(now_s)

    def reset(self, now_s: float = 0.0) -> None:
        self.since_s = now_s
        self.total = _Tally()
        self.by_status: Counter[int] = Counter()
        self.by_kind: dict[str, _Tally] = {}
        self.streams: dict[str, _StreamTally] = {}
        self.faults: Counter[str] = Counter()
        self.client_aborts = 0

    def _tallies(self, kind: str | None, stream: str | None, rendition: str | None) -> list[_Tally]:
        out: list[_Tally] = [self.total]
        if kind is not None:
            out.append(self.by_kind.setdefault(kind, _Tally()))
        if stream is not None:
            st = self.streams.setdefault(stream, _StreamTally())
            out.append(st)
            if rendition is not None:
                out.append(st.renditions.setdefault(rendition, _Tally()))
        return out

    def request(self, kind: str | None, stream: str | None, rendition: str | None) -> None:
        for tally in self._tallies(kind, stream, rendition):
            tally.requests += 1

    def sent(
        self, nbytes: int, kind: str | None, stream: str | None, rendition: str | None
    ) -> None:
        for tally in self._tallies(kind, stream, rendition):
            tally.bytes_served += nbytes

    def status(self, code: int) -> None:
        self.by_status[code] += 1

    def fault(self, name: str) -> None:
        self.faults[name] += 1

    def client_abort(self) -> None:
        self.client_aborts += 1

    def snapshot(self, now_s: float) -> dict[str, Any]:
        return {
            "bytes_served": self.total.bytes_served,
            "requests": self.total.requests,
            "by_status": {str(k): v for k, v in sorted(self.by_status.items())},
            "by_kind": {k: v.as_dict() for k, v in sorted(self.by_kind.items())},
            "streams": {k: v.as_dict() for k, v in sorted(self.streams.items())},
            "faults": {name: self.faults.get(name, 0) for name in ("error", "timeout", "truncate")},
            "client_aborts": self.client_aborts,
            "window_s": max(0.0, now_s - self.since_s),
        }
