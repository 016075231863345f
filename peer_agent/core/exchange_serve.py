"""Serving peers' requests: from the store, from a verified copy kept for relays, or
cut-through from a download in progress, under the upload cap and the upload slot limit.

The rules are docs/exchange.md, "Serving" and "Cut-through relay": the last
``relay_holdback_bytes`` of a segment leave only once our own copy verified; a copy that fails
or is given up ABORTs (UPSTREAM_FAILED) every relay of it. Pure: time is an argument and every
output is an action handed to ``emit``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from .capacity import upload_slots
from .exchange_actions import (
    AbortUpload,
    Action,
    AnnounceLost,
    ExchangeConfig,
    RejectAbsent,
    RejectBusy,
    Respond,
    SendData,
)
from .exchange_uploads import PeerLedger, TokenBucket, Upload, Uploads
from .ids import SegmentId
from .store import SegmentStore
from .wire import AbortReason

#: BUSY hint of a peer that never uploads (leech-only) or of a banned requester.
NEVER_RETRY_MS = 0xFFFF


class InProgress(Protocol):
    """Where the server finds bytes of a segment still being downloaded."""

    def in_progress(self, segment: SegmentId) -> tuple[bytearray, int | None] | None:
        """Bytes held so far and the size once known; ``None``: no download in progress."""
        ...

    def stream_bitrate_bits_per_s(self) -> float | None:
        """The rendition's bitrate as the timeline gave it; ``None``: not known."""
        ...

    def neighbour_count(self) -> int:
        """Open neighbours now (the default upload cap grows with them)."""
        ...


