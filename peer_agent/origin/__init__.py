"""Test origin: generates a real H.264/AAC HLS stream with PyAV and serves it with shaping.

The "CDN" of the demo, the tests and the load tests. See docs/origin.md.

    async with run_origin(OriginConfig(port=0)) as origin:
        origin.base_url, origin.stats()
"""

from peer_agent.origin.app import OriginApp
from peer_agent.origin.catalog import STREAMS, Catalog, StreamSpec, byterange_key
from peer_agent.origin.config import MediaConfig, OriginConfig, Rendition, ShapingConfig
from peer_agent.origin.errors import (
    BadRange,
    ConfigError,
    MediaGenerationError,
    NotFound,
    OriginError,
)
from peer_agent.origin.media import MediaSet, RenditionMedia, generate_media
from peer_agent.origin.server import RunningOrigin, build_app, run_origin, serve_forever
from peer_agent.origin.store import generate_stream, load_or_generate, read_media, write_media

__all__ = [
    "STREAMS",
    "BadRange",
    "Catalog",
    "ConfigError",
    "MediaConfig",
    "MediaGenerationError",
    "MediaSet",
    "NotFound",
    "OriginApp",
    "OriginConfig",
    "OriginError",
    "Rendition",
    "RenditionMedia",
    "RunningOrigin",
    "ShapingConfig",
    "StreamSpec",
    "build_app",
    "byterange_key",
    "generate_media",
    "generate_stream",
    "load_or_generate",
    "read_media",
    "run_origin",
    "serve_forever",
    "write_media",
]
