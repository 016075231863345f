"""Keyed peer_ids (docs/signaling.md "peer_id ownership"): a secret ``peer_key`` and the peer_id
derived from it, which the tracker lets only the key's holder announce, after any reconnect or
restart. Same derivation as the server (``signaling/peerkey.py``) and the browser
(``web_demo/ids.js``); the vectors in docs/vectors/signaling/peer_key.json bind all three.

    digest  = SHA-256("p2p-hls peer_key/1 " + peer_key)
    peer_id = "-PH0002-" + "".join(ALPHABET[digest[i] % 62] for i in range(12))

Keys come from :mod:`secrets` (never a seeded ``random``): a guessable key is no proof. Identities
made by :func:`make_keyed_identity` are remembered in this process (:func:`key_for`) so the
tracker client finds the key of a keyed peer_id it is handed.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import string

KEYED_PREFIX = "-PH0002-"
DOMAIN = "p2p-hls peer_key/1 "
ALPHABET = string.digits + string.ascii_letters
KEY_CHARS = 32
_PEER_KEY_RE = re.compile(r"[0-9A-Za-z_-]{16,64}")
_KEYRING: dict[str, str] = {}  # keyed peer_id -> peer_key, for identities made here


def is_keyed(peer_id: str) -> bool:
    return peer_id.startswith(KEYED_PREFIX)


def valid_peer_key(peer_key: str) -> bool:
    return _PEER_KEY_RE.fullmatch(peer_key) is not None


def derive_peer_id(peer_key: str) -> str:
    if not valid_peer_key(peer_key):
        raise ValueError("a peer_key is 16..64 characters of [0-9A-Za-z_-]")
    digest = hashlib.sha256((DOMAIN + peer_key).encode("ascii")).digest()
    return KEYED_PREFIX + "".join(ALPHABET[b % 62] for b in digest[:12])


def make_keyed_identity() -> tuple[str, str]:
    """A fresh ``(peer_id, peer_key)``; the key is remembered for :func:`key_for`."""
    peer_key = "".join(secrets.choice(ALPHABET) for _ in range(KEY_CHARS))
    peer_id = derive_peer_id(peer_key)
    _KEYRING[peer_id] = peer_key
    return peer_id, peer_key


def key_for(peer_id: str) -> str | None:
    """The key of a keyed peer_id made in this process by :func:`make_keyed_identity`."""
    return _KEYRING.get(peer_id)
