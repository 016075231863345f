"""Write generated media to a directory, read it back, and cache it by config hash.

The directory layout is the origin's VOD URL layout, so any static file server can serve it::

    <dir>/media.json                            what was generated (config, codecs, durations)
    <dir>/vod-ts/master.m3u8, <r>/index.m3u8, <r>/seg-<i>.ts, <r>/manifest.json
    <dir>/vod-fmp4/master.m3u8, <r>/index.m3u8, <r>/init.mp4, <r>/seg-<i>.m4s, <r>/manifest.json
    <dir>/vod-byterange/master.m3u8, <r>/index.m3u8, <r>/stream.ts, <r>/manifest.json
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from peer_agent.origin.catalog import STREAMS, Catalog
from peer_agent.origin.config import MediaConfig, OriginConfig, Rendition
from peer_agent.origin.media import MediaSet, RenditionMedia, generate_media

logger = logging.getLogger(__name__)

STORE_FORMAT = 1
_META = "media.json"


def write_media(media: MediaSet, directory: str | os.PathLike[str]) -> Path:
    """Write ``media`` (VOD streams, playlists, manifests, ``media.json``) into ``directory``.

    The directory is created; it is written under a temporary name and renamed into place, so a
    reader never sees half a tree. An existing directory is replaced.
    """
    target = Path(directory)
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".p2p-origin-", dir=target.parent))
    try:
        catalog = Catalog(media, live_start_s=0.0)
        for spec in STREAMS:
            if spec.live:
                continue
            base = staging / spec.name
            base.mkdir()
            for path in _vod_paths(media, spec.name):
                res = catalog.resolve(f"/hls/{spec.name}/{path}", 0.0)
                out = base / path
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(res.body)
        (staging / _META).write_text(json.dumps(_metadata(media), indent=1))
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def generate_stream(config: MediaConfig, directory: str | os.PathLike[str]) -> MediaSet:
    """Generate ``config`` and write it into ``directory`` (see :func:`write_media`)."""
    media = generate_media(config)
    write_media(media, directory)
    return media


def read_media(directory: str | os.PathLike[str]) -> MediaSet:
    """Read back a tree written by :func:`write_media`; raises OSError/ValueError if broken."""
    root = Path(directory)
    meta = json.loads((root / _META).read_text())
    if meta.get("format") != STORE_FORMAT:
        raise ValueError(f"unknown media store format {meta.get('format')!r}")
    cfg = dict(meta["config"])
    cfg["renditions"] = tuple(Rendition(**r) for r in cfg["renditions"])
    config = MediaConfig(**cfg)
    renditions = []
    for entry in meta["renditions"]:
        rendition = Rendition(**entry["rendition"])
        n = len(entry["durations_s"])
        ts_dir = root / "vod-ts" / rendition.name
        mp4_dir = root / "vod-fmp4" / rendition.name
        renditions.append(
            RenditionMedia(
                rendition=rendition,
                video_codec=entry["video_codec"],
                durations_s=tuple(float(d) for d in entry["durations_s"]),
                ts_segments=tuple((ts_dir / f"seg-{i}.ts").read_bytes() for i in range(n)),
                fmp4_init=(mp4_dir / "init.mp4").read_bytes(),
                fmp4_segments=tuple((mp4_dir / f"seg-{i}.m4s").read_bytes() for i in range(n)),
                encode_s=float(entry["encode_s"]),
            )
        )
    return MediaSet(config, tuple(renditions))


def cache_root(config: OriginConfig) -> Path:
    return Path(config.cache_dir or tempfile.gettempdir()) / "p2p-origin-cache"


def load_or_generate(config: OriginConfig) -> MediaSet:
    """The media of ``config``: from the cache when present and valid, else generated (and
    cached when ``config.cache``)."""
    if not config.cache:
        return generate_media(config.media)
    path = cache_root(config) / config.media.cache_key()
    if (path / _META).exists():
        try:
            media = read_media(path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            logger.warning("ignoring broken media cache %s: %s", path, exc)
        else:
            if media.config == config.media:
                logger.info("media loaded from cache %s", path)
                return media
    media = generate_media(config.media)
    try:
        write_media(media, path)
        logger.info("media cached in %s", path)
    except OSError as exc:
        logger.warning("could not cache media in %s: %s", path, exc)
    return media


def _vod_paths(media: MediaSet, stream: str) -> list[str]:
    paths = ["master.m3u8"]
    for r in media.renditions:
        name = r.rendition.name
        paths += [f"{name}/index.m3u8", f"{name}/manifest.json"]
        if stream == "vod-ts":
            paths += [f"{name}/seg-{i}.ts" for i in range(r.segment_count)]
        elif stream == "vod-fmp4":
            paths.append(f"{name}/init.mp4")
            paths += [f"{name}/seg-{i}.m4s" for i in range(r.segment_count)]
        else:
            paths.append(f"{name}/stream.ts")
    return paths


def _metadata(media: MediaSet) -> dict[str, Any]:
    return {
        "format": STORE_FORMAT,
        "config": dataclasses.asdict(media.config),
        "renditions": [
            {
                "rendition": dataclasses.asdict(r.rendition),
                "video_codec": r.video_codec,
                "durations_s": list(r.durations_s),
                "encode_s": r.encode_s,
            }
            for r in media.renditions
        ],
    }
