"""The agent's playlist reader gives the canonical manifest keys (docs/vectors/manifest/)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from peer_agent.agent.playlist import PlaylistError, parse_media
from peer_agent.core.media_ranges import manifest_key

CASES = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/manifest/keys.json").read_text()
)


def keys_of(text: str) -> list[str]:
    playlist = parse_media(text, "http://o/hls/s/lo/index.m3u8")
    keys: list[str] = []
    for seg in playlist.segments:
        if seg.init is not None:
            br = seg.init.byte_range
            keys.append(manifest_key(seg.init.key, None if br is None else (br.offset, br.length)))
        br = seg.byte_range
        keys.append(manifest_key(seg.key, None if br is None else (br.offset, br.length)))
    return list(dict.fromkeys(keys))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_manifest_key_vector(case: dict[str, Any]) -> None:
    if case.get("error"):
        with pytest.raises(PlaylistError):
            keys_of(case["playlist"])
    else:
        assert keys_of(case["playlist"]) == case["keys"]
