"""Hash service: SHA-256 manifests for origins that publish none (``p2p-hashsvc``).

It fetches each segment of a tracked media playlist once from the CDN, hashes it, and serves
``{segment uri: sha256}`` at ``GET /manifest?playlist=URL``. See docs/hashsvc.md.
"""

from signaling.hashsvc.config import HashServiceConfig
from signaling.hashsvc.errors import (
    BadPlaylistUrl,
    HashServiceError,
    HashServiceUnavailable,
    NotAllowed,
    NotMediaPlaylist,
    UpstreamError,
)
from signaling.hashsvc.server import RunningHashService, run_hash_service
from signaling.hashsvc.service import HashService

__all__ = [
    "BadPlaylistUrl",
    "HashService",
    "HashServiceConfig",
    "HashServiceError",
    "HashServiceUnavailable",
    "NotAllowed",
    "NotMediaPlaylist",
    "RunningHashService",
    "UpstreamError",
    "run_hash_service",
]
