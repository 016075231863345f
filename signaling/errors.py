"""Typed errors, split by who is at fault.

Every error carries a stable ``reason`` (snake_case, used as the metrics label and in the
``reason`` field of failure replies) and a human ``detail``. Errors with a ``close_code`` end the
connection; the others are answered with a tracker-style ``{"failure reason": ...}`` reply.
"""

from __future__ import annotations


class SignalingError(Exception):
    """Base class: something a client sent cannot be served."""

    reason: str = "error"
    close_code: int | None = None

    def __init__(self, detail: str, *, reason: str | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason

    @property
    def fatal(self) -> bool:
        return self.close_code is not None


class MalformedMessage(SignalingError):
    """Bad bytes or shape from a client (invalid JSON, wrong types, bad ids, unknown action)."""

    reason = "malformed"


class RuleViolation(SignalingError):
    """A well-formed message that breaks the server's rules (limits, bindings, offers)."""

    reason = "rule_violation"


class PeerIdTaken(RuleViolation):
    """The peer_id is bound to another connection (spoofing or a duplicate client)."""

    reason = "peer_id_spoofed"


class UnknownOffer(RuleViolation):
    """An answer for an offer this server did not relay to the answerer (or that expired)."""

    reason = "unsolicited_answer"


class TooManySwarms(RuleViolation):
    """The connection already takes part in the maximum number of swarms."""

    reason = "too_many_swarms"


class SwarmFull(RuleViolation):
    """The swarm already holds the maximum number of peers."""

    reason = "swarm_full"


class NotInSwarm(RuleViolation):
    """A stats message for a swarm the peer has not joined."""

    reason = "not_in_swarm"


class SwarmNotAllowed(RuleViolation):
    """The join token does not cover this swarm."""

    reason = "token_swarm_mismatch"


class IceUnavailable(RuleViolation):
    """An ``ice_servers`` request to a server configured with no ICE URLs."""

    reason = "ice_unavailable"


class FatalViolation(SignalingError):
    """A violation that closes the connection with ``close_code``."""

    def __init__(self, detail: str, *, reason: str, close_code: int) -> None:
        super().__init__(detail, reason=reason)
        self.close_code = close_code


class TokenError(SignalingError):
    """A join token is missing, malformed, badly signed or expired."""

    reason = "token_invalid"


class TokenExpired(TokenError):
    reason = "token_expired"


class UsageError(ValueError):
    """Our own misuse of an API (bad configuration, bad arguments from the operator)."""
