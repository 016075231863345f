"""Penalty points for lies and misbehaviour, refusals that grow, and bans that outlive a peer id.

Pure bookkeeping for :class:`~peer_agent.core.exchange.SegmentExchange` (docs/exchange.md,
"Reputation"): every offence adds points to each *subject* of the offender (its peer id and the
identity keys the caller gave for its link: transport address, certificate fingerprint); points
decay linearly over time (time is an argument). At ``refuse_points`` the offender is
disconnected and refused for a period that doubles with each refusal; at ``ban_points`` every
subject is banned. A new peer id from a refused or banned address or certificate is refused too.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass

from .errors import CloseCode
from .exchange_actions import ExchangeConfig

#: Subjects tracked at most; beyond, entries with no points, refusal or ban left go first.
MAX_SUBJECTS = 4096


class Offence(enum.Enum):
    ABSENT_AFTER_HAVE = "absent_after_have"
    REQUEST_AFTER_HAVE = "request_after_have"
    ABSENT_AFTER_FETCHING = "absent_after_fetching"
    STALL = "stall"
    ABANDONED = "abandoned"
    PROTOCOL_ERROR = "protocol_error"
    UNKNOWN_REQUEST = "unknown_request"
    HASH_FAILURE = "hash_failure"
    BROKEN_PROMISE = "broken_promise"


class Outcome(enum.Enum):
    NONE = "none"
    REFUSE = "refuse"
    BAN = "ban"


@dataclass(frozen=True)
class ReputationRules:
    """The reputation options of ``ExchangeConfig`` (docs/exchange.md, section 2)."""

    points: dict[Offence, float]
    decay_points_per_s: float
    refuse_points: float
    refuse_s: float
    max_refuse_s: float
    ban_points: float


@dataclass
class _Subject:
    points: float = 0.0
    at: float = 0.0
    refusals: int = 0
    refused_until: float = 0.0
    #: Hash failures it contributed to (``ban_after_failures`` applies to each subject).
    failures: int = 0


def peer_subject(peer_id: str) -> str:
    """The subject naming a peer id (identity keys are the caller's own strings)."""
    return "id:" + peer_id


class Reputation:
    def __init__(self, rules: ReputationRules) -> None:
        self.rules = rules
        self._subjects: dict[str, _Subject] = {}
        self.banned: set[str] = set()
        #: Refusals decided (each one disconnects the offender).
        self.refusals = 0
        #: Times each offence was recorded.
        self.offences: dict[Offence, int] = {}
        #: The subject with the most points after the last :meth:`record`, and those points
        #: (what tipped a refusal or ban: reported, never decided on).
        self.last_worst: tuple[str, float] = ("", 0.0)

    def _points(self, subject: _Subject, now: float) -> float:
        decayed = subject.points - self.rules.decay_points_per_s * max(0.0, now - subject.at)
        return max(0.0, decayed)

    def record(self, subjects: Iterable[str], offence: Offence, now: float) -> Outcome:
        """Add the points of ``offence`` to every subject; what to do with the offender."""
        self.offences[offence] = self.offences.get(offence, 0) + 1
        names = list(dict.fromkeys(subjects))
        if any(name in self.banned for name in names):
            self.last_worst = (next(n for n in names if n in self.banned), float("inf"))
            return Outcome.BAN
        add = self.rules.points[offence]
        score = 0.0
        worst = ""
        entries = []
        for name in names:
            entry = self._subjects.get(name)
            if entry is None:
                self._prune(now)
                entry = self._subjects[name] = _Subject()
            entry.points = self._points(entry, now) + add
            entry.at = now
            if entry.points > score or not worst:
                score, worst = max(score, entry.points), name
            entries.append(entry)
        self.last_worst = (worst, score)
        if score >= self.rules.ban_points:
            self.ban(names)
            return Outcome.BAN
        if score < self.rules.refuse_points or any(e.refused_until > now for e in entries):
            return Outcome.NONE
        count = max(e.refusals for e in entries) + 1
        until = now + min(self.rules.max_refuse_s, self.rules.refuse_s * 2 ** (count - 1))
        for entry in entries:
            entry.refusals = count
            entry.refused_until = until
        self.refusals += 1
        return Outcome.REFUSE

    def record_failure(self, subjects: Iterable[str], ban_after: int, now: float) -> bool:
        """A hash failure of every subject; True: one of them reached ``ban_after`` failures
        (a peer id rotated on one address or certificate counts once per failure)."""
        worst = 0
        for name in dict.fromkeys(subjects):
            entry = self._subjects.get(name)
            if entry is None:
                self._prune(now)
                entry = self._subjects[name] = _Subject(at=now)
            entry.failures += 1
            worst = max(worst, entry.failures)
        return worst >= ban_after

    def failures_by_subject(self, prefix: str) -> dict[str, int]:
        """Hash failures counted on each remembered subject starting with ``prefix`` (e.g.
        ``addr:``: per remote address, whatever the peer ids that came from it)."""
        return {
            name: entry.failures
            for name, entry in self._subjects.items()
            if entry.failures and name.startswith(prefix)
        }

    def failures_of(self, subject: str) -> int:
        """Hash failures counted on one subject (0 if unknown)."""
        entry = self._subjects.get(subject)
        return entry.failures if entry is not None else 0

    def points_of(self, subject: str, now: float) -> float:
        """The decayed penalty points of one subject now (0 if unknown)."""
        entry = self._subjects.get(subject)
        return self._points(entry, now) if entry is not None else 0.0

    def ban(self, subjects: Iterable[str]) -> None:
        self.banned.update(subjects)

    def is_banned(self, subjects: Iterable[str]) -> bool:
        return any(name in self.banned for name in subjects)

    def refused_until(self, subjects: Iterable[str]) -> float:
        """Until when any of ``subjects`` is refused (``inf``: banned; 0: not refused)."""
        until = 0.0
        for name in subjects:
            if name in self.banned:
                return float("inf")
            entry = self._subjects.get(name)
            if entry is not None:
                until = max(until, entry.refused_until)
        return until

    def _prune(self, now: float) -> None:
        if len(self._subjects) < MAX_SUBJECTS:
            return
        for name, entry in list(self._subjects.items()):
            idle = self._points(entry, now) == 0.0 and not entry.failures
            if idle and entry.refused_until <= now:
                del self._subjects[name]
        while len(self._subjects) >= MAX_SUBJECTS:  # all active: the oldest entry goes
            del self._subjects[next(iter(self._subjects))]


#: Our own closes that count as an offence of the remote (docs/exchange.md, "Reputation").
#: Not TIMEOUT (no HELLO within ``hello_timeout_s`` of the SDP exchange): a handshake that did
#: not finish in time on a loaded machine or a bad path is a failed link, not a lie.
CLOSE_OFFENCES: dict[int, Offence] = {
    CloseCode.PROTOCOL_ERROR: Offence.PROTOCOL_ERROR,
    CloseCode.LIMIT_EXCEEDED: Offence.PROTOCOL_ERROR,
    CloseCode.STATE_VIOLATION: Offence.UNKNOWN_REQUEST,
}


def reputation_rules(cfg: ExchangeConfig) -> ReputationRules:
    return ReputationRules(
        points={
            Offence.ABSENT_AFTER_HAVE: cfg.points_absent_after_have,
            Offence.REQUEST_AFTER_HAVE: cfg.points_request_after_have,
            Offence.ABSENT_AFTER_FETCHING: cfg.points_absent_after_fetching,
            Offence.STALL: cfg.points_stall,
            Offence.ABANDONED: cfg.points_abandoned,
            Offence.PROTOCOL_ERROR: cfg.points_protocol_error,
            Offence.UNKNOWN_REQUEST: cfg.points_unknown_request,
            Offence.HASH_FAILURE: cfg.points_hash_failure,
            Offence.BROKEN_PROMISE: cfg.points_broken_promise,
        },
        decay_points_per_s=cfg.decay_points_per_s,
        refuse_points=cfg.refuse_points,
        refuse_s=cfg.refuse_s,
        max_refuse_s=cfg.max_refuse_s,
        ban_points=cfg.ban_points,
    )
