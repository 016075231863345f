"""Stall suspicions: a silent download is a suspicion, an offence only if the link stays dead.

On a lossy path an honest peer's data channel goes quiet for whole seconds: SCTP recovers a lost
packet after its retransmission timeout (at least 1 s, doubled on each further loss of the same
packet), and until then every later message on the ordered channel waits behind it (head-of-line
blocking). The scheduler cancels such a download long before that (it must leave the CDN time), so a
cancel is not proof of a lie. A download from a peer that owed us bytes (it had announced the
segment HAVE when we asked: a cut-through relay may be waiting for its own source), cancelled or
timed out after ``stall_s`` + ``stall_rtts`` round trips without a byte, makes the peer a *suspect*;
the suspicion becomes a stall offence only when the peer shows no progress at all for
``stall_offence_s`` + ``stall_rtts`` round trips from its last byte: progress is a download from it
completing, or frames of a request we had already given up arriving late (the bytes that were stuck
behind a lost packet, which a stalling peer never sends). A peer's DATA for another request still in
flight is not progress: a staller serves the first part of every segment. A suspicion is *abandoned*
when the caller saw the link alive after the download's last byte (another frame of the peer arrived
while it had announced the segment HAVE): its offence costs more (``points_abandoned``).
docs/exchange.md, "Reputation".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class _Suspect:
    link: str
    since: float  #: the peer's last byte (or the request) before the silence
    due_at: float  #: an offence at this time unless the peer makes progress first
    abandoned: bool  #: the link was seen alive after the last byte (a choice, not a loss)


class StallWatch:
    """Open stall suspicions per peer id. Pure: time comes in as ``now``."""

    __slots__ = ("_suspects",)

    def __init__(self) -> None:
        self._suspects: dict[str, _Suspect] = {}

    def __len__(self) -> int:
        return len(self._suspects)

    def suspect(
        self, peer_id: str, link: str, since: float, allowance_s: float, abandoned: bool = False
    ) -> None:
        """A download from ``peer_id`` (on ``link``) went silent at ``since``: an offence at
        ``since + allowance_s`` unless it makes progress first. An open suspicion keeps its
        earlier time, and becomes abandoned if this one is."""
        open_ = self._suspects.get(peer_id)
        if open_ is None:
            self._suspects[peer_id] = _Suspect(link, since, since + allowance_s, abandoned)
        elif abandoned:
            open_.abandoned = True

    def progress(self, peer_id: str) -> None:
        """The peer delivered (a download completed, late frames arrived): not a staller."""
        self._suspects.pop(peer_id, None)

    def forget(self, peer_id: str) -> None:
        """The peer is gone (every link closed): nothing left to judge."""
        self._suspects.pop(peer_id, None)

    def due(self, now: float) -> list[tuple[str, str, bool]]:
        """The suspicions that became offences by ``now`` (peer id, link, abandoned), removed."""
        out = [(pid, s.link, s.abandoned) for pid, s in self._suspects.items() if s.due_at <= now]
        for pid, _, _ in out:
            del self._suspects[pid]
        return out

    def next_due(self) -> float | None:
        return min((s.due_at for s in self._suspects.values()), default=None)
