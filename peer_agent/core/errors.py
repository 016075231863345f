"""Typed errors of the peer wire protocol, split by who is at fault.

- :class:`WireError`: bytes from a peer that do not decode (the peer's encoder is broken or
  hostile). Carries one of the decode error codes of ``docs/protocol.md``.
- :class:`ProtocolViolation`: a well-formed message that breaks the protocol rules (wrong state,
  unknown request id, ...). Carries the close code the session sends.
- :class:`UsageError`: our own code misused an API (encoding an invalid message, sending on a
  closed session, ...). It is a bug on our side, never caused by a peer.
"""

from __future__ import annotations

from enum import IntEnum, StrEnum


class CloseCode(IntEnum):
    """Codes carried by CLOSE (u16). See ``docs/protocol.md``, "Close codes"."""

    NORMAL = 0
    PROTOCOL_ERROR = 1
    VERSION_MISMATCH = 2
    SWARM_MISMATCH = 3
    STATE_VIOLATION = 4
    LIMIT_EXCEEDED = 5
    INTEGRITY_FAILURE = 6
    TIMEOUT = 7
    GOING_AWAY = 8
    BANNED = 9
    IDENTITY_MISMATCH = 10


class WireErrorCode(StrEnum):
    """Decode error codes: the strings used by the test vectors and by both codecs."""

    TRUNCATED = "truncated"
    UNKNOWN_TYPE = "unknown_type"
    TRAILING_BYTES = "trailing_bytes"
    OVERSIZE = "oversize"
    ZERO_LENGTH = "zero_length"
    OUT_OF_RANGE = "out_of_range"
    BAD_UTF8 = "bad_utf8"


class P2PError(Exception):
    """Base class of every error raised by the peer protocol core."""


class WireError(P2PError):
    """Bytes received from a peer are not a valid protocol message."""

    def __init__(self, code: WireErrorCode, message: str) -> None:
        super().__init__(f"{code.value}: {message}")
        self.code = code
        self.message = message

    @property
    def close_code(self) -> CloseCode:
        """The close code a session answers this error with."""
        if self.code is WireErrorCode.OVERSIZE:
            return CloseCode.LIMIT_EXCEEDED
        return CloseCode.PROTOCOL_ERROR


class ProtocolViolation(P2PError):
    """A peer sent a valid message that breaks the protocol rules."""

    def __init__(self, close_code: CloseCode, message: str) -> None:
        super().__init__(f"{close_code.name}: {message}")
        self.close_code = close_code
        self.message = message


class UsageError(P2PError, ValueError):
    """Our own code called the API wrongly (a bug on the local side, not the peer's)."""
