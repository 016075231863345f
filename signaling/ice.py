"""ICE servers for clients that ask (``{"action": "ice_servers"}``), with TURN REST credentials.

coturn's ``use-auth-secret`` (the "TURN REST API" scheme) checks a credential derived from a
secret it shares with us, so the server hands out short-lived credentials without talking to
coturn: ``username = "<expiry unix seconds>:<user>"`` and
``credential = base64(HMAC-SHA1(secret, username))``. coturn refuses a username whose expiry has
passed. Pure: the wall-clock time is an argument. Credentials are never logged.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

ICE_SCHEMES = ("stun:", "turn:", "turns:")
MAX_ICE_URLS = 8
MAX_ICE_URL_CHARS = 256


def turn_rest_credential(secret: str, username: str) -> str:
    """base64(HMAC-SHA1(secret, username)), as coturn's ``use-auth-secret`` expects."""
    digest = hmac.new(secret.encode("utf-8"), username.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def turn_rest_username(expiry_unix_s: int, user: str) -> str:
    return f"{expiry_unix_s}:{user}"


def check_ice_url(url: str) -> str | None:
    """Why ``url`` is not an acceptable STUN/TURN URL to hand out (None: it is)."""
    if not url.startswith(ICE_SCHEMES):
        return f"ICE URL must start with one of {', '.join(ICE_SCHEMES)}"
    if len(url) > MAX_ICE_URL_CHARS:
        return f"ICE URL longer than {MAX_ICE_URL_CHARS} characters"
    if "@" in url or any(c.isspace() for c in url):
        return "ICE URL must not carry credentials or spaces"
    return None


def ice_servers_reply_body(
    urls: tuple[str, ...], secret: str | None, ttl_s: float, wall_s: float, user: str
) -> dict[str, Any]:
    """The ``ice_servers`` reply: STUN URLs plain, TURN URLs with fresh credentials."""
    stun = [u for u in urls if u.startswith("stun:")]
    turn = [u for u in urls if not u.startswith("stun:")]
    expires = int(wall_s + ttl_s)
    servers: list[dict[str, Any]] = []
    if stun:
        servers.append({"urls": stun})
    if turn and secret is not None:
        username = turn_rest_username(expires, user)
        credential = turn_rest_credential(secret, username)
        servers.append({"urls": turn, "username": username, "credential": credential})
    return {"action": "ice_servers", "ice_servers": servers, "expires": expires}
