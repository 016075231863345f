// The scheduler rules of docs/scheduling.md, for the browser: a pure function of one view.
// Same behaviour as peer_agent/core/scheduler.py; both pass docs/vectors/scheduler/.
//
// Segment ids are [rendition, sequence] pairs; sets of them are JS Sets of "r/s" keys (see
// segmentKey). Time is an argument (seconds), randomness a function returning [0, 1).

export const DEFAULT_SCHEDULER_CONFIG = Object.freeze({
  prefetch_window_s: 30.0,
  deadline_margin_s: 1.0,
  min_urgent_window_s: 1.5,
  cdn_latency_s: 0.1,
  assumed_cdn_bytes_per_s: 1_000_000.0,
  peer_stall_timeout_s: 1.5,
  stall_timeout_rtts: 2.0,
  cdn_stall_timeout_s: 0.6,
  untried_peer_bytes_per_s: 500_000.0,
  max_downloads_from_peers: 6,
  max_downloads_per_peer: 2,
  max_cdn_downloads: 2,
  cut_through: true,
  backup_delay_s: 2.0,
  election_lookback_segments: 3,
  seed_fetchers: 4.0,
  idle_recheck_s: 0.5,
  min_recheck_s: 0.05,
});

export function schedulerConfig(overrides = {}) {
  for (const key of Object.keys(overrides)) {
    if (!(key in DEFAULT_SCHEDULER_CONFIG)) throw new Error(`unknown scheduler option ${key}`);
  }
  return Object.freeze({ ...DEFAULT_SCHEDULER_CONFIG, ...overrides });
}

export const segmentKey = ([rendition, sequence]) => `${rendition}/${sequence}`;

// -- election (FNV-1a 32-bit over UTF-8 "<peer_id>/<rendition>/<sequence>") ---------------

const encoder = new TextEncoder();

