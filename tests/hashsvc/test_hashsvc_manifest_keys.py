"""The hash service's playlist reader gives the canonical manifest keys (docs/vectors/manifest/),
the same the agent looks up."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from signaling.hashsvc.playlist import UpstreamError, parse_media_playlist

CASES = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/manifest/keys.json").read_text()
)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c["name"])
def test_manifest_key_vector(case: dict[str, Any]) -> None:
    url = "http://o/hls/s/lo/index.m3u8"
    if case.get("error"):
        with pytest.raises(UpstreamError):
            parse_media_playlist(case["playlist"], url)
    else:
        keys = [e.key for e in parse_media_playlist(case["playlist"], url).entries]
        assert keys == case["keys"]
