"""The scheduler's view of a :class:`~peer_agent.core.exchange.SegmentExchange`.

Segments: every one the timeline lists that is not verified, not given up and not wholly behind
the playhead, with its size estimate, when it became known, the bytes already held and the peers
to avoid for it (those it failed with, and those we are relaying it to). Peers: every open
neighbour with what it announced, its measured throughput, and BUSY/penalty back-offs.
Transfers: every download in flight (one whose bytes are being verified counts as a CDN fetch:
nothing is to be done about it).
"""

from __future__ import annotations

import itertools
import statistics
from typing import TYPE_CHECKING

from .exchange_actions import SegmentEntry
from .ids import SegmentId
from .scheduler import PeerView, SchedulerView, SegmentView, TransferView
from .wire import FetchingEntry

if TYPE_CHECKING:
    from .exchange import SegmentExchange

#: Limits of what HELLO can carry (docs/protocol.md §4).
HELLO_MAX_HAVE = 16384
HELLO_MAX_FETCHING = 256
MAX_EXPECTED_BYTES = 64 * 1024 * 1024


def hello_state(ex: SegmentExchange) -> tuple[list[SegmentId], list[FetchingEntry]]:
    """What a new session's HELLO announces: the store (newest 16384), and every download in
    progress (newest 256; relayed cut-through, the last frame once our copy verifies)."""
    have = list(ex.store)[-HELLO_MAX_HAVE:]
    busy = list(ex.transfers)[-HELLO_MAX_FETCHING:]
    return have, [FetchingEntry(s, min(ex.sizes.get(s, 0), MAX_EXPECTED_BYTES)) for s in busy]


def size_estimate(
    ex: SegmentExchange,
    segment: SegmentId,
    entry: SegmentEntry | None,
    bandwidth_bits_per_s: float | None,
) -> int:
    """The known size; else the byte range's length; else the mean of the last 20 known
    sizes; else bandwidth x duration; else ``default_segment_bytes`` (docs/exchange.md §3)."""
    known = ex.sizes.get(segment)
    if known is not None:
        return known
    if entry is not None and entry.range_bytes is not None:
        return entry.range_bytes
    if ex.sizes:  # the newest 20 only: never a copy of the whole table
        return int(statistics.fmean(itertools.islice(reversed(ex.sizes.values()), 20)))
    if bandwidth_bits_per_s and entry is not None:
        return max(1, int(bandwidth_bits_per_s * entry.duration_s / 8))
    return ex.config.default_segment_bytes


def build_view(
    ex: SegmentExchange,
    now: float,
    playhead_s: float,
    *,
    connecting_until: float = 0.0,
    swarm_size: int = 0,
    fetchers: tuple[str, ...] = (),
    fetchers_until: float = 0.0,
) -> SchedulerView:
    # The neighbours we relay each segment to: pulling it from one of them would close a loop
    # (its bytes come from us), so they are avoided for it (docs/exchange.md §1).
    relayed: dict[SegmentId, frozenset[str]] = {}
    for upload in ex.server.uploads:
        relayed[upload.segment] = relayed.get(upload.segment, frozenset()) | {upload.peer_id}
    segments = []
    for entry in ex.timeline():
        sid = entry.segment
        if entry.start_s + entry.duration_s <= playhead_s:
            continue
        if sid in ex.verified or sid in ex.given_up:
            continue
        held = ex.held.get(sid)
        segments.append(
            SegmentView(
                segment=sid,
                start_s=entry.start_s,
                duration_s=entry.duration_s,
                size_bytes=ex.size_estimate(sid),
                known_since=entry.known_since,
                partial_bytes=len(held.buf) if held is not None else 0,
                avoid=ex.avoid.get(sid, frozenset()) | relayed.get(sid, frozenset()),
            )
        )
    peers = []
    for pid, nb in ex.neighbours.items():
        if not nb.open:
            continue
        rate = ex.peer_rates.get(pid)
        rtt = ex.peer_rtts.get(pid)
        peers.append(
            PeerView(
                peer_id=pid,
                have=frozenset(nb.have),
                fetching=frozenset(nb.fetching),
                throughput_bytes_per_s=rate.estimate_bytes_per_s if rate else None,
                rtt_s=rtt.rtt_s if rtt else None,
                choked_until=max(nb.choked_until, ex.penalties.blocked_until(pid)),
                uploads=nb.uploads and not ex.penalties.is_banned(pid),
            )
        )
    transfers = []
    for t in ex.transfers.values():
        held = ex.held.get(t.segment)
        transfers.append(
            TransferView(
                segment=t.segment,
                peer_id=None if t.verifying else t.peer_id,
                started_at=t.started_at,
                offset=t.offset,
                received_bytes=t.received,
                total_bytes=held.total if held is not None else None,
                last_data_at=t.last_data_at,
            )
        )
    return SchedulerView(
        now=now,
        self_id=ex.config.self_id,
        playhead_s=playhead_s,
        segments=segments,
        have=frozenset(ex.verified),
        transfers=transfers,
        peers=peers,
        cdn_throughput_bytes_per_s=ex.cdn_rate.estimate_bytes_per_s,
        cdn_tail_s=ex.cdn_fetch_time.tail_s,
        rate=1.0,
        connecting_until=connecting_until,
        swarm_size=swarm_size,
        fetchers=fetchers,
        fetchers_until=fetchers_until,
    )
