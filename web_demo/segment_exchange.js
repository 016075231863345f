// The segment exchange for the browser: the policy above the peer sessions, sans-I/O. The same
// object as peer_agent/core/exchange.py, following docs/exchange.md; both pass the vectors of
// docs/vectors/exchange/.
//
// SegmentExchange decides what to do with bytes, requests and verdicts: downloads in flight
// (from the CDN or a peer), the bytes held of each segment, avoid lists and sizes, verification
// outcomes (penalties, bans, refetches), the store and what is announced, and the peers'
// requests (exchange_serve.js); exchange_view.js builds what others see of it. Inputs are method
// calls with an explicit `now` (seconds on the caller's monotonic clock); the caller pulls
// actions with nextAction(), re-arms one timer from getTimer() and builds the scheduler's input
// with schedulerView(). It never does I/O, reads a clock or draws randomness.
//
// Segments are [rendition, sequence] (Sets and Maps of them use segmentKey "r/s"); session
// events are session.js's ({rendition, sequence} segments). Actions are frozen objects named by
// `action`, with the fields of docs/vectors/exchange/README.md (segments as [r, s]; bytes as
// Uint8Array copies; close_link also carries a `reason` text).

import { segmentKey } from "./scheduler.js";
import { FetchTimeEstimator, RttEstimator, SegmentStore, ThroughputEstimator } from "./store.js";
import { CloseCode, DATA_HEADER_BYTES, DEFAULT_DATA_FRAME_BYTES, MAX_SEGMENT_BYTES } from "./wire.js";
import { UploadServer, act } from "./exchange_serve.js";
import { Held, Penalties, Verdict } from "./exchange_state.js";
import { Offence, Outcome, Reputation, peerSubject, reputationRules } from "./exchange_reputation.js";
import { buildView, helloState, sizeEstimate } from "./exchange_view.js";
import { StallWatch } from "./exchange_stalls.js";
import { PromiseBook } from "./exchange_promises.js";

export { Verdict };

/** Every option with its default (docs/exchange.md §2). */
export const DEFAULT_EXCHANGE_CONFIG = Object.freeze({
  self_id: "", // our peer id (the scheduler's self_id)
  max_uploads: 4, // peer requests served at once; one more is answered BUSY
  upload_cap_bytes_per_s: null, // upload cap over all uploads (null: none)
  upload_burst_bytes: null, // bucket size (null: a quarter second of the cap, at least 16384)
  leech_only: false, // never upload, never announce
  busy_retry_after_ms: 500, // hint of the BUSY sent beyond max_uploads
  busy_backoff_s: 0.5, // back-off after a BUSY without hint, or a request the session refused
  max_busy_backoff_s: 30.0, // a BUSY hint is obeyed up to this
  max_hash_retries: 3, // CDN refetches of a segment that failed its hash before giving up
  relay_holdback_bytes: DEFAULT_DATA_FRAME_BYTES - DATA_HEADER_BYTES, // withheld of an unverified segment: its final DATA frame (16375; docs/exchange.md, "Hold-back")
  store_max_bytes: 256 * 1024 * 1024, // verified segments kept (oldest out first, pinned never)
  ban_after_failures: 2, // hash failures a peer contributes to before it is banned
  penalty_s: 10.0, // a contributor to a failed segment is not asked for this long
  ban_sole_contributor: true, // a failed segment whose peer bytes all came from one peer bans it at once
  default_segment_bytes: 500_000, // size guess when nothing is known
  // fairness (docs/exchange.md, "Fairness")
  max_uploads_per_peer: 2, // one neighbour's requests served at once; one more is answered BUSY
  max_serves_per_segment: 1, // whole copies of one segment served to one neighbour; one more: BUSY(0xFFFF)
  peer_window_s: 30.0, // sliding window over which the bytes served to each neighbour count
  peer_window_copies: 3.0, // copies of the stream (bitrate x window) a neighbour may draw in it
  default_bitrate_bits_per_s: 5_000_000, // the bitrate assumed while the timeline gives none
  upload_cap_copies: 1.5, // no explicit cap: this many copies of the stream per open neighbour
  cap_backlog_s: 2.0, // BUSY while uploads still owe more than this many seconds of the cap
  retain_behind_s: 30.0, // margin behind the playhead whose records forgetBefore keeps (§3 Bounds)
  // reputation (docs/exchange.md, "Reputation"): penalty points per offence
  points_absent_after_have: 4.0, // an ABSENT for a segment the peer announced (HAVE): one refuses
  points_request_after_have: 2.0, // a request for a segment the peer announced (refused BUSY(65535))
  points_absent_after_fetching: 1.0, // an ABSENT for a segment the peer announced FETCHING (not HAVE)
  stall_s: 1.0, // a peer download cancelled after this long without a byte makes it a stall suspect,
  stall_rtts: 2.0, // ... plus this many measured round trips, if it owed bytes (it announced HAVE)
  stall_offence_s: 3.0, // a suspect's stall is an offence only after this long (+ stall_rtts) with no progress
  points_stall: 2.0, // a stall suspicion that matured (a session we closed TIMEOUT is none)
  points_abandoned: 3.0, // ... of a download abandoned while its link was alive (frames after its last byte, segment HAVE)
  points_protocol_error: 4.0, // a session we closed PROTOCOL_ERROR or LIMIT_EXCEEDED
  points_unknown_request: 4.0, // a session we closed STATE_VIOLATION (data for an unknown id, ...)
  points_hash_failure: 3.0, // a hash failure the peer contributed to
  points_broken_promise: 1.0, // a cut-through download we gave up whose peer never announced the segment HAVE before it left what we retain
  max_promises_per_peer: 64, // open promises kept per peer id (the oldest dropped uncharged beyond)
  decay_points_per_s: 0.02, // points lost per second (never below 0)
  refuse_points: 4.0, // disconnect and refuse for refuse_s, doubled at each further refusal
  refuse_s: 30.0,
  max_refuse_s: 3600.0,
  ban_points: 6.0, // the peer id and its identity keys are banned
});

