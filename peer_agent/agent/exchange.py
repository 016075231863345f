"""The agent's side of the peer protocol: session events in, requests and uploads out.

:meth:`Exchange.on_event` is the ``on_event(link, event)`` callback of the swarm. It keeps the
neighbours' availability (HELLO, HAVE, FETCHING, LOST), feeds our requests' bytes into the
segment being assembled, and serves the peers' requests: from the store (verified segments),
or cut-through from a download in progress, from the CDN or a peer (RESPONSE once the size is
known, then DATA as bytes arrive), under the upload cap and the concurrent-upload limit (BUSY
beyond).

Cut-through follows docs/protocol.md, "Relaying before the segment is complete": the last
:data:`RELAY_HOLDBACK_BYTES` (one DATA frame) of a segment leave only once our own copy matched
its hash; if it does not, or we give the segment up, everyone we relayed it to gets ABORT
(UPSTREAM_FAILED). A resumed or refetched upstream keeps feeding the same uploads. So a
corrupting peer's bytes never complete a segment anywhere downstream of us.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from ..core.errors import CloseCode
from ..core.events import (
    DataReceived,
    HelloReceived,
    PeerFetching,
    PeerHave,
    PeerLost,
    RequestCancelled,
    RequestCompleted,
    RequestFailed,
    ResponseStarted,
    SegmentRequested,
    SessionClosed,
)
from ..core.ids import SegmentId
from ..core.throughput import ThroughputEstimator
from ..core.wire import MAX_DATA_PAYLOAD_BYTES, AbortReason
from .state import Neighbour, Transfer
from ..core.exchange_uploads import TokenBucket, Upload, Uploads

if TYPE_CHECKING:
    from .agent import Agent
    from .state import Transfer

logger = logging.getLogger(__name__)

BUSY_RETRY_MS = 500
#: What a relay withholds of a segment until its own copy is verified: one whole DATA frame.
RELAY_HOLDBACK_BYTES = MAX_DATA_PAYLOAD_BYTES


class Exchange:
    def __init__(self, agent: Agent) -> None:
        self.agent = agent
        self.uploads = Uploads()
        self.bucket: TokenBucket | None = None
        self.bytes_uploaded_closed = 0
        self.links_seen: dict[int, Any] = {}
        self._pump_handle: asyncio.TimerHandle | None = None
        self.busy_sent = 0
        #: Verified segments still being relayed, kept whole until those uploads end (the
        #: store may not keep them).
        self.relay_copies: dict[SegmentId, bytes] = {}
        #: Uploads aborted because our copy failed or was given up (UPSTREAM_FAILED).
        self.relays_aborted = 0

    # -- accounting ------------------------------------------------------------------------

    @property
    def bytes_uploaded(self) -> int:
        live = sum(link.session.stats.payload_bytes_sent for link in self.links_seen.values())
        return self.bytes_uploaded_closed + live

    def _peer_id(self, link: Any) -> str:
        pid = getattr(link, "remote_peer_id", None)
        if pid is None:
            raw = link.session.remote_peer_id or b""
            pid = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
        return str(pid)

    def ban(self, peer_id: str) -> None:
        agent = self.agent
        nb = agent.neighbours.get(peer_id)
        if nb is not None:
            nb.open = False
        link = agent.swarm.links.get(peer_id) if agent.swarm is not None else None
        if link is not None:
            logger.warning("banning peer %s after repeated hash failures", peer_id)
            agent.spawn(link.close(CloseCode.BANNED, "repeated integrity failures"))

    # -- events --------------------------------------------------------------------------------

    def on_event(self, link: Any, event: Any) -> None:
        try:
            self._on_event(link, event)
        except Exception:  # one bad event must not take the agent down
            logger.exception("handling %s failed", type(event).__name__)

    def _on_event(self, link: Any, event: Any) -> None:
        agent = self.agent
        if agent._loop is None:
            return
        now = agent.now()
        if isinstance(event, DataReceived):
            self._on_data(link, event, now)
        elif isinstance(event, HelloReceived):
            pid = self._peer_id(link)
            self.links_seen[id(link)] = link
            agent.peers_seen.add(pid)
            if agent.penalties.is_banned(pid):
                agent.spawn(link.close(CloseCode.BANNED, "banned"))
                return
            nb = agent.neighbours.setdefault(pid, _neighbour(pid))
            nb.open = True
            nb.have = set(event.have)
            nb.fetching = {e.segment for e in event.fetching}
            nb.uploads = not event.leech_only
            for entry in event.fetching:
                if entry.expected_bytes:
                    agent.sizes.setdefault(entry.segment, entry.expected_bytes)
            agent.wake()
        elif isinstance(event, PeerHave | PeerLost | PeerFetching):
            known = agent.neighbours.get(self._peer_id(link))
            if known is None:
                return
            nb = known
            if isinstance(event, PeerHave):
                nb.have.update(event.segments)
                nb.fetching.difference_update(event.segments)
            elif isinstance(event, PeerLost):
                nb.have.difference_update(event.segments)
                nb.fetching.difference_update(event.segments)
            else:
                for entry in event.entries:
                    nb.fetching.add(entry.segment)
                    if entry.expected_bytes:
                        agent.sizes.setdefault(entry.segment, entry.expected_bytes)
            agent.wake()
        elif isinstance(event, ResponseStarted):
            held = agent.held.get(event.segment)
            transfer = self._transfer(link, event.request_id)
            if held is not None and transfer is not None:
                held.total = event.total_bytes
                agent.sizes.setdefault(event.segment, event.total_bytes)
                self.pump_segment(event.segment)
        elif isinstance(event, RequestCompleted):
            self._on_completed(link, event, now)
        elif isinstance(event, RequestFailed):
            self._on_failed(link, event, now)
        elif isinstance(event, SegmentRequested):
            self._on_request(link, event, now)
        elif isinstance(event, RequestCancelled):
            upload = self.uploads.get(link, event.request_id)
            if upload is not None:
                self._end_upload(upload)
        elif isinstance(event, SessionClosed):
            self._on_closed(link, event)

    def _transfer(self, link: Any, request_id: int) -> Transfer | None:
        for transfer in self.agent.transfers.values():
            if transfer.link is link and transfer.request_id == request_id:
                return transfer
        return None

    def _on_data(self, link: Any, event: DataReceived, now: float) -> None:
        agent = self.agent
        transfer = self._transfer(link, event.request_id)
        held = agent.held.get(event.segment)
        if transfer is None or held is None or event.offset != len(held.buf):
            return
        held.append(event.data, transfer.peer_id)
        transfer.received += len(event.data)
        transfer.last_data_at = now
        agent.bytes_p2p += len(event.data)
        self.pump_segment(event.segment)

    def _on_completed(self, link: Any, event: RequestCompleted, now: float) -> None:
        agent = self.agent
        transfer = self._transfer(link, event.request_id)
        held = agent.held.get(event.segment)
        if transfer is None or held is None:
            return
        held.total = event.total_bytes
        transfer.verifying = True  # from now on the scheduler leaves it alone
        if transfer.peer_id is not None:
            rate = agent.peer_rates.setdefault(transfer.peer_id, ThroughputEstimator())
            rate.add_sample(transfer.received, max(1e-6, now - transfer.started_at))
        agent.spawn(agent.intake.complete(transfer, held))

    def _on_failed(self, link: Any, event: RequestFailed, now: float) -> None:
        agent = self.agent
        transfer = self._transfer(link, event.request_id)
        if transfer is None:
            return
        del agent.transfers[transfer.segment]
        pid = transfer.peer_id
        assert pid is not None
        nb = agent.neighbours.get(pid)
        if event.reason == "busy":
            if nb is not None:
                delay = event.retry_after_s or agent.config.busy_backoff_s
                nb.choked_until = now + min(delay, 30.0)
        else:
            agent.add_avoid(transfer.segment, pid)
            if event.reason == "absent" and nb is not None:
                nb.have.discard(transfer.segment)
                nb.fetching.discard(transfer.segment)
        if event.reason == "aborted":
            agent.transfer_aborted(transfer)
        agent.wake()

    def _on_closed(self, link: Any, event: SessionClosed) -> None:
        agent = self.agent
        if id(link) in self.links_seen:
            self.links_seen.pop(id(link))
            self.bytes_uploaded_closed += link.session.stats.payload_bytes_sent
        for upload in self.uploads.for_link(link):
            self._end_upload(upload)
        pid = self._peer_id(link)
        nb = agent.neighbours.get(pid)
        if nb is not None and (agent.swarm is None or pid not in agent.swarm.links):
            del agent.neighbours[pid]
        for transfer in list(agent.transfers.values()):
            if transfer.link is link and not transfer.verifying:
                del agent.transfers[transfer.segment]
                agent.add_avoid(transfer.segment, pid)
        agent.wake()

    # -- our requests ------------------------------------------------------------------------

    def start_peer(self, segment: SegmentId, peer_id: str, offset: int, now: float) -> None:
        agent = self.agent
        if segment in agent.transfers or agent.swarm is None:
            return
        link = agent.swarm.links.get(peer_id)
        nb = agent.neighbours.get(peer_id)
        if link is None or not link.session.can_request:
            if nb is not None:
                nb.choked_until = now + agent.config.busy_backoff_s
            agent.wake()
            return
        held = agent.held_for(segment, offset)
        offset = len(held.buf)
        request_id = link.request(segment, offset)
        transfer = Transfer(segment, peer_id, now, offset, link=link, request_id=request_id)
        agent.transfers[segment] = transfer
        # Announced like a CDN fetch: we relay it cut-through, the last frame once verified.
        agent.announce_fetching(segment)

    # -- serving peers -------------------------------------------------------------------------

    def _on_request(self, link: Any, event: SegmentRequested, now: float) -> None:
        agent = self.agent
        pid = self._peer_id(link)
        rid, segment, offset = event.request_id, event.segment, event.offset
        if agent.config.leech_only or agent.penalties.is_banned(pid):
            link.reject_busy(rid, 0xFFFF)
            return
        if len(self.uploads) >= agent.config.max_uploads:
            self.busy_sent += 1
            link.reject_busy(rid, BUSY_RETRY_MS)
            return
        stored = agent.store.get(segment)
        data = stored if stored is not None else self.relay_copies.get(segment)
        upload = Upload(link, pid, rid, segment, offset, offset)
        if data is not None:
            if offset >= len(data):
                link.reject_absent(rid)
                return
            if stored is not None:
                agent.store.pin(segment)
                upload.pinned = True
            upload.total_bytes = len(data)
            link.respond(rid, len(data))
        elif segment in agent.transfers and segment in agent.held:
            held = agent.held[segment]
            if held.total is not None:
                if offset >= held.total:
                    link.reject_absent(rid)
                    return
                upload.total_bytes = held.total
                link.respond(rid, held.total)
        else:
            link.reject_absent(rid)
            return
        self.uploads.add(upload)
        self._pump(upload, now)

    def _verified_copy(self, segment: SegmentId) -> bytes | None:
        data = self.agent.store.get(segment)
        return data if data is not None else self.relay_copies.get(segment)

    def _source(self, upload: Upload) -> tuple[bytes | bytearray | None, int | None]:
        """The bytes held of the upload's segment (verified or still arriving), and its size."""
        data = self._verified_copy(upload.segment)
        if data is not None:
            return data, len(data)
        held = self.agent.held.get(upload.segment)
        if held is not None:
            return held.buf, held.total
        return None, None

    def segment_verified(self, segment: SegmentId, data: bytes) -> None:
        """Our copy of ``segment`` matched: keep it for the uploads relaying it (the rest,
        the last frame included, goes out from it)."""
        if self.uploads.for_segment(segment):
            self.relay_copies[segment] = data

    def pump_segment(self, segment: SegmentId) -> None:
        if not len(self.uploads):
            return
        now = self.agent.now()
        for upload in self.uploads.for_segment(segment):
            self._pump(upload, now)

    def _pump_all(self) -> None:
        self._pump_handle = None
        now = self.agent.now()
        for upload in self.uploads:
            self._pump(upload, now)

    def _pump(self, upload: Upload, now: float) -> None:
        """Hand the session what the source holds beyond what was sent, within the cap."""
        if upload.link.is_closed:
            self._end_upload(upload)
            return
        source, total = self._source(upload)
        if source is None:
            return  # the upstream went away; bytes may come back with a new fetch
        if upload.total_bytes is None:
            if total is None:
                return
            if upload.offset >= total:
                self.uploads.remove(upload)
                upload.link.reject_absent(upload.request_id)
                return
            upload.total_bytes = total
            if not upload.link.respond(upload.request_id, total):
                self.uploads.remove(upload)
                return
        limit = upload.total_bytes
        if self._verified_copy(upload.segment) is None:
            limit -= RELAY_HOLDBACK_BYTES  # the last frame waits for our copy to verify
        available = min(len(source), limit)
        wanted = available - upload.sent_until
        if wanted > 0:
            if self.bucket is None:
                cfg = self.agent.config
                self.bucket = TokenBucket(
                    cfg.upload_cap_bytes_per_s, now, cfg.upload_burst_bytes or 0
                )
            granted = self.bucket.take(wanted, now)
            if granted > 0:
                start = upload.sent_until
                chunk = bytes(source[start : start + granted])
                if not upload.link.send_data(upload.request_id, start, chunk):
                    self._end_upload(upload)
                    return
                upload.sent_until += granted
            if granted < wanted:
                self._schedule_pump(self.bucket.ready_at(wanted - granted, now))
        if upload.sent_until >= upload.total_bytes:
            self._end_upload(upload)

    def _schedule_pump(self, at: float) -> None:
        loop = self.agent._loop
        if self._pump_handle is not None or loop is None:
            return
        self._pump_handle = loop.call_at(max(at, loop.time() + 0.005), self._pump_all)

    def _end_upload(self, upload: Upload) -> None:
        self.uploads.remove(upload)
        if upload.segment in self.relay_copies and not self.uploads.for_segment(upload.segment):
            del self.relay_copies[upload.segment]
        if upload.pinned:
            upload.pinned = False
            evicted = self.agent.store.unpin(upload.segment)
            if evicted and self.agent.swarm is not None:
                self.agent.swarm.broadcast_lost(evicted)

    def abort_segment(self, segment: SegmentId) -> None:
        """Our copy of ``segment`` failed or was given up: ABORT (UPSTREAM_FAILED) every relay
        of it, so nobody downstream completes it."""
        self.abort_relays(segment)

    def abort_relays(self, segment: SegmentId, *, beyond: int | None = None) -> None:
        """ABORT (UPSTREAM_FAILED) the relays of unverified ``segment``: all of them, or
        those that were handed bytes past ``beyond``."""
        if self._verified_copy(segment) is not None:
            return
        for upload in self.uploads.for_segment(segment):
            if upload.pinned:
                continue
            if beyond is not None and upload.sent_until <= max(beyond, upload.offset):
                continue
            self._end_upload(upload)
            self.relays_aborted += 1
            if not upload.link.is_closed:
                upload.link.abort(upload.request_id, AbortReason.UPSTREAM_FAILED)


def _neighbour(peer_id: str) -> Neighbour:
    return Neighbour(peer_id)
