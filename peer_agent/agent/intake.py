"""Checking bytes against the manifest (the exchange's ``verify`` action) and fetching init
sections. The rules of what follows a verdict are the core's (docs/exchange.md, section 6);
this is the I/O half: hashing, and refreshing a live manifest that does not list a segment yet.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..core.exchange_state import Verdict
from .cdn import CdnError, CdnFetcher
from .integrity import Manifest, sha256_hex
from .playlist import InitMap, SegmentInfo

logger = logging.getLogger(__name__)


async def check(
    manifest: Manifest,
    info: SegmentInfo,
    data: bytes,
    total_bytes: int | None,
    refresh: Callable[[int, bool], Awaitable[bool]] | None,
) -> Verdict:
    """The verdict on a whole segment; an UNKNOWN one is checked again after a manifest
    refresh from the segment's MSN on (a live manifest grows behind the playlist), unless
    ``refresh`` is ``None`` (nothing to wait for: bytes the caller trusts unlisted).

    ``refresh(msn, fresh)`` waits for an answer and says whether this call sent its request;
    a shared one may have been asked for before the segment was published, so a segment it
    does not list is checked once more against a fresh request (``fresh=True``)."""
    verdict = manifest.verify(info, data, total_bytes)
    if verdict is Verdict.UNKNOWN and manifest.url is not None and refresh is not None:
        msn = info.segment_id.sequence
        own = await refresh(msn, False)
        verdict = manifest.verify(info, data, total_bytes)
        if verdict is Verdict.UNKNOWN and manifest.url is not None and not own:
            await refresh(msn, True)
            verdict = manifest.verify(info, data, total_bytes)
    return verdict


@dataclass(frozen=True)
class InitResult:
    #: The verified (or, without a manifest entry, unchecked) bytes; ``None``: fetch it again
    #: with the next segment that needs it.
    data: bytes | None
    fetched_bytes: int = 0
    verified: bool = False
    hash_failed: bool = False


async def fetch_init(cdn: CdnFetcher, manifest: Manifest, init: InitMap) -> InitResult:
    """Fetch an init section and check it when the manifest lists it. Raises nothing."""
    try:
        result = await cdn.fetch(init.uri, byte_range=init.byte_range)
    except CdnError as exc:
        logger.warning("init section %s: %s", init.uri, exc)
        return InitResult(None)
    size = len(result.data)
    digest = manifest.expected_for(init.key, init.uri, init.byte_range)
    if digest is not None and sha256_hex(result.data) != digest:
        logger.warning("init section %s failed its hash", init.uri)
        return InitResult(None, size, hash_failed=True)
    return InitResult(result.data, size, verified=digest is not None)