/** Peers whose identity keys are remembered at most (oldest HELLO first out). */
export const MAX_PEER_KEYS = 1024;

/** Our own closes that count as an offence of the remote (docs/exchange.md §8b); not TIMEOUT (no
 * HELLO in time after the SDP exchange): a handshake slow on a loaded machine is no lie. */
const CLOSE_OFFENCES = new Map([
  [CloseCode.PROTOCOL_ERROR, Offence.PROTOCOL_ERROR],
  [CloseCode.LIMIT_EXCEEDED, Offence.PROTOCOL_ERROR],
  [CloseCode.STATE_VIOLATION, Offence.UNKNOWN_REQUEST],
]);

/** The peers (sorted) whose runs of a failed copy `bad` (spans: [first byte, source] of each run,
 * null the CDN) differ from the verified copy `good`; a copy shorter than `good` whose runs all
 * match was cut short by its last run's source (docs/exchange.md §6). */
export function provenBad(bad, spans, good) {
  const guilty = new Set();
  spans.forEach(([start, source], i) => {
    const end = i + 1 < spans.length ? spans[i + 1][0] : bad.length;
    if (source === null) return;
    if (end > good.length) {
      guilty.add(source);
      return;
    }
    for (let j = start; j < end; j++) {
      if (bad[j] !== good[j]) {
        guilty.add(source);
        return;
      }
    }
  });
  const last = spans[spans.length - 1];
  if (!guilty.size && bad.length < good.length && last !== undefined && last[1] !== null) guilty.add(last[1]);
  return [...guilty].sort();
}

export function exchangeConfig(overrides = {}) {
  for (const key of Object.keys(overrides)) {
    if (!(key in DEFAULT_EXCHANGE_CONFIG)) throw new Error(`unknown exchange option ${key}`);
  }
  const c = { ...DEFAULT_EXCHANGE_CONFIG, ...overrides };
  if (!(c.max_uploads >= 0)) throw new Error("max_uploads must be >= 0");
  if (c.upload_cap_bytes_per_s !== null && !(c.upload_cap_bytes_per_s > 0)) {
    throw new Error("upload_cap_bytes_per_s must be positive (null: no cap)");
  }
  if (!(c.busy_retry_after_ms >= 0 && c.busy_retry_after_ms <= 0xffff)) throw new Error("busy_retry_after_ms must be a u16");
  if (!(c.relay_holdback_bytes >= 1)) throw new Error("relay_holdback_bytes must be >= 1");
  if (!(c.max_hash_retries >= 0)) throw new Error("max_hash_retries must be >= 0");
  if (!(c.store_max_bytes > 0)) throw new Error("store_max_bytes must be positive");
  if (!(c.max_promises_per_peer >= 1)) throw new Error("max_promises_per_peer must be >= 1");
  if (!(c.max_uploads_per_peer >= 1 && c.max_serves_per_segment >= 1)) {
    throw new Error("max_uploads_per_peer and max_serves_per_segment must be >= 1");
  }
  if (!(c.peer_window_s > 0 && c.peer_window_copies > 0)) throw new Error("peer_window_s and peer_window_copies must be positive");
  if (!(c.cap_backlog_s >= 0)) throw new Error("cap_backlog_s must be >= 0");
  const points = [c.points_absent_after_have, c.points_request_after_have, c.points_absent_after_fetching, c.points_stall, c.points_abandoned, c.points_protocol_error, c.points_unknown_request, c.points_hash_failure, c.points_broken_promise, c.decay_points_per_s];
  if (!points.every((p) => p >= 0)) throw new Error("penalty points and decay_points_per_s must be >= 0");
  if (!(c.stall_s > 0) || !(c.stall_offence_s > 0)) throw new Error("stall_s and stall_offence_s must be positive");
  if (!(c.stall_rtts >= 0)) throw new Error("stall_rtts must be >= 0");
  if (!(c.refuse_points > 0 && c.refuse_points <= c.ban_points)) throw new Error("need 0 < refuse_points <= ban_points");
  if (!(c.refuse_s >= 0 && c.refuse_s <= c.max_refuse_s)) throw new Error("need 0 <= refuse_s <= max_refuse_s");
  if (!(c.default_bitrate_bits_per_s > 0 && c.upload_cap_copies > 0)) {
    throw new Error("default_bitrate_bits_per_s and upload_cap_copies must be positive");
  }
  if (!(c.retain_behind_s >= 0)) throw new Error("retain_behind_s must be >= 0");
  return Object.freeze(c);
}

const arr = (s) => [s.rendition, s.sequence];

