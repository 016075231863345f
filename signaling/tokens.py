"""HMAC-signed, swarm-bound, expiring join tokens.

Format (all ASCII, safe in a URL query)::

    v1.<payload>.<signature>

``payload`` is base64url (no padding) of the UTF-8 JSON object
``{"swarms": ["<40 hex chars>", ...], "exp": <unix seconds>}``; each swarm is the hex form of the
20 byte characters of an ``info_hash``. ``signature`` is base64url (no padding) of
HMAC-SHA256(secret, ``"v1." + payload``). Pure: the current wall-clock time is an argument.
Tokens are secrets: never log them.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterable
from dataclasses import dataclass

from signaling.errors import TokenError, TokenExpired, UsageError

VERSION = "v1"
MAX_TOKEN_CHARS = 4096
MAX_TOKEN_SWARMS = 64


@dataclass(frozen=True)
class JoinGrant:
    swarms: frozenset[str]  # hex info_hashes
    expires_at_unix_s: int

    def allows(self, info_hash_hex: str) -> bool:
        return info_hash_hex in self.swarms


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _sign(secret: str, signed_part: str) -> bytes:
    return hmac.new(secret.encode("utf-8"), signed_part.encode("ascii"), hashlib.sha256).digest()


def _check_hex(info_hash_hex: str) -> str:
    h = info_hash_hex.lower()
    if len(h) != 40 or any(c not in "0123456789abcdef" for c in h):
        raise UsageError(f"info_hash must be 40 hex characters, got {info_hash_hex!r}")
    return h


def mint_token(secret: str, info_hashes_hex: Iterable[str], expires_at_unix_s: int) -> str:
    """Return a token for the given swarms (hex info_hashes), valid until ``expires_at_unix_s``."""
    if not secret:
        raise UsageError("secret must not be empty")
    swarms = sorted({_check_hex(h) for h in info_hashes_hex})
    if not swarms or len(swarms) > MAX_TOKEN_SWARMS:
        raise UsageError(f"a token names 1..{MAX_TOKEN_SWARMS} swarms")
    body = json.dumps({"swarms": swarms, "exp": int(expires_at_unix_s)}, separators=(",", ":"))
    signed_part = f"{VERSION}.{_b64(body.encode('utf-8'))}"
    return f"{signed_part}.{_b64(_sign(secret, signed_part))}"


def verify_token(secret: str, token: str, now_unix_s: float) -> JoinGrant:
    """Check signature and expiry; raise :class:`TokenError` or :class:`TokenExpired`."""
    if not token:
        raise TokenError("a join token is required")
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise TokenError("malformed token")
    parts = token.split(".")
    if len(parts) != 3 or parts[0] != VERSION:
        raise TokenError("malformed token")
    signed_part = f"{parts[0]}.{parts[1]}"
    try:
        signature = _unb64(parts[2])
        body = json.loads(_unb64(parts[1]).decode("utf-8"))
    except (binascii.Error, ValueError, UnicodeDecodeError) as exc:
        raise TokenError("malformed token") from exc
    if not hmac.compare_digest(signature, _sign(secret, signed_part)):
        raise TokenError("bad token signature")
    if not isinstance(body, dict):
        raise TokenError("malformed token")
    exp = body.get("exp")
    swarms = body.get("swarms")
    if isinstance(exp, bool) or not isinstance(exp, int) or not isinstance(swarms, list):
        raise TokenError("malformed token")
    if not all(isinstance(s, str) for s in swarms):
        raise TokenError("malformed token")
    if exp <= now_unix_s:
        raise TokenExpired("token expired")
    return JoinGrant(frozenset(s.lower() for s in swarms), exp)