class UploadServer:
    def __init__(
        self,
        config: ExchangeConfig,
        store: SegmentStore,
        downloads: InProgress,
        emit: Callable[[Action], None],
    ) -> None:
        self.config = config
        self.store = store
        self.downloads = downloads
        self.emit = emit
        self.uploads = Uploads()
        self.bucket: TokenBucket | None = None
        #: Verified segments still being relayed, kept whole until those uploads end (the
        #: store may not keep them).
        self.relay_copies: dict[SegmentId, bytes] = {}
        self.pump_at: float | None = None
        self.bytes_uploaded = 0
        self.busy_sent = 0
        self.relays_aborted = 0
        #: Requests refused by the per-neighbour fairness rules (docs/exchange.md, "Fairness").
        self.unfair_refusals = 0
        self.ledger = PeerLedger(config.peer_window_s)

    # -- inputs ---------------------------------------------------------------------------

    def on_request(
        self,
        link: str,
        peer_id: str,
        request_id: int,
        segment: SegmentId,
        offset: int,
        now: float,
        *,
        banned: bool,
        announced: bool = False,
    ) -> bool:
        """Serve, wait or refuse a request. ``announced``: the peer announced ``segment``
        (HAVE, not LOST since). True: the request is a lie (refused BUSY(65535), counted
        ``unfair_refusals``); the caller records the offence."""
        cfg = self.config
        if cfg.leech_only or banned:
            self.emit(RejectBusy(link, request_id, NEVER_RETRY_MS))
            return False
        if announced:
            self.unfair_refusals += 1
            self.emit(RejectBusy(link, request_id, NEVER_RETRY_MS))
            return True
        slots = self.slots()
        if len(self.uploads) >= slots or self._cap_backlogged():
            # every slot taken, or more than cap_backlog_s of the cap still to send; with no
            # slot at all (the cap is below the bitrate) it never will be: retry never
            self.busy_sent += 1
            self.emit(
                RejectBusy(link, request_id, cfg.busy_retry_after_ms if slots else NEVER_RETRY_MS)
            )
            return False
        stored = self.store.get(segment)
        data = stored if stored is not None else self.relay_copies.get(segment)
        progress = self.downloads.in_progress(segment) if data is None else None
        total = len(data) if data is not None else progress[1] if progress is not None else None
        if (data is None and progress is None) or (total is not None and offset >= total):
            self.emit(RejectAbsent(link, request_id))
            return False
        retry_ms = self._unfair(peer_id, segment, now)
        if retry_ms is not None:
            self.unfair_refusals += 1
            self.emit(RejectBusy(link, request_id, retry_ms))
            return False
        upload = Upload(link, peer_id, request_id, segment, offset, offset)
        if stored is not None:
            self.store.pin(segment)
            upload.pinned = True
        if total is not None:
            upload.total_bytes = total
            self.emit(Respond(link, request_id, total))
        self.uploads.add(upload)
        self._pump(upload, now)
        return False

    def on_cancelled(self, link: str, request_id: int) -> None:
        upload = self.uploads.get(link, request_id)
        if upload is not None:
            self._end(upload)

    def on_link_closed(self, link: str) -> None:
        for upload in self.uploads.for_link(link):
            self._end(upload)

    def segment_verified(self, segment: SegmentId, data: bytes) -> None:
        """Our copy matched: keep it for the uploads relaying it (the rest, the last frame
        included, goes out from it), whether or not the store keeps it."""
        if self.uploads.for_segment(segment):
            self.relay_copies[segment] = data

    def pump_segment(self, segment: SegmentId, now: float) -> None:
        for upload in self.uploads.for_segment(segment):
            self._pump(upload, now)

    def get_timer(self) -> float | None:
        """When uploads held back by the cap may go on (``None`` while none waits)."""
        return self.pump_at

    def handle_timer(self, now: float) -> None:
        if self.pump_at is None or now < self.pump_at:
            return
        self.pump_at = None
        for upload in self.uploads:
            self._pump(upload, now)

    def abort_relays(self, segment: SegmentId, *, beyond: int | None = None) -> None:
        """ABORT (UPSTREAM_FAILED) the relays of unverified ``segment``: all of them, or those
        that were handed bytes past ``beyond``."""
        if self._verified_copy(segment) is not None:
            return
        for upload in self.uploads.for_segment(segment):
            if upload.pinned:
                continue
            if beyond is not None and upload.sent_until <= max(beyond, upload.offset):
                continue
            self._end(upload)
            self.relays_aborted += 1
            self.emit(AbortUpload(upload.link, upload.request_id, AbortReason.UPSTREAM_FAILED))

    def forget_segments(self, keep: Callable[[SegmentId], bool]) -> None:
        self.ledger.keep_segments(keep)

    def peer_budget_bytes(self) -> int:
        """Bytes one neighbour may draw over ``peer_window_s``."""
        cfg = self.config
        bitrate = self.downloads.stream_bitrate_bits_per_s() or cfg.default_bitrate_bits_per_s
        return int(cfg.peer_window_copies * bitrate / 8 * cfg.peer_window_s)

    def cap_bytes_per_s(self) -> float | None:
        """The upload cap now: the configured one, else ``upload_cap_copies`` copies of the
        stream per open neighbour once the timeline gave a bitrate, else none."""
        cfg = self.config
        if cfg.upload_cap_bytes_per_s is not None:
            return cfg.upload_cap_bytes_per_s
        bitrate = self.downloads.stream_bitrate_bits_per_s()
        if bitrate is None:
            return None
        return cfg.upload_cap_copies * bitrate / 8 * max(1, self.downloads.neighbour_count())

    def slots(self) -> int:
        """Uploads served at once: ``max_uploads``, fewer when the upload cap cannot feed that
        many at the stream's bitrate (docs/scheduling.md, "Upload fan-out")."""
        cfg = self.config
        bitrate = self.downloads.stream_bitrate_bits_per_s() or None  # 0: not known either
        return upload_slots(cfg.upload_cap_bytes_per_s, bitrate, cfg.max_uploads)

    # -- internals -----------------------------------------------------------------------

    def _cap_backlogged(self) -> bool:
        cap = self.cap_bytes_per_s()
        if cap is None:
            return False
        owed = sum(u.total_bytes - u.sent_until for u in self.uploads if u.total_bytes is not None)
        return owed > cap * self.config.cap_backlog_s

    def _unfair(self, peer_id: str, segment: SegmentId, now: float) -> int | None:
        """The BUSY hint (ms) if serving ``peer_id`` now would break a fairness rule."""
        cfg = self.config
        if self.uploads.for_peer(peer_id) >= cfg.max_uploads_per_peer:
            return cfg.busy_retry_after_ms
        going = sum(1 for u in self.uploads.for_segment(segment) if u.peer_id == peer_id)
        if self.ledger.serves(peer_id, segment) + going >= cfg.max_serves_per_segment:
            return NEVER_RETRY_MS
        if self.ledger.window_bytes(peer_id, now) >= self.peer_budget_bytes():
            return cfg.busy_retry_after_ms
        return None

    def _verified_copy(self, segment: SegmentId) -> bytes | None:
        data = self.store.get(segment)
        return data if data is not None else self.relay_copies.get(segment)

    def _source(self, segment: SegmentId) -> tuple[bytes | bytearray | None, int | None, bool]:
        data = self._verified_copy(segment)
        if data is not None:
            return data, len(data), True
        progress = self.downloads.in_progress(segment)
        if progress is not None:
            return progress[0], progress[1], False
        return None, None, False

    def _pump(self, upload: Upload, now: float) -> None:
        """Hand the session what the source holds beyond what was sent, within the cap."""
        source, total, verified = self._source(upload.segment)
        if source is None:
            return  # the upstream went away; bytes may come back with a new fetch
        if upload.total_bytes is None:
            if total is None:
                return
            if upload.offset >= total:
                self.uploads.remove(upload)
                self.emit(RejectAbsent(upload.link, upload.request_id))
                return
            upload.total_bytes = total
            self.emit(Respond(upload.link, upload.request_id, total))
        limit = upload.total_bytes
        if not verified:
            limit -= self.config.relay_holdback_bytes  # the last frame waits for our hash
        wanted = min(len(source), limit) - upload.sent_until
        if wanted > 0:
            cfg = self.config
            cap = self.cap_bytes_per_s()
            if self.bucket is None or self.bucket.rate_bytes_per_s is None:
                self.bucket = TokenBucket(cap, now, cfg.upload_burst_bytes or 0)
            elif cap is not None:
                self.bucket.set_rate(cap, now, cfg.upload_burst_bytes or 0)
            granted = self.bucket.take(wanted, now)
            if granted > 0:
                start = upload.sent_until
                chunk = bytes(source[start : start + granted])
                self.emit(SendData(upload.link, upload.request_id, start, chunk))
                upload.sent_until += granted
                self.bytes_uploaded += granted
                self.ledger.add_bytes(upload.peer_id, granted, now)
            if granted < wanted:
                at = self.bucket.ready_at(wanted - granted, now)
                self.pump_at = at if self.pump_at is None else min(self.pump_at, at)
        if upload.sent_until >= upload.total_bytes:
            self.ledger.count_serve(upload.peer_id, upload.segment)  # a whole copy went
            self._end(upload)

    def _end(self, upload: Upload) -> None:
        self.uploads.remove(upload)
        if not len(self.uploads):
            self.pump_at = None  # nobody waits for the cap any more
        if upload.segment in self.relay_copies and not self.uploads.for_segment(upload.segment):
            del self.relay_copies[upload.segment]
        if upload.pinned:
            upload.pinned = False
            evicted = self.store.unpin(upload.segment)
            if evicted:
                self.emit(AnnounceLost(tuple(evicted)))