export class SegmentExchange {
  constructor(config = exchangeConfig()) {
    this.config = config;
    this.store = new SegmentStore(config.store_max_bytes);
    this.penalties = new Penalties({ ban_after_failures: config.ban_after_failures, penalty_s: config.penalty_s });
    this._actions = [];
    this.reputation = new Reputation(reputationRules(config));
    this.linkKeys = new Map(); // link -> identity keys the caller gave (setLinkKeys)
    this.peerKeys = new Map(); // peer id -> the keys of its newest HELLO's link (at most MAX_PEER_KEYS)
    this.server = new UploadServer(config, this.store, (key) => this.inProgress(key), (a) => this._actions.push(a), {
      bitrateBitsPerS: () => this._bandwidthBitsPerS,
      neighbourCount: () => [...this.neighbours.values()].filter((nb) => nb.open).length,
    });
    this._timeline = new Map(); // key -> {segment, start_s, duration_s, known_since, range_bytes}
    this._bandwidthBitsPerS = null;
    this.sha256 = false; // a manifest is in use: peer bytes with no listed hash are refetched
    this.transfers = new Map(); // key -> transfer
    this.held = new Map(); // key -> Held
    this.avoid = new Map(); // key -> Set of peer ids
    this.sizes = new Map(); // key -> bytes
    this.verified = new Map(); // key -> segment
    this.givenUp = new Map(); // key -> segment: failed its hash more than max_hash_retries times
    this.hashRetries = new Map();
    // key -> [[bad copy, spans], ...]: copies that failed their hash with several peer
    // contributors, kept until a copy verifies; then only the contributors whose bytes differ are
    // charged (docs/exchange.md §6). At most max_hash_retries + 1 per segment.
    this.blamePending = new Map();
    this.neighbours = new Map(); // peer id -> {peer_id, have, fetching, uploads, choked_until, open, links}
    this.peerRates = new Map(); // peer id -> ThroughputEstimator
    this.peerRtts = new Map(); // peer id -> RttEstimator (REQUEST -> RESPONSE delays)
    this.stalls = new StallWatch(); // peers suspected of stalling, judged once their links stay dead
    // cut-through downloads we gave up, until the peer announces the segment HAVE or the segment
    // leaves what we retain (a broken promise: docs/exchange.md §8b)
    this.promises = new PromiseBook(this.config.max_promises_per_peer, MAX_PEER_KEYS);
    this.cdnRate = new ThroughputEstimator();
    this.cdnFetchTime = new FetchTimeEstimator(); // a CDN fetch's excess over its bytes at the mean rate (cdn_tail_s)
    this._nextFetchId = 1;
    this.bytesCdn = 0;
    this.bytesP2p = 0;
    this.hashFailures = 0;
    this.unverifiable = 0;
    this.cdnFailures = 0;
    this.cdnResumes = 0;
    // Cumulative: segments verified / given up, and verified records dropped as no longer
    // retained (the maps above only hold the retained ones).
    this.verifiedCount = 0;
    this.givenUpCount = 0;
    this.verifiedForgotten = 0;
  }

  // --- outputs --------------------------------------------------------------------------------

  nextAction() {
    return this._actions.length ? this._actions.shift() : null;
  }

  /** When handleTimer is due (the upload cap's next refill, a stall suspicion to judge); null: never. */
  getTimer() {
    const due = [this.server.getTimer(), this.stalls.nextDue()].filter((t) => t !== null);
    return due.length ? Math.min(...due) : null;
  }

  handleTimer(now) {
    this.server.handleTimer(now);
    this._judgeStalls(now);
  }

  get bytesUploaded() {
    return this.server.bytesUploaded;
  }

  /** What a new session's HELLO announces: the store and every download in progress. */
  helloState() {
    return helloState(this);
  }

  /** Bytes held of a download in progress and its size once known (for relays); or null. */
  inProgress(key) {
    const held = this.held.get(key);
    if (held === undefined || !this.transfers.has(key)) return null;
    return { buf: held.buf, total: held.total };
  }

  /** Peer ids (sorted) that contributed bytes to the segment held now, and whether the CDN did. */
  contributors(segment) {
    const held = this.held.get(segmentKey(segment));
    if (held === undefined) return { peers: [], cdn: false };
    return { peers: [...held.contributors].filter((p) => p !== null).sort(), cdn: held.contributors.has(null) };
  }

  // --- the timeline ---------------------------------------------------------------------------

  timeline() {
    return [...this._timeline.values()];
  }

  /** The segments the playlist lists now, in order (replaces the previous list). */
  setTimeline(entries, { bandwidthBitsPerS = null } = {}) {
    this._timeline = new Map(entries.map((e) => [segmentKey(e.segment), { range_bytes: null, ...e }]));
    if (bandwidthBitsPerS !== null && bandwidthBitsPerS !== undefined) this._bandwidthBitsPerS = bandwidthBitsPerS;
  }

  /** Whether a manifest is in use (else only sizes are checked). */
  setSha256(enabled) {
    this.sha256 = Boolean(enabled);
  }

  /** Drop partial segments (and their avoid lists) wholly behind the playhead or gone from the
   * timeline and not being downloaded; relays of them are aborted. Then every record of a
   * segment no longer retained (docs/exchange.md §3, "Bounds") goes. */
  forgetBefore(playheadS, now) {
    for (const key of [...this.held.keys()]) {
      const entry = this._timeline.get(key);
      const gone = entry === undefined || entry.start_s + entry.duration_s < playheadS;
      if (!this.transfers.has(key) && gone) {
        this._dropHeld(key);
        this.avoid.delete(key);
      }
    }
    this.server.forgetSegments((key) => this._timeline.has(key));
    const retained = this._prune(playheadS);
    if (retained !== null) this._judgePromises(retained, now);
  }

  /** Whether a segment's records are kept at `playheadS` (docs/exchange.md §3, "Bounds"); null:
   * no timeline yet, everything is. */
  _retained(playheadS) {
    if (!this._timeline.size) return null;
    const floorS = playheadS - this.config.retain_behind_s;
    const listed = new Set();
    let lowest = Infinity;
    let highest = -Infinity;
    for (const [key, e] of this._timeline) {
      highest = Math.max(highest, e.segment[1]);
      if (e.start_s + e.duration_s >= floorS) {
        listed.add(key);
        lowest = Math.min(lowest, e.segment[1]);
      }
    }
    if (!listed.size) lowest = highest + 1;
    return (key) => {
      if (this.transfers.has(key)) return true;
      if (this._timeline.has(key)) return listed.has(key);
      return Number(key.split("/")[1]) >= lowest;
    };
  }

