"""Cut-through promises (docs/exchange.md 8b, "Broken promises").

A peer that announced a segment FETCHING and was asked for it promised to pass it on: we do not
charge its silence (its own source may be waiting out a lost packet), but an honest relay's
promise ends one of two ways: its download completes and it announces the segment HAVE (possibly
after we gave up on it), or its source fails and it ABORTs our request (UPSTREAM_FAILED). A
cut-through download we gave up (cancelled, or timed out) opens a promise; the peer's HAVE of the
segment keeps it; one still open when the segment leaves what the exchange retains (section 3,
"Bounds") is *broken*: an offence. Bounded: at most ``max_per_peer`` open per peer id (the oldest
dropped uncharged) and ``max_peers`` peer ids (the least recently promising dropped).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from .ids import SegmentId


class PromiseBook:
    """Open promises per peer id, each with the identity keys of the link it was made on.
    Pure: no clock."""

    __slots__ = ("_open", "max_per_peer", "max_peers")

    def __init__(self, max_per_peer: int, max_peers: int) -> None:
        self._open: dict[str, dict[SegmentId, tuple[str, ...]]] = {}
        self.max_per_peer = max_per_peer
        self.max_peers = max_peers

    def __len__(self) -> int:
        return sum(len(book) for book in self._open.values())

    def promised(self, peer_id: str, segment: SegmentId, keys: tuple[str, ...]) -> None:
        """We gave up a cut-through download of ``segment`` from ``peer_id``."""
        book = self._open.pop(peer_id, {})
        self._open[peer_id] = book
        book.pop(segment, None)
        book[segment] = keys
        while len(book) > self.max_per_peer:
            del book[next(iter(book))]
        while len(self._open) > self.max_peers:
            del self._open[next(iter(self._open))]

    def kept(self, peer_id: str, segments: Iterable[SegmentId]) -> None:
        """``peer_id`` announced these segments HAVE: its promises of them are kept."""
        book = self._open.get(peer_id)
        if book is None:
            return
        for segment in segments:
            book.pop(segment, None)
        if not book:
            del self._open[peer_id]

    def forget(self, peer_id: str) -> None:
        """The peer is banned: nothing more to charge it."""
        self._open.pop(peer_id, None)

    def broken(
        self, retained: Callable[[SegmentId], bool]
    ) -> list[tuple[str, SegmentId, tuple[str, ...]]]:
        """The open promises of segments no longer retained (peer id, segment, keys), removed,
        in the order the peers last promised, then the order promised."""
        out = []
        for peer_id, book in list(self._open.items()):
            for segment in [s for s in book if not retained(s)]:
                out.append((peer_id, segment, book.pop(segment)))
            if not book:
                del self._open[peer_id]
        return out
