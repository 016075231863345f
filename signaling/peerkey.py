"""Keyed peer_ids: a peer_id our own clients can prove is theirs, on any process, after any
reconnect or restart, with nothing stored on the server (docs/signaling.md "peer_id ownership").

A client draws a secret ``peer_key`` (16..64 characters of ``[0-9A-Za-z_-]``; ours: 32 random
alphanumerics) and uses the peer_id derived from it::

    digest  = SHA-256("p2p-hls peer_key/1 " + peer_key)
    peer_id = "-PH0002-" + "".join(ALPHABET[digest[i] % 62] for i in range(12))

with ``ALPHABET = "0-9a-zA-Z"``. Every announce of a peer_id starting with ``-PH0002-`` must carry
the ``peer_key`` it derives from (else ``peer_id_unproven``). Only the key's holder can announce
such a peer_id, so a keyed peer_id bound to another connection is that same client's older
socket: the proven announce takes the peer_id over. Other peer_ids (standard WebTorrent
clients) keep the per-connection binding. Pure.
"""

from __future__ import annotations

import hashlib
import re
import string

KEYED_PREFIX = "-PH0002-"
DOMAIN = "p2p-hls peer_key/1 "
ALPHABET = string.digits + string.ascii_letters
PEER_KEY_RE = re.compile(r"[0-9A-Za-z_-]{16,64}")


def is_keyed(peer_id: str) -> bool:
    return peer_id.startswith(KEYED_PREFIX)


def valid_peer_key(peer_key: str) -> bool:
    return PEER_KEY_RE.fullmatch(peer_key) is not None


def derive_peer_id(peer_key: str) -> str:
    """The keyed peer_id of ``peer_key`` (which must be valid)."""
    digest = hashlib.sha256((DOMAIN + peer_key).encode("ascii")).digest()
    return KEYED_PREFIX + "".join(ALPHABET[b % 62] for b in digest[:12])


def proves(peer_id: str, peer_key: str) -> bool:
    return valid_peer_key(peer_key) and derive_peer_id(peer_key) == peer_id