  /** Drop every record of the segments no longer retained (the store's unpinned copies are
   * announced LOST). */
  _prune(playheadS) {
    const retained = this._retained(playheadS);
    if (retained === null) return null;
    const lost = [];
    for (const key of this.store.keys()) {
      if (retained(key) || this.store.isPinned(key)) continue;
      this.store.discard(key);
      lost.push(key.split("/").map(Number));
    }
    if (lost.length && !this.config.leech_only) this._actions.push(act("announce_lost", { segments: lost }));
    for (const table of [this.sizes, this.hashRetries, this.avoid, this.givenUp, this.blamePending]) {
      for (const key of [...table.keys()]) if (!retained(key)) table.delete(key);
    }
    for (const key of [...this.verified.keys()]) {
      if (retained(key)) continue;
      this.verified.delete(key);
      this.verifiedForgotten += 1;
    }
    for (const nb of this.neighbours.values()) {
      for (const set of [nb.have, nb.fetching]) for (const key of [...set]) if (!retained(key)) set.delete(key);
    }
    return retained;
  }

  /** The scheduler's size guess for a segment (docs/exchange.md §3). */
  sizeEstimate(key, recent = undefined) {
    return sizeEstimate(this, key, this._timeline.get(key), this._bandwidthBitsPerS, recent);
  }

  // --- the scheduler --------------------------------------------------------------------------

  /** The scheduler's input (scheduler.js decide): exchange_view.js. */
  schedulerView(now, playheadS, { connectingUntil = 0, swarmSize = 0, rate = 1.0 } = {}) {
    return buildView(this, now, playheadS, { connectingUntil, swarmSize, rate });
  }

  /** Carry out the scheduler's decision (waits need nothing). */
  apply(actions, now) {
    for (const a of actions) {
      if (a.action === "cancel") this.cancelTransfer(a.segment, now);
      else if (a.action === "fetch_cdn") this.startCdn(a.segment, a.offset || 0, now);
      else if (a.action === "fetch_peer") this.startPeer(a.segment, a.peer_id, a.offset || 0, now);
    }
  }

  // --- starting and cancelling downloads ------------------------------------------------------

  startCdn(segment, offset, now) {
    const key = segmentKey(segment);
    if (this.transfers.has(key) || !this._timeline.has(key)) return;
    const held = this._heldFor(key, offset);
    const from = held.buf.length;
    if (from > 0) this.cdnResumes += 1;
    const fetchId = this._nextFetchId++;
    this.transfers.set(key, this._transfer(key, null, now, from, { fetch_id: fetchId }));
    this._actions.push(act("fetch_cdn", { fetch_id: fetchId, segment: [...segment], offset: from }));
    this._announceFetching(key);
  }

  startPeer(segment, peerId, offset, now) {
    const key = segmentKey(segment);
    if (this.transfers.has(key)) return;
    const nb = this.neighbours.get(peerId);
    if (nb === undefined || !nb.open || !nb.links.length) {
      if (nb !== undefined) nb.choked_until = now + this.config.busy_backoff_s;
      return;
    }
    const link = nb.links[nb.links.length - 1];
    const held = this._heldFor(key, offset);
    const from = held.buf.length;
    this.transfers.set(key, this._transfer(key, peerId, now, from, { link, announced: nb.have.has(key) }));
    this._actions.push(act("request", { link, peer: peerId, segment: [...segment], offset: from }));
  }

  _transfer(key, peerId, now, offset, extra) {
    const segment = key.split("/").map(Number);
    return {
      key,
      segment,
      peer_id: peerId,
      started_at: now,
      offset,
      link: null,
      request_id: null,
      fetch_id: null,
      last_data_at: null,
      received: 0,
      verifying: false, // every byte is held and being checked: the scheduler sees a CDN fetch
      responded: false, // the peer answered the request (RESPONSE)
      announced: false, // the peer had announced the segment HAVE when we asked: it owes us the bytes
      overtaken: false, // since its last byte a frame of the peer came on its link, the segment announced HAVE
      ...extra,
    };
  }

  /** The session took our REQUEST under `requestId`: it is announced (we relay it cut-through). */
  requestSent(link, segment, requestId) {
    const key = segmentKey(segment);
    const t = this.transfers.get(key);
    if (t === undefined || t.link !== link || t.request_id !== null) return;
    t.request_id = requestId;
    this._announceFetching(key);
  }

  /** The session could not take the REQUEST (closed, too many in flight): back the peer off. */
  requestNotSent(link, segment, now) {
    const key = segmentKey(segment);
    const t = this.transfers.get(key);
    if (t === undefined || t.link !== link || t.request_id !== null) return;
    this.transfers.delete(key);
    const nb = this.neighbours.get(t.peer_id);
    if (nb !== undefined) nb.choked_until = now + this.config.busy_backoff_s;
  }

  cancelTransfer(segment, now) {
    const key = segmentKey(segment);
    const t = this.transfers.get(key);
    if (t === undefined || t.verifying) return;
    this.transfers.delete(key);
    if (t.peer_id === null) {
      this._actions.push(act("cancel_cdn", { fetch_id: t.fetch_id, segment: t.segment }));
      return;
    }
    this._addAvoid(key, t.peer_id);
    if (t.link !== null && t.request_id !== null) {
      this._actions.push(act("cancel_request", { link: t.link, request_id: t.request_id }));
      this._rateSample(t, now);
      const quietSince = t.last_data_at || t.started_at;
      if (now - quietSince >= this._stallS(t.peer_id)) {
        this._promise(t);
        // it stopped sending what it held: a stall suspect
        if (this._owed(t)) this._suspectStall(t, quietSince, now);
        // our relays of it starve too: ABORT them (UPSTREAM_FAILED, no offence) rather than
        // leave their downstream waiting on our upstream's silence
        if (t.responded || this._owed(t)) this.server.abortRelays(key);
      }
    }
  }

  // A download t we gave up silent (cancelled after stall_s and its round trips without a byte,
  // or timed out): if it was cut-through (the peer had not
  // announced the segment HAVE when we asked) and the peer has not announced it HAVE since, the
  // peer owes that HAVE before the segment leaves what we retain (docs/exchange.md §8b, "Broken
  // promises").
  _promise(t) {
    if (t.announced || t.peer_id === null || t.link === null) return;
    const nb = this.neighbours.get(t.peer_id);
    if (nb !== undefined && nb.have.has(t.key)) return;
    this.promises.promised(t.peer_id, t.key, this.linkKeys.get(t.link) ?? []);
  }

