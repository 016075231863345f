// What others see of a SegmentExchange (segment_exchange.js), as peer_agent/core/exchange_view.py:
// the scheduler's view, the HELLO state of a new session and the size guess of a segment.
//
// View segments: every one the timeline lists that is not verified, not given up and not wholly
// behind the playhead, with its size estimate, when it became known, the bytes already held and
// the peers to avoid for it (those it failed with, and those we are relaying it to). Peers: every
// open neighbour with what it announced, its measured throughput, and BUSY/penalty back-offs.
// Transfers: every download in flight (one whose bytes are being verified counts as a CDN fetch:
// nothing is to be done about it). Pure functions.

import { segmentKey } from "./scheduler.js";
import { MAX_FETCHING_ENTRIES, MAX_HELLO_HAVE_SEGMENTS, MAX_SEGMENT_BYTES } from "./wire.js";

/** The scheduler's input (scheduler.js decide). */
export function buildView(ex, now, playheadS, { connectingUntil = 0, swarmSize = 0, rate = 1.0 } = {}) {
  // The neighbours we relay each segment to: pulling it from one of them would close a loop (its
  // bytes come from us), so they are avoided for it (docs/exchange.md §1).
  const relayed = new Map();
  for (const upload of ex.server.uploads.values()) {
    if (!relayed.has(upload.key)) relayed.set(upload.key, new Set());
    relayed.get(upload.key).add(upload.peerId);
  }
  const segments = [];
  const recent = { mean: undefined }; // the mean of the last 20 known sizes, once per view
  for (const entry of ex.timeline()) {
    const key = segmentKey(entry.segment);
    if (entry.start_s + entry.duration_s <= playheadS) continue;
    if (ex.verified.has(key) || ex.givenUp.has(key)) continue;
    segments.push({
      segment: entry.segment,
      start_s: entry.start_s,
      duration_s: entry.duration_s,
      size_bytes: ex.sizeEstimate(key, recent),
      known_since: entry.known_since,
      partial_bytes: ex.held.get(key)?.buf.length || 0,
      avoid: new Set([...(ex.avoid.get(key) || []), ...(relayed.get(key) || [])]),
    });
  }
  const peers = [];
  for (const nb of ex.neighbours.values()) {
    if (!nb.open) continue;
    peers.push({
      peer_id: nb.peer_id,
      have: new Set(nb.have),
      fetching: new Set(nb.fetching),
      throughput_bytes_per_s: ex.peerRates.get(nb.peer_id)?.estimate ?? null,
      rtt_s: ex.peerRtts.get(nb.peer_id)?.rtt ?? null,
      choked_until: Math.max(nb.choked_until, ex.penalties.blockedUntil(nb.peer_id)),
      uploads: nb.uploads && !ex.penalties.isBanned(nb.peer_id),
    });
  }
  const transfers = [...ex.transfers.values()].map((t) => ({
    segment: t.segment,
    peer_id: t.verifying ? null : t.peer_id,
    started_at: t.started_at,
    offset: t.offset,
    received_bytes: t.received,
    total_bytes: ex.held.get(t.key)?.total ?? null,
    last_data_at: t.last_data_at,
  }));
  return {
    now,
    self_id: ex.config.self_id,
    playhead_s: playheadS,
    rate,
    segments,
    have: new Set(ex.verified.keys()),
    transfers,
    peers,
    cdn_throughput_bytes_per_s: ex.cdnRate.estimate,
    cdn_tail_s: ex.cdnFetchTime.tail,
    connecting_until: connectingUntil,
    swarm_size: swarmSize,
  };
}

/** What a new session's HELLO announces: the store (newest 16384) and every download in
 * progress (newest 256, relayed cut-through) with its size when known. */
export function helloState(ex) {
  const have = ex.store.segments().slice(-MAX_HELLO_HAVE_SEGMENTS);
  const fetching = [...ex.transfers.values()].slice(-MAX_FETCHING_ENTRIES).map((t) => ({
    segment: t.segment,
    expected_bytes: Math.min(ex.sizes.get(t.key) || 0, MAX_SEGMENT_BYTES),
  }));
  return { have, fetching };
}

/** The size guess (docs/exchange.md §3): the known size; the byte range's length; the mean of
 * the last 20 known sizes; bandwidth x duration / 8; default_segment_bytes. `recent` caches
 * that mean for one view, so a view with many unknown sizes walks the table once. */
export function sizeEstimate(ex, key, entry, bandwidthBitsPerS, recent = { mean: undefined }) {
  const known = ex.sizes.get(key);
  if (known !== undefined) return known;
  if (entry !== undefined && entry.range_bytes !== null) return entry.range_bytes;
  if (ex.sizes.size) {
    if (recent.mean === undefined) recent.mean = recentMeanSize(ex.sizes);
    return recent.mean;
  }
  if (bandwidthBitsPerS && entry !== undefined) return Math.max(1, Math.trunc((bandwidthBitsPerS * entry.duration_s) / 8));
  return ex.config.default_segment_bytes;
}

/** The mean of the last 20 sizes of the table (insertion order), without copying it. */
function recentMeanSize(sizes) {
  const skip = sizes.size - 20;
  let i = 0;
  let sum = 0;
  let n = 0;
  for (const v of sizes.values()) {
    if (i++ < skip) continue;
    sum += v;
    n += 1;
  }
  return Math.trunc(sum / n);
}
