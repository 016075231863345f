"""Stall suspicions: a silent download is a suspicion, an offence only if the link stays dead.

On a lossy path an honest peer's data channel goes quiet for whole seconds: SCTP recovers a lost
packet after its retransmission timeout (at least 1 s, doubled on each further loss of the same
packet), and until then every later message on the ordered channel waits behind it (head-of-line
blocking). The scheduler cancels such a download long before that (it must leave the CDN time),
so a cancel is not proof of a lie. A download from a peer that owed us bytes (it answered, or
announced HAVE), cancelled or timed out after ``stall_s`` + ``stall_rtts`` round trips without a
byte, makes the peer a *suspect*; the suspicion becomes a stall offence only when the peer shows
no progress at all for ``stall_offence_s`` + ``stall_rtts`` round trips from its last byte:
progress is a download from it completing, or frames of a request we had already given up
arriving late (the bytes that were stuck behind a lost packet, which a stalling peer never sends).
A peer's DATA for another request still in flight is not progress: a staller serves the first
part of every segment. docs/exchange.md, "Reputation".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Suspect:
    link: str
    since: float  #: the peer's last byte (or the request) before the silence
    due_at: float  #: an offence at this time unless the peer makes progress first


class StallWatch:
    """Open stall suspicions per peer id. Pure: time comes in as ``now``."""

    __slots__ = ("_suspects",)

    def __init__(self) -> None:
        self._suspects: dict[str, _Suspect] = {}

    def __len__(self) -> int:
        return len(self._suspects)

    def suspect(self, peer_id: str, link: str, since: float, allowance_s: float) -> None:
        """A download from ``peer_id`` (on ``link``) went silent at ``since``: an offence at
        ``since + allowance_s`` unless it makes progress first. An open suspicion keeps its
        earlier time."""
        if peer_id not in self._suspects:
            self._suspects[peer_id] = _Suspect(link, since, since + allowance_s)

    def progress(self, peer_id: str) -> None:
        """The peer delivered (a download completed, late frames arrived): not a staller."""
        self._suspects.pop(peer_id, None)

    def forget(self, peer_id: str) -> None:
        """The peer is gone (every link closed): nothing left to judge."""
        self._suspects.pop(peer_id, None)

    def due(self, now: float) -> list[tuple[str, str]]:
        """The suspicions that became offences by ``now`` (peer id, link), removed."""
        out = [(pid, s.link) for pid, s in self._suspects.items() if s.due_at <= now]
        for pid, _ in out:
            del self._suspects[pid]
        return out

    def next_due(self) -> float | None:
        return min((s.due_at for s in self._suspects.values()), default=None)