  _judgePromises(retained, now) {
    for (const [peerId, , keys] of this.promises.broken(retained)) {
      if (!this.penalties.isBanned(peerId)) this.offence(peerId, null, Offence.BROKEN_PROMISE, now, keys);
    }
  }

  // Silence after which a cancelled download counts as a stall: stall_s plus stall_rtts measured
  // round trips (SCTP needs at least 1 s and a trip to recover one lost packet).
  _stallS(peerId) {
    const rtt = this.peerRtts.get(peerId)?.rtt ?? 0;
    return this.config.stall_s + this.config.stall_rtts * rtt;
  }

  // A silent download t from its peer: a stall offence only if the peer shows no progress for
  // stall_offence_s plus stall_rtts round trips from quietSince (exchange_stalls.js); an abandoned
  // one if its link was seen alive meanwhile.
  _suspectStall(t, quietSince, now) {
    const rtt = this.peerRtts.get(t.peer_id)?.rtt ?? 0;
    this.stalls.suspect(t.peer_id, t.link, quietSince, this.config.stall_offence_s + this.config.stall_rtts * rtt, t.overtaken);
    this._judgeStalls(now);
  }

  _judgeStalls(now) {
    for (const [peerId, link, abandoned] of this.stalls.due(now)) {
      this.offence(peerId, link, abandoned ? Offence.ABANDONED : Offence.STALL, now);
    }
  }

  // A DATA frame of peerId for our request requestId arrived on link. The channel is ordered and
  // the peer's session sends the DATA of its uploads round-robin: every other download on that
  // link the peer answered, of a segment it had announced HAVE before this frame, has received
  // everything the peer had queued of it, so a silence from now on is the peer's choice
  // (docs/exchange.md §8b). Only DATA: control messages go out ahead of queued DATA.
  _overtake(link, peerId, requestId) {
    const nb = this.neighbours.get(peerId);
    if (nb === undefined || nb.have.size === 0) return;
    for (const t of this.transfers.values()) {
      if (t.link === link && t.responded && t.request_id !== requestId && nb.have.has(t.key)) t.overtaken = true;
    }
  }

  // A download from a peer given up (cancelled, timed out) teaches its rate too, so peers whose
  // links deliver are preferred: once a peer has a measured rate, what the failed download
  // achieved (its bytes over its time) is one more sample, if any byte came (a request that never
  // got one says more about a relay's source than about the link).
  _rateSample(t, now) {
    const rate = t.peer_id !== null ? this.peerRates.get(t.peer_id) : undefined;
    if (rate !== undefined && t.received > 0) rate.addSample(t.received, Math.max(1e-6, now - t.started_at));
  }

  // Whether the peer owed us bytes it held: it had announced the segment HAVE (a verified copy)
  // when we asked, or the download was overtaken (a DATA frame of another of our requests came
  // after its last byte while the segment was in the peer's have set: nothing it queued of it is
  // in flight, and a verified copy waits on no source). A cut-through relay (the segment only
  // FETCHING when we asked) is otherwise not stalling, even once it answered or announced HAVE
  // since (a control message goes out ahead of the DATA it queued): it passes on what its own
  // source sends, and that source may be waiting out a lost packet (docs/exchange.md §8b).
  _owed(t) {
    return t.announced || t.overtaken;
  }

  // --- the CDN --------------------------------------------------------------------------------

  _cdnTransfer(fetchId) {
    for (const t of this.transfers.values()) if (t.fetch_id === fetchId) return t;
    return null;
  }

  /** The CDN told the segment's whole size. */
  cdnTotal(fetchId, totalBytes, now) {
    const t = this._cdnTransfer(fetchId);
    const held = t && this.held.get(t.key);
    if (!t || !held || t.verifying) return;
    held.total = totalBytes;
    this.sizes.set(t.key, totalBytes);
    this.server.pumpSegment(t.key, now);
  }

  /** Bytes [offset, offset + data.length) of the segment arrived from the CDN. */
  cdnData(fetchId, offset, data, now) {
    const t = this._cdnTransfer(fetchId);
    const held = t && this.held.get(t.key);
    if (!t || !held || t.verifying || offset !== held.buf.length) return;
    held.append(data, null);
    t.received += data.length;
    t.last_data_at = now;
    this.bytesCdn += data.length;
    this.server.pumpSegment(t.key, now);
  }

  /** The CDN fetch finished: every byte is held; the segment goes to verification. */
  cdnDone(fetchId, totalBytes, elapsedS, now) {
    void now;
    const t = this._cdnTransfer(fetchId);
    const held = t && this.held.get(t.key);
    if (!t || !held || t.verifying) return;
    this.cdnRate.addSample(t.received, Math.max(1e-6, elapsedS));
    const rate = this.cdnRate.estimate;
    // the fetch's excess over its bytes at the mean rate (this fetch included)
    if (rate) this.cdnFetchTime.addSample(Math.max(0, elapsedS - t.received / rate));
    held.total = totalBytes;
    this.sizes.set(t.key, totalBytes);
    this._complete(t, held);
  }

  /** The CDN fetch gave up (after its own retries): the bytes held stay. */
  cdnFailed(fetchId, now) {
    void now;
    const t = this._cdnTransfer(fetchId);
    if (!t || t.verifying) return;
    this.cdnFailures += 1;
    this.transfers.delete(t.key);
  }

  // --- verification ---------------------------------------------------------------------------

