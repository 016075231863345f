"""Where bytes become segments: CDN fetches (relayed cut-through as they arrive), then
verification against the manifest, then play, store, announce and release the last frame to
whoever we relay the segment to; or, on a hash mismatch, abort those relays (UPSTREAM_FAILED),
discard, penalise every peer that contributed, ban repeat offenders and refetch from the CDN."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from ..core.ids import SegmentId
from .cdn import CdnError
from .integrity import Verdict, sha256_hex
from .playlist import InitMap, SegmentInfo
from .state import Held, Transfer

if TYPE_CHECKING:
    from .agent import Agent

logger = logging.getLogger(__name__)


class Intake:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    async def fetch_init(self, init: InitMap) -> None:
        if init.uri in self.agent._inits:
            return
        self.agent._inits[init.uri] = b""
        try:
            result = await self.agent.cdn.fetch(init.uri, byte_range=init.byte_range)
        except CdnError as exc:
            logger.warning("init section %s: %s", init.uri, exc)
            del self.agent._inits[init.uri]
            return
        self.agent.bytes_init += len(result.data)
        self.agent.bytes_cdn += len(result.data)
        digest = self.agent.manifest.expected_for(init.key, init.uri, init.byte_range)
        if digest is not None and sha256_hex(result.data) != digest:
            self.agent.hash_failures += 1
            logger.warning("init section %s failed its hash", init.uri)
            del self.agent._inits[init.uri]  # fetched again with the next segment that needs it
            return
        self.agent._inits[init.uri] = result.data
        self.agent.inits_verified += digest is not None

    # -- CDN -----------------------------------------------------------------------------------

    def start_cdn(self, segment: SegmentId, offset: int, now: float) -> None:
        info = self.agent.info(segment)
        if segment in self.agent.transfers or info is None:
            return
        held = self.agent.held_for(segment, offset)
        offset = len(held.buf)
        self.agent.cdn_resumes += offset > 0
        transfer = Transfer(segment, None, now, offset)
        self.agent.transfers[segment] = transfer
        transfer.task = self.agent.spawn(self._cdn_fetch(transfer, info, held))
        self.agent.announce_fetching(segment)

    async def _cdn_fetch(self, transfer: Transfer, info: SegmentInfo, held: Held) -> None:
        segment = transfer.segment

        def on_total(total: int) -> None:
            held.total = total
            self.agent.sizes[segment] = total
            self.agent.exchange.pump_segment(segment)

        def on_chunk(pos: int, data: bytes) -> None:
            if self.agent.transfers.get(segment) is not transfer or pos != len(held.buf):
                return
            held.append(data, None)
            transfer.received += len(data)
            transfer.last_data_at = self.agent.now()
            self.agent.bytes_cdn += len(data)
            self.agent.exchange.pump_segment(segment)

        try:
            result = await self.agent.cdn.fetch(
                info.uri,
                byte_range=info.byte_range,
                offset=transfer.offset,
                on_chunk=on_chunk,
                on_total=on_total,
            )
        except CdnError as exc:
            logger.warning("CDN fetch of %s failed: %s", segment, exc)
            self.agent.cdn_failures += 1
            if self.agent.transfers.get(segment) is transfer:
                del self.agent.transfers[segment]
            self.agent.wake()
            return
        if self.agent.transfers.get(segment) is not transfer:
            return
        self.agent.cdn_rate.add_sample(transfer.received, max(1e-6, result.elapsed_s))
        held.total = result.total_bytes
        self.agent.sizes[segment] = result.total_bytes
        await self.complete(transfer, held)

    # -- completing a segment ----------------------------------------------------------------

    async def complete(self, transfer: Transfer, held: Held) -> None:
        """All bytes of the segment are held: verify, then play, store, announce, serve."""
        segment = transfer.segment
        info = self.agent.info(segment)
        data = bytes(held.buf)
        if info is None:  # fell out of the timeline meanwhile
            self.agent.transfers.pop(segment, None)
            self.agent.drop_held(segment)
            return
        transfer.verifying = True
        verdict = self.agent.manifest.verify(info, data, held.total)
        if verdict is Verdict.UNKNOWN and self.agent.manifest.url is not None:
            await self._refresh_manifest_soon()
            verdict = self.agent.manifest.verify(info, data, held.total)
        if self.agent.transfers.get(segment) is transfer:
            del self.agent.transfers[segment]
        peers = {p for p in held.contributors if p is not None}
        if verdict is Verdict.UNKNOWN:
            if self.agent.manifest.url is None or not peers:
                verdict = Verdict.OK  # size-only mode, or CDN bytes: trusted as they are
            else:
                self.agent.unverifiable += 1
                logger.info("%s from peers has no hash in the manifest: refetching", segment)
                self._discard_and_refetch(segment)
                return
        if verdict is Verdict.MISMATCH:
            self.agent.hash_failures += 1
            logger.warning("%s failed its hash (sources: %s)", segment, sorted(map(str, peers)))
            for pid in peers:
                if self.agent.penalties.record(pid, self.agent.now()):
                    self.agent.exchange.ban(pid)
                self.agent.add_avoid(segment, pid)
            self._discard_and_refetch(segment)
            return
        self._accept(info, data)

    async def _refresh_manifest_soon(self) -> None:
        if self.agent._manifest_refresh is None or self.agent._manifest_refresh.done():
            if self.agent.now() - self.agent._manifest_refreshed_at < 0.25:
                return
            self.agent._manifest_refresh = self.agent.spawn(self.agent.refresh_manifest())
        with contextlib.suppress(Exception):
            await asyncio.shield(self.agent._manifest_refresh)

    def _discard_and_refetch(self, segment: SegmentId) -> None:
        """Drop every byte of ``segment`` (aborting whoever we relayed it to) and fetch it
        again from the CDN."""
        self.agent.drop_held(segment)
        count = self.agent.hash_retries.get(segment, 0) + 1
        self.agent.hash_retries[segment] = count
        if count <= self.agent.config.max_hash_retries:
            self.start_cdn(segment, 0, self.agent.now())
        else:  # even the CDN's bytes do not match: never play it (the player stalls there)
            logger.error("%s failed its hash %d times: giving up on it", segment, count)
            self.agent.given_up.add(segment)
        self.agent.wake()

    def _accept(self, info: SegmentInfo, data: bytes) -> None:
        segment = info.segment_id
        now = self.agent.now()
        self.agent.verified.add(segment)
        self.agent.avoid.pop(segment, None)
        self.agent.sizes[segment] = len(data)
        assert self.agent.player is not None
        self.agent.player.add_media(info.start_s, info.duration_s, now)
        evicted = self.agent.store.put(segment, data)
        self.agent.exchange.segment_verified(segment, data)
        self.agent.held.pop(segment, None)
        if self.agent.swarm is not None and not self.agent.config.leech_only:
            if segment in self.agent.store:
                self.agent.swarm.broadcast_have([segment])
            lost = [s for s in evicted if s != segment]
            if lost:
                self.agent.swarm.broadcast_lost(lost)
        self.agent.exchange.pump_segment(segment)
        self.agent.wake()
