"""Who may read the admin endpoints (``/metrics``, ``/api/admin/swarms``): per-peer detail and
counters are not public (issue 10: a public list of peer_ids let anyone take them over).

With ``admin_token`` set, a request needs ``Authorization: Bearer <admin_token>``. Without it,
only requests made on loopback *directly* are allowed (a socket peer of 127.0.0.0/8 or ::1, and no
``Forwarded`` / ``X-Forwarded-For`` / ``X-Real-IP`` header, which a reverse proxy on the same host
adds): a development default; production sets a token (docs/deployment.md).
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Mapping
from typing import Literal

PROXY_HEADERS = ("forwarded", "x-forwarded-for", "x-real-ip")

AdminVerdict = Literal["ok", "unauthorized", "forbidden"]


def _is_loopback(host: str | None) -> bool:
    if not host:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def admin_verdict(
    admin_token: str | None, headers: Mapping[str, str], client_host: str | None
) -> AdminVerdict:
    """``ok``; ``unauthorized`` (401: a token is configured and this request lacks it) or
    ``forbidden`` (403: no token configured and the request is not direct on loopback)."""
    if admin_token is not None:
        given = headers.get("authorization", "")
        expected = "Bearer " + admin_token
        if hmac.compare_digest(given.encode(), expected.encode()):
            return "ok"
        return "unauthorized"
    if _is_loopback(client_host) and not any(h in headers for h in PROXY_HEADERS):
        return "ok"
    return "forbidden"