  _complete(t, held) {
    if (!this._timeline.has(t.key)) {
      // fell out of the timeline meanwhile
      this.transfers.delete(t.key);
      this._dropHeld(t.key);
      return;
    }
    t.verifying = true;
    const total = held.total !== null ? held.total : held.buf.length;
    this._actions.push(act("verify", { segment: t.segment, data: held.buf.copy(), total_bytes: total }));
  }

  /** The caller checked the bytes of a verify action: "ok", "mismatch" or "unknown". */
  verdict(segment, verdict, now) {
    const key = segmentKey(segment);
    const t = this.transfers.get(key);
    const held = this.held.get(key);
    if (t === undefined || !t.verifying || held === undefined) return;
    if (!Object.values(Verdict).includes(verdict)) throw new Error(`unknown verdict ${verdict}`);
    this.transfers.delete(key);
    const peers = [...held.contributors].filter((p) => p !== null).sort();
    if (verdict === Verdict.UNKNOWN) {
      if (!this.sha256 || !peers.length) {
        verdict = Verdict.OK; // size-only mode, or CDN bytes: trusted as they are
      } else {
        this.unverifiable += 1;
        this._discardAndRefetch(key, now);
        return;
      }
    }
    if (verdict === Verdict.MISMATCH) {
      this.hashFailures += 1;
      if (peers.length > 1) {
        // Which of them sent the bad bytes is known once a copy verifies: until then nobody is
        // charged (an honest peer may have completed what a corrupter began).
        let copies = this.blamePending.get(key);
        if (copies === undefined) this.blamePending.set(key, (copies = []));
        copies.push([held.buf.copy(), held.spans.map((span) => [...span])]);
        for (const pid of peers) this._addAvoid(key, pid);
      } else {
        // One peer supplied every peer byte: the failure is its own if it vouched for them (it
        // announced the segment HAVE first, or completed the copy: an honest relay never hands
        // over the last frame of a copy it has not verified), banned at once. Bytes it relayed
        // unverified and left us to complete are not proof.
        const sole = this.config.ban_sole_contributor && peers.every((p) => held.vouched.has(p));
        this._chargeFailure(key, peers, sole, now);
      }
      this._discardAndRefetch(key, now);
      return;
    }
    this._accept(key, t.segment, held.buf.copy(), now);
  }

  // A hash failure of the segment for each of peers (docs/exchange.md §6); sole: the one peer is
  // banned at once.
  _chargeFailure(key, peers, sole, now) {
    const counted = new Set(); // a subject counts once per failed segment
    for (const pid of peers) {
      const banned = this.penalties.record(pid, now);
      const subjects = this.subjects(pid).filter((s) => !counted.has(s));
      for (const s of subjects) counted.add(s);
      const hit = this.reputation.recordFailure(subjects, this.config.ban_after_failures, now);
      if (sole && !(hit || banned)) {
        this._ban(pid, "integrity failure");
      } else if (hit || banned || this.reputation.isBanned(this.subjects(pid))) {
        this._ban(pid, "repeated integrity failures");
      } else if (subjects.length) {
        // points too, on the subjects not counted yet
        const outcome = this.reputation.record(subjects, Offence.HASH_FAILURE, now);
        if (outcome === Outcome.BAN) this._ban(pid, "penalty points");
        else if (outcome === Outcome.REFUSE) this._disconnect(pid, null, "refused for misbehaviour");
      }
      this._addAvoid(key, pid);
    }
  }

  // The segment verified as good: each failed copy of it kept in blamePending charges the
  // contributors whose runs differ from it (§6), unless banned since (no further failure is paid
  // for a banned peer's bytes).
  _resolveBlame(key, good, now) {
    const copies = this.blamePending.get(key);
    if (copies === undefined) return;
    this.blamePending.delete(key);
    for (const [bad, spans] of copies) {
      const guilty = provenBad(bad, spans, good).filter((p) => !this.reputation.isBanned(this.subjects(p)));
      this._chargeFailure(key, guilty, false, now);
    }
  }

  _discardAndRefetch(key, now) {
    this._dropHeld(key);
    const count = (this.hashRetries.get(key) || 0) + 1;
    this.hashRetries.set(key, count);
    const segment = key.split("/").map(Number);
    if (count <= this.config.max_hash_retries) {
      this.startCdn(segment, 0, now);
    } else {
      // even the CDN's bytes do not match: never play it
      this.blamePending.delete(key); // nothing to compare with: nobody is charged
      this.givenUp.set(key, segment);
      this.givenUpCount += 1;
      this._actions.push(act("give_up", { segment }));
    }
  }

  _accept(key, segment, data, now) {
    this.verified.set(key, segment);
    this.verifiedCount += 1;
    this.avoid.delete(key);
    this.sizes.set(key, data.length);
    this._actions.push(act("deliver", { segment, data }));
    const evicted = this.store.put(key, segment, data);
    this.server.segmentVerified(key, data);
    this.held.delete(key);
    if (!this.config.leech_only) {
      if (this.store.has(key)) this._actions.push(act("announce_have", { segments: [segment] }));
      const lost = evicted.filter((s) => segmentKey(s) !== key);
      if (lost.length) this._actions.push(act("announce_lost", { segments: lost }));
    }
    this.server.pumpSegment(key, now);
    this._resolveBlame(key, data, now);
  }

  _ban(peerId, reason, keys = []) {
    this.penalties.banned.add(peerId);
    this.promises.forget(peerId);
    this.reputation.ban([...this.subjects(peerId), ...keys]);
    this._disconnect(peerId, null, reason);
    // Its bytes are never checked again: every segment a banned peer id or a peer id of a banned
    // address or certificate contributed to is dropped (a download of it ends; a verdict still to
    // come is ignored), so no further hash failure is paid for them.
    for (const [key, held] of [...this.held]) {
      const bad = [...held.contributors].some((c) => c !== null && this.reputation.isBanned(this.subjects(c)));
      if (!bad) continue;
      const t = this.transfers.get(key);
      this.transfers.delete(key);
      if (t !== undefined && !t.verifying) {
        if (t.fetch_id !== null && t.fetch_id !== undefined) {
          this._actions.push(act("cancel_cdn", { fetch_id: t.fetch_id, segment: t.segment }));
        } else if (t.link !== null && t.request_id !== null) {
          this._actions.push(act("cancel_request", { link: t.link, request_id: t.request_id }));
        }
      }
      this._dropHeld(key);
    }
  }