export function fnv1a32(bytes) {
  let h = 0x811c9dc5;
  for (const byte of bytes) {
    h ^= byte;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function electionKey(peerId, segment) {
  return fnv1a32(encoder.encode(`${peerId}/${segment[0]}/${segment[1]}`));
}

function compareCandidates(a, b) {
  if (a.key !== b.key) return a.key - b.key;
  return a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

export function rankCandidates(candidates, segment) {
  return [...new Set(candidates)]
    .map((id) => ({ id, key: electionKey(id, segment) }))
    .sort(compareCandidates)
    .map((c) => c.id);
}

export function electionRank(selfId, candidates, segment) {
  const own = { id: selfId, key: electionKey(selfId, segment) };
  let rank = 0;
  for (const id of new Set(candidates)) {
    if (id !== selfId && compareCandidates({ id, key: electionKey(id, segment) }, own) < 0) rank++;
  }
  return rank;
}

// -- the rules ----------------------------------------------------------------------------

// Time the CDN needs to deliver `bytes` before the deadline margin: its latency and the bytes at
// its mean rate, plus whatever of the tail of this viewer's recent CDN fetches' excess over their
// bytes at the mean rate (view.cdn_tail_s, when measured) the margin does not cover already.
function cdnTime(bytes, view, cfg) {
  const rate = view.cdn_throughput_bytes_per_s || cfg.assumed_cdn_bytes_per_s;
  const tail = view.cdn_tail_s;
  const beyond = tail == null ? 0 : Math.max(0, tail - cfg.deadline_margin_s);
  return cfg.cdn_latency_s + beyond + bytes / rate;
}

// How long a CDN fetch of `bytes` usually takes on this path: the bytes at the mean rate plus the
// latency or, when larger, the tail of the excess (rule 1's too-slow test).
function cdnPlanned(bytes, view, cfg) {
  const rate = view.cdn_throughput_bytes_per_s || cfg.assumed_cdn_bytes_per_s;
  const tail = view.cdn_tail_s;
  const extra = tail == null || tail < cfg.cdn_latency_s ? cfg.cdn_latency_s : tail;
  return extra + bytes / rate;
}

function urgentWindow(bytes, view, cfg) {
  return Math.max(cfg.min_urgent_window_s, cdnTime(bytes, view, cfg) + cfg.deadline_margin_s);
}

// A peer's measured rate, else `untried` (load.untried: see inFlightLoad).
const peerRate = (peer, untried) => peer.throughput_bytes_per_s || untried;

// The measured round trip to a peer, else the fallback (the largest measured to any neighbour).
const peerRtt = (peer, fallback) => (peer && peer.rtt_s != null ? peer.rtt_s : fallback);

function weightedPick(peers, untried, random) {
  const ordered = [...peers].sort((a, b) => (a.peer_id < b.peer_id ? -1 : a.peer_id > b.peer_id ? 1 : 0));
  if (ordered.length === 1) return ordered[0];
  const weights = ordered.map((p) => peerRate(p, untried));
  const target = random() * weights.reduce((a, b) => a + b, 0);
  let cumulative = 0;
  for (let i = 0; i < ordered.length; i++) {
    cumulative += weights[i];
    if (target < cumulative) return ordered[i];
  }
  return ordered[ordered.length - 1];
}

// The keys of the `lookback` segments before `segment` in its rendition (fewer near 0).
function earlierKeys(segment, lookback) {
  const [rendition, sequence] = segment;
  const keys = [];
  for (let k = 1; k <= lookback && sequence - k >= 0; k++) keys.push(`${rendition}/${sequence - k}`);
  return keys;
}

function watchingClose(peer, earlier) {
  return earlier.some((key) => peer.have.has(key) || peer.fetching.has(key));
}

// Downloads in flight during one decide() call, updated as actions are planned.
function inFlightLoad(transfers, peers, cfg, cdnBytesPerS) {
  const perPeer = new Map();
  let fromPeers = 0;
  let fromCdn = 0;
  for (const t of transfers) {
    if (t.peer_id === null) fromCdn++;
    else {
      perPeer.set(t.peer_id, (perPeer.get(t.peer_id) || 0) + 1);
      fromPeers++;
    }
  }
  // The largest measured round trip to any neighbour (0 when none is measured).
  let rttFallback = 0;
  for (const p of peers) if (p.rtt_s != null && p.rtt_s > rttFallback) rttFallback = p.rtt_s;
  // The rate of an untried neighbour: untried_peer_bytes_per_s, but no more than the measured CDN
  // rate (the CDN's path crosses the same access link; a peer's uplink is no wider than a CDN's).
  const cdnRate = cdnBytesPerS;
  const untried = cdnRate && cdnRate < cfg.untried_peer_bytes_per_s ? cdnRate : cfg.untried_peer_bytes_per_s;
  return { perPeer, fromPeers, fromCdn, rttFallback, untried, of: (id) => perPeer.get(id) || 0 };
}

/**
 * When a kept transfer's stall check (decide's stall_checks) fires if no byte comes after
 * lastByteAt: timeout_s after it, or late_timeout_s after it once late_from has passed.
 */
export function stallDueAt(check, lastByteAt) {
  return Math.min(lastByteAt + check.timeout_s, Math.max(check.late_from, lastByteAt + check.late_timeout_s));
}

// Whether a neighbour other than the transfer's peer, not avoided for the segment, has it and is
// usable for the rest (rule 4's test): then the round-trip stretch of the stall timeout does not
// apply (a cancel is no offence, and that neighbour can deliver in time).
function otherHolderUsable(slot, transfer, remaining, view, peers, load, cfg) {
  const key = segmentKey(slot.seg.segment);
  const latestFinish = slot.deadline - cfg.deadline_margin_s;
  const firstByteBy = latestFinish - cdnTime(remaining, view, cfg);
  return peers.some(
    (p) =>
      p.uploads &&
      p.peer_id !== transfer.peer_id &&
      !slot.avoid.has(p.peer_id) &&
      p.have.has(key) &&
      p.choked_until <= view.now &&
      load.of(p.peer_id) < cfg.max_downloads_per_peer &&
      view.now + peerRtt(p, load.rttFallback) <= firstByteBy &&
      view.now + peerRtt(p, load.rttFallback) + remaining / peerRate(p, load.untried) <= latestFinish,
  );
}

// Phase 1, a peer transfer in flight: keep it (null; its stall check, with the time it fires
// unless a byte comes, goes to stallChecks) or cancel it and return the slot to plan again from
// the byte it reached, without that peer.
function checkTransfer(slot, transfer, view, peers, load, cfg, actions, wakes, stallChecks) {
  const now = view.now;
  const total = transfer.total_bytes || slot.seg.size_bytes;
  const reached = transfer.offset + transfer.received_bytes;
  const remaining = Math.max(0, total - reached);
  const lastData = transfer.last_data_at ?? transfer.started_at;
  const elapsed = now - transfer.started_at;
  const peer = peers.find((p) => p.peer_id === transfer.peer_id);
  let transferRate;
  if (transfer.received_bytes > 0 && elapsed > 0) transferRate = transfer.received_bytes / elapsed;
  else if (peer) transferRate = peerRate(peer, load.untried);
  else transferRate = load.untried;
  const projected = now + remaining / transferRate;
  const lastCdnStart = slot.deadline - cdnTime(remaining, view, cfg) - cfg.deadline_margin_s;
  const base = cfg.peer_stall_timeout_s;
  let stretch = cfg.stall_timeout_rtts * peerRtt(peer, load.rttFallback);
  // Another neighbour holds it and can deliver in time: no waiting longer.
  if (stretch > 0 && otherHolderUsable(slot, transfer, remaining, view, peers, load, cfg)) stretch = 0;
  const stallTimeout = base + stretch;
  const quiet = now - lastData;
  // The round-trip stretch never runs past the last moment the CDN can still make the deadline:
  // from then on, silence for the flat timeout is a stall.
  const stalled = quiet >= stallTimeout || (quiet >= base && now >= lastCdnStart);
  // At the last moment the CDN can still make the deadline, a transfer that has not shown a single
  // byte has nothing to project from (an untried peer's assumed rate is no evidence): too slow.
  const late = projected > slot.deadline - cfg.deadline_margin_s || transfer.received_bytes === 0;
  const tooSlow = late && now >= lastCdnStart;
  if (!(stalled || tooSlow)) {
    const check = {
      segment: slot.seg.segment,
      timeout_s: stallTimeout,
      late_timeout_s: base,
      late_from: lastCdnStart,
    };
    stallChecks.push({ at: stallDueAt(check, lastData), check });
    wakes.push(lastCdnStart);
    return null;
  }
  actions.push({
    action: "cancel",
    segment: slot.seg.segment,
    peer_id: transfer.peer_id,
    reason: stalled ? "stalled" : "too_slow",
  });
  load.perPeer.set(transfer.peer_id, load.of(transfer.peer_id) - 1);
  load.fromPeers--;
  return { ...slot, offset: reached, avoid: new Set([...slot.avoid, transfer.peer_id]) };
}

// Phase 1, a CDN fetch in flight: keep it (null), or, once its segment is urgent and no byte has
// come for cdn_stall_timeout_s (plus cdn_latency_s before the first), or it is too slow (below),
// cancel it ("stalled", "too_slow") and
// return the slot to fetch the rest from the CDN again at once (a new request from the byte it
// reached: a TCP connection that lost its SYN or a tail packet stays silent for a retransmission
// timeout, 1 s and more), provided a new fetch of the rest (cdnTime) can still make the deadline;
// past that the fetch in flight is kept (on a starved machine restarts only add requests).
function checkCdnTransfer(slot, transfer, view, load, cfg, actions, cdnChecks) {
  const timeout = cfg.cdn_stall_timeout_s;
  const total = transfer.total_bytes || slot.seg.size_bytes;
  const reached = transfer.offset + transfer.received_bytes;
  const remaining = total - reached;
  if (timeout <= 0 || remaining <= 0) return null; // off, or every byte is in (being verified)
  const quietFrom =
    transfer.last_data_at == null ? transfer.started_at + cfg.cdn_latency_s : transfer.last_data_at;
  const urgentAt = slot.deadline - urgentWindow(remaining, view, cfg);
  const due = Math.max(urgentAt, quietFrom + timeout);
  let tooSlow = false;
  if (view.cdn_tail_s != null) {
    // Too slow: still delivering, but at its own rate so far it would finish past the deadline
    // and take longer than a fetch of its bytes usually does (cdnPlanned, tail included); judged
    // once it has run for the timeout.
    const judgedAt = Math.max(urgentAt, transfer.started_at + timeout);
    const elapsed = view.now - transfer.started_at;
    if (view.now < judgedAt) cdnChecks.push(judgedAt);
    else if (transfer.received_bytes > 0) {
      const projected = view.now + (remaining * elapsed) / transfer.received_bytes;
      const planned = cdnPlanned(total - transfer.offset, view, cfg);
      tooSlow = projected > slot.deadline && projected - transfer.started_at > planned;
    }
  }
  if (view.now < due && !tooSlow) {
    cdnChecks.push(due); // in wake_at only: bytes that keep coming move it later
    return null;
  }
  // a new request could not make the deadline either: no restart storms
  if (slot.deadline - view.now < cdnTime(remaining, view, cfg)) {
    if (view.now < due) cdnChecks.push(due);
    return null;
  }
  const reason = view.now >= due ? "stalled" : "too_slow";
  actions.push({ action: "cancel", segment: slot.seg.segment, peer_id: null, reason });
  load.fromCdn--;
  return { ...slot, offset: reached };
}

// Phase 2: an urgent segment goes to the CDN; otherwise a usable neighbour that has it (or is
// fetching it) serves it, or we wait for one. Returns null when an action was planned, else the
// time the segment turns urgent (the election decides).
function fromUrgencyOrPeers(slot, view, peers, load, cfg, random, actions, wakes) {
  const now = view.now;
  const { seg, offset, avoid } = slot;
  const key = segmentKey(seg.segment);
  const remaining = Math.max(0, seg.size_bytes - offset);
  const window = urgentWindow(remaining, view, cfg);
  if (slot.deadline - now <= window) {
    actions.push({ action: "fetch_cdn", segment: seg.segment, offset, reason: "urgent" });
    load.fromCdn++;
    return null;
  }
  const urgentAt = slot.deadline - window;
  wakes.push(urgentAt);
  const latestFinish = slot.deadline - cfg.deadline_margin_s;
  // the first byte must be able to come before the last moment the CDN can still make the
  // deadline (a transfer without a byte then is given up): no request that cannot get one
  const firstByteBy = latestFinish - cdnTime(remaining, view, cfg);
  const usable = (p) =>
    p.choked_until <= now &&
    load.of(p.peer_id) < cfg.max_downloads_per_peer &&
    now + peerRtt(p, load.rttFallback) <= firstByteBy &&
    now + peerRtt(p, load.rttFallback) + remaining / peerRate(p, load.untried) <= latestFinish;

  const sources = peers.filter((p) => p.uploads && !avoid.has(p.peer_id));
  const holders = sources.filter((p) => p.have.has(key));
  const fetchers = sources.filter((p) => p.fetching.has(key));
  if (load.fromPeers < cfg.max_downloads_from_peers) {
    let reason = "have";
    let candidates = holders.filter(usable);
    if (candidates.length === 0 && cfg.cut_through) {
      candidates = fetchers.filter(usable);
      reason = "cut_through";
    }
    if (candidates.length > 0) {
      const chosen = weightedPick(candidates, load.untried, random);
      actions.push({ action: "fetch_peer", segment: seg.segment, peer_id: chosen.peer_id, offset, reason });
      load.perPeer.set(chosen.peer_id, load.of(chosen.peer_id) + 1);
      load.fromPeers++;
      return null;
    }
  }
  if (holders.length > 0 || fetchers.length > 0) {
    const retry = [...holders, ...fetchers].map((p) => p.choked_until).filter((t) => t > now);
    const until = Math.min(urgentAt, ...retry);
    actions.push({ action: "wait", segment: seg.segment, reason: "awaiting_peer", until });
    wakes.push(until);
    return null;
  }
  return urgentAt;
}

// Our rank in the local election: among ourselves and the uploading neighbours watching close by.
function localRank(segment, view, peers, cfg) {
  const earlier = earlierKeys(segment, cfg.election_lookback_segments);
  const candidateIds = [
    view.self_id,
    ...peers.filter((p) => p.uploads && watchingClose(p, earlier)).map((p) => p.peer_id),
  ];
  return electionRank(view.self_id, candidateIds, segment);
}

// Phase 3, nobody near has it or is fetching it: elect one CDN fetcher among those watching
// close by; rank k backs up after k * backup_delay_s. Under the signaling server's assignment
// in force, the listed fetchers, ordered per segment by the election key, take turns
// backup_delay_s apart (a silent fetcher is covered by the next); a viewer not listed holds the
// local election one backup_delay_s later, so a copy relayed from the fetcher has that long to
// reach its neighbourhood first.
function elect(slot, urgentAt, view, peers, load, cfg, actions, wakes) {
  const now = view.now;
  const rate = view.rate > 0 ? view.rate : 1.0;
  const { seg, offset } = slot;
  const delay = cfg.backup_delay_s;
  const enteredWindowAt = now - (cfg.prefetch_window_s - slot.ahead) / rate;
  const wantedSince = Math.max(seg.known_since, enteredWindowAt);
  const fetchers = view.fetchers || [];
  const order = fetchers.length > 0 && now < (view.fetchers_until || 0) ? rankCandidates(fetchers, seg.segment) : null;
  const listed = order !== null && order.includes(view.self_id);
  let fireAt;
  let waiting;
  let fetching;
  if (listed) {
    const rank = order.indexOf(view.self_id);
    fireAt = wantedSince + rank * delay;
    [waiting, fetching] = ["not_elected", rank === 0 ? "assigned" : "backup"];
  } else if (order !== null) {
    fireAt = wantedSince + (1 + localRank(seg.segment, view, peers, cfg)) * delay;
    [waiting, fetching] = ["not_assigned", "backup"];
  } else {
    const rank = localRank(seg.segment, view, peers, cfg);
    fireAt = wantedSince + rank * delay;
    if (rank === 0 && view.swarm_size > 0 && cfg.seed_fetchers > 0) {
      const share = cfg.seed_fetchers / view.swarm_size;
      if (share < 1 && electionKey(view.self_id, seg.segment) >= share * 2 ** 32) fireAt += delay;
    }
    [waiting, fetching] = ["not_elected", rank === 0 ? "elected" : "backup"];
  }
  if (!listed && now < (view.connecting_until || 0) && peers.length === 0) {
    const until = Math.min(view.connecting_until, urgentAt);
    actions.push({ action: "wait", segment: seg.segment, reason: "connecting", until });
    wakes.push(until);
  } else if (now < fireAt) {
    const until = Math.min(fireAt, urgentAt);
    actions.push({ action: "wait", segment: seg.segment, reason: waiting, until });
    wakes.push(until);
  } else if (load.fromCdn < cfg.max_cdn_downloads) {
    actions.push({ action: "fetch_cdn", segment: seg.segment, offset, reason: fetching });
    load.fromCdn++;
  } else {
    actions.push({ action: "wait", segment: seg.segment, reason: "cdn_busy", until: urgentAt });
  }
}

/**
 * Decide what to fetch, from where, at view.now: every segment in the prefetch window, in
 * playback order, through three phases (checkTransfer, fromUrgencyOrPeers, elect).
 * view: { now, self_id, playhead_s, rate, segments: [{segment, start_s, duration_s, size_bytes,
 *   known_since, partial_bytes, avoid: Set}], have: Set<key>, transfers: [{segment, peer_id
 *   (null = CDN), started_at, offset, received_bytes, total_bytes, last_data_at}], peers:
 *   [{peer_id, have: Set<key>, fetching: Set<key>, throughput_bytes_per_s, choked_until,
 *   uploads, rtt_s (null: unknown)}], cdn_throughput_bytes_per_s, cdn_tail_s (null: not measured),
 *   connecting_until, swarm_size,
 *   fetchers (the signaling server's assignment: peer ids), fetchers_until (it holds until then) }
 * Returns { actions: [...], wake_at, stall_checks: [{segment, timeout_s, late_timeout_s,
 *   late_from}] (the peer transfers kept; wake_at includes each one's stallDueAt of its last
 *   byte), wake_at_flowing (wake_at without the stall checks and the CDN silence checks: when
 *   to wake if every checked transfer keeps receiving bytes) }.
 */
export function decide(view, cfg, random) {
  const now = view.now;
  const rate = view.rate > 0 ? view.rate : 1.0;
  const inFlight = new Map(view.transfers.map((t) => [segmentKey(t.segment), t]));
  const peers = view.peers.filter((p) => p.peer_id !== view.self_id);
  const load = inFlightLoad(view.transfers, peers, cfg, view.cdn_throughput_bytes_per_s);
  const actions = [];
  const wakes = [now + cfg.idle_recheck_s];
  const stallChecks = [];
  const cdnChecks = []; // when each CDN fetch kept turns silent-and-urgent if no byte comes

  const segments = [...view.segments].sort((a, b) => a.start_s - b.start_s);
  for (const seg of segments) {
    const key = segmentKey(seg.segment);
    if (view.have.has(key) || seg.start_s + seg.duration_s <= view.playhead_s) continue;
    const ahead = seg.start_s - view.playhead_s;
    if (ahead > cfg.prefetch_window_s) {
      wakes.push(now + (ahead - cfg.prefetch_window_s) / rate);
      break;
    }
    const deadline = now + Math.max(0, ahead) / rate;
    let slot = { seg, ahead, deadline, offset: seg.partial_bytes || 0, avoid: seg.avoid || new Set() };
    const transfer = inFlight.get(key);
    if (transfer !== undefined) {
      if (transfer.peer_id === null) {
        const again = checkCdnTransfer(slot, transfer, view, load, cfg, actions, cdnChecks);
        if (again === null) continue; // the CDN is on it: nothing can do better
        const offset = again.offset;
        actions.push({ action: "fetch_cdn", segment: seg.segment, offset, reason: "urgent" });
        load.fromCdn++;
        continue;
      }
      slot = checkTransfer(slot, transfer, view, peers, load, cfg, actions, wakes, stallChecks);
      if (slot === null) continue;
    }
    const urgentAt = fromUrgencyOrPeers(slot, view, peers, load, cfg, random, actions, wakes);
    if (urgentAt !== null) elect(slot, urgentAt, view, peers, load, cfg, actions, wakes);
  }
  const soonest = now + cfg.min_recheck_s;
  const flowing = Math.max(Math.min(...wakes), soonest);
  const wakeAt = Math.max(Math.min(flowing, ...stallChecks.map((c) => c.at), ...cdnChecks), soonest);
  const checks = stallChecks.map((c) => c.check);
  return { actions, wake_at: wakeAt, stall_checks: checks, wake_at_flowing: flowing };
}