  /** Close every link of peerId (and `link`) with BANNED. */
  _disconnect(peerId, link, reason) {
    const nb = this.neighbours.get(peerId);
    const links = nb !== undefined ? [...nb.links] : [];
    if (nb !== undefined) nb.open = false;
    if (link !== null && !links.includes(link)) links.push(link);
    for (const name of links) this._actions.push(act("close_link", { link: name, code: CloseCode.BANNED, reason }));
  }

  // --- reputation (docs/exchange.md §8b) --------------------------------------------------------

  /** What identifies the remote of `link` beyond its peer id (the caller's strings, e.g. its
   * transport address and certificate fingerprint): offences count on them too, and a ban or
   * refusal of one refuses every peer id that comes with it. */
  setLinkKeys(link, keys) {
    this.linkKeys.set(link, [...keys]);
  }

  subjects(peerId, link = null) {
    const keys = link !== null ? this.linkKeys.get(link) ?? [] : [];
    return [peerSubject(peerId), ...keys, ...(this.peerKeys.get(peerId) ?? [])];
  }

  /** Banned (hash failures or points), or refused for now (points). */
  refused(peerId, link, now) {
    if (this.penalties.isBanned(peerId)) return true;
    return this.reputation.refusedUntil(this.subjects(peerId, link)) > now;
  }

  /** peerId (on open `link`, if known; `keys`: a closed link's identity keys) misbehaved. */
  offence(peerId, link, offence, now, keys = []) {
    const outcome = this.reputation.record([...this.subjects(peerId, link), ...keys], offence, now);
    if (outcome === Outcome.BAN) this._ban(peerId, "penalty points", keys);
    else if (outcome === Outcome.REFUSE) this._disconnect(peerId, link, "refused for misbehaviour");
  }

  // --- peer session events --------------------------------------------------------------------

  /** An event of the session on `link` (the caller's name for it) with `peerId`. */
  onPeerEvent(link, peerId, e, now) {
    if (e.type === "DataReceived") this._overtake(link, peerId, e.request_id);
    switch (e.type) {
      case "HelloReceived":
        return this._onHello(link, peerId, e, now);
      case "PeerHave":
      case "PeerLost":
      case "PeerFetching":
        return this._onAvailability(peerId, e);
      case "ResponseStarted": {
        const key = segmentKey(arr(e.segment));
        const t = this._peerTransfer(link, e.request_id);
        const held = this.held.get(key);
        if (t !== null && t.peer_id !== null) {
          let rtt = this.peerRtts.get(t.peer_id);
          if (rtt === undefined) {
            rtt = new RttEstimator();
            this.peerRtts.set(t.peer_id, rtt);
          }
          rtt.addSample(now - t.started_at);
          t.responded = true;
        }
        if (t !== null && held !== undefined) {
          held.total = e.total_bytes;
          if (!this.sizes.has(key)) this.sizes.set(key, e.total_bytes);
          this.server.pumpSegment(key, now);
        }
        return undefined;
      }
      case "DataReceived":
        return this._onData(link, e, now);
      case "RequestCompleted":
        return this._onCompleted(link, e, now);
      case "RequestFailed":
        return this._onFailed(link, e, now);
      case "SegmentRequested": {
        const nb = this.neighbours.get(peerId);
        const segment = arr(e.segment);
        const announced = nb !== undefined && nb.have.has(segmentKey(segment));
        const lie = this.server.onRequest(link, peerId, e.request_id, segment, e.offset, now, this.refused(peerId, link, now), announced);
        // it asks for a segment it announced: a flood's signature
        if (lie) this.offence(peerId, link, Offence.REQUEST_AFTER_HAVE, now);
        return undefined;
      }
      case "RequestCancelled":
        return this.server.onCancelled(link, e.request_id);
      case "LateFrames": // frames of a request we gave up arrived: the link is slow, not dead
        return this.stalls.progress(peerId);
      case "SessionClosed":
        return this._onClosed(link, peerId, e, now);
      default:
        return undefined;
    }
  }

  _onHello(link, peerId, e, now) {
    if (this.refused(peerId, link, now)) {
      this._actions.push(act("close_link", { link, code: CloseCode.BANNED, reason: "banned" }));
      return;
    }
    this.promises.kept(peerId, e.have.map((s) => segmentKey(arr(s))));
    const keys = this.linkKeys.get(link);
    if (keys !== undefined && keys.length) {
      this.peerKeys.delete(peerId);
      this.peerKeys.set(peerId, keys);
      while (this.peerKeys.size > MAX_PEER_KEYS) this.peerKeys.delete(this.peerKeys.keys().next().value);
    }
    let nb = this.neighbours.get(peerId);
    if (nb === undefined) {
      nb = { peer_id: peerId, have: new Set(), fetching: new Set(), uploads: true, choked_until: 0, open: false, links: [] };
      this.neighbours.set(peerId, nb);
    }
    nb.open = true;
    nb.have = new Set(e.have.map((s) => segmentKey(arr(s))));
    nb.fetching = new Set(e.fetching.map((f) => segmentKey(arr(f.segment))));
    nb.uploads = !e.leech_only;
    if (!nb.links.includes(link)) nb.links.push(link);
    for (const f of e.fetching) this._learnSize(segmentKey(arr(f.segment)), f.expected_bytes);
  }

  _learnSize(key, bytes) {
    if (bytes && !this.sizes.has(key)) this.sizes.set(key, bytes);
  }

  _onAvailability(peerId, e) {
    if (e.type === "PeerHave") this.promises.kept(peerId, e.segments.map((s) => segmentKey(arr(s))));
    const nb = this.neighbours.get(peerId);
    if (nb === undefined) return;
    if (e.type === "PeerFetching") {
      for (const f of e.entries) {
        const key = segmentKey(arr(f.segment));
        nb.fetching.add(key);
        this._learnSize(key, f.expected_bytes);
      }
      return;
    }
    for (const s of e.segments) {
      const key = segmentKey(arr(s));
      if (e.type === "PeerHave") nb.have.add(key);
      else nb.have.delete(key);
      nb.fetching.delete(key);
    }
  }

  _peerTransfer(link, requestId) {
    for (const t of this.transfers.values()) if (t.link === link && t.request_id === requestId) return t;
    return null;
  }

  _onData(link, e, now) {
    const key = segmentKey(arr(e.segment));
    const t = this._peerTransfer(link, e.request_id);
    const held = this.held.get(key);
    if (t === null || held === undefined || e.offset !== held.buf.length) return;
    held.append(e.data, t.peer_id);
    // from a copy it announced verified
    if (this.neighbours.get(t.peer_id)?.have.has(key)) held.vouched.add(t.peer_id);
    t.received += e.data.length;
    t.last_data_at = now;
    t.overtaken = false;
    this.bytesP2p += e.data.length;
    this.server.pumpSegment(key, now);
  }

  _onCompleted(link, e, now) {
    const t = this._peerTransfer(link, e.request_id);
    const held = this.held.get(segmentKey(arr(e.segment)));
    if (t === null || held === undefined) return;
    held.total = e.total_bytes;
    held.vouched.add(t.peer_id); // it handed over the last frame
    let rate = this.peerRates.get(t.peer_id);
    if (rate === undefined) {
      rate = new ThroughputEstimator();
      this.peerRates.set(t.peer_id, rate);
    }
    rate.addSample(t.received, Math.max(1e-6, now - t.started_at));
    this.stalls.progress(t.peer_id);
    this._complete(t, held);
  }

  _onFailed(link, e, now) {
    const t = this._peerTransfer(link, e.request_id);
    if (t === null) return;
    this.transfers.delete(t.key);
    const pid = t.peer_id;
    const nb = this.neighbours.get(pid);
    if (e.reason === "busy") {
      if (nb !== undefined) {
        const delay = e.retry_after_s || this.config.busy_backoff_s;
        nb.choked_until = now + Math.min(delay, this.config.max_busy_backoff_s);
      }
    } else {
      this._addAvoid(t.key, pid);
      if (e.reason === "absent" && nb !== undefined) {
        const announced = nb.have.has(t.key);
        const fetching = nb.fetching.has(t.key);
        nb.have.delete(t.key);
        nb.fetching.delete(t.key);
        // it said HAVE, then ABSENT: a lie (or a LOST it never sent)
        if (announced) this.offence(pid, link, Offence.ABSENT_AFTER_HAVE, now);
        // it said FETCHING: a lie, or its download went away
        else if (fetching) this.offence(pid, link, Offence.ABSENT_AFTER_FETCHING, now);
      } else if (e.reason === "timeout") {
        this._rateSample(t, now);
        this._promise(t);
        if (this._owed(t)) this._suspectStall(t, t.last_data_at || t.started_at, now);
      }
    }
    // The peer gave up our request. If it relayed cut-through and its copy failed
    // (UPSTREAM_FAILED), the bytes it passed on were never vouched for: they are dropped, so an
    // honest relay of a bad upstream is never blamed for them.
    if (e.reason === "aborted") this._truncateHeld(t.key, t.offset);
  }

  _onClosed(link, peerId, e, now) {
    this.server.onLinkClosed(link);
    const nb = this.neighbours.get(peerId);
    if (nb !== undefined) {
      nb.links = nb.links.filter((l) => l !== link);
      if (!nb.links.length) {
        this.neighbours.delete(peerId);
        this.peerRtts.delete(peerId); // a new link may take another path
        this.stalls.forget(peerId);
      }
    }
    for (const t of [...this.transfers.values()]) {
      if (t.link === link && !t.verifying) {
        this.transfers.delete(t.key);
        this._addAvoid(t.key, peerId);
      }
    }
    const offence = e.by_remote ? undefined : CLOSE_OFFENCES.get(e.code);
    // its other links (if any) close on a refusal
    if (offence !== undefined) this.offence(peerId, null, offence, now, this.linkKeys.get(link) ?? []);
    this.linkKeys.delete(link);
  }

  // --- held bytes -----------------------------------------------------------------------------

  _addAvoid(key, peerId) {
    const set = new Set(this.avoid.get(key) || []);
    set.add(peerId);
    this.avoid.set(key, set);
  }

  _heldFor(key, offset) {
    let held = this.held.get(key);
    if (held === undefined) {
      held = new Held();
      this.held.set(key, held);
    }
    if (held.buf.length > offset) this._truncateHeld(key, offset);
    return held;
  }

  /** Keep only bytes [0, length) of a segment in progress; whoever we relayed more to is
   * aborted: the bytes that replace the rest may differ from what they got. */
  _truncateHeld(key, length) {
    const held = this.held.get(key);
    if (held !== undefined && held.buf.length > length) {
      held.truncate(length);
      this.server.abortRelays(key, length);
    }
  }

  /** Give up a segment in progress without verifying it: relays of it are aborted. */
  _dropHeld(key) {
    this.held.delete(key);
    this.server.abortRelays(key);
  }

  _announceFetching(key) {
    if (this.config.leech_only) return;
    const size = Math.min(this.sizes.get(key) || 0, MAX_SEGMENT_BYTES);
    this._actions.push(act("announce_fetching", { entries: [{ segment: key.split("/").map(Number), expected_bytes: size }] }));
  }
}
