// P2PEngine: the browser peer. It follows hls.js (playlists, playhead), keeps a swarm of
// neighbours (swarm.js), asks the pure scheduler (scheduler.js: decide) what to fetch from where,
// exactly as peer_agent/agent does, verifies every segment with SHA-256 against the origin's
// manifest (integrity.js), serves neighbours (from the store, or cut-through from a CDN fetch in
// progress) and hands verified segments to the hls.js loader (loader.js).
//
//   const p2p = new P2PEngine({ tracker: "ws://host:8000/announce", token });
//   const hls = new Hls({ ...p2p.hlsConfig() });   // hls.js finds the engine itself
//   p2p.stats()  // {bytesFromPeers, bytesFromCdn, bytesUploaded, peers: [...], ...}
//
// Bytes from peers are untrusted: a segment is handed to the player, stored, announced or
// uploaded only after its hash matched. On a mismatch every contributing peer is penalised,
// repeat offenders are banned (CLOSE BANNED) and the segment is fetched again from the CDN.

import { bytesToAscii, makePeerId, swarmIdFor, toHex } from "./ids.js";
import { Manifest, Penalties, Verdict } from "./integrity.js";
import { makeFragmentLoader } from "./loader.js";
import { decide, schedulerConfig, segmentKey } from "./scheduler.js";
import { sessionConfig } from "./session.js";
import { GrowBuffer, SegmentStore, ThroughputEstimator } from "./store.js";
import { Swarm } from "./swarm.js";
import { AbortReason, CloseCode } from "./wire.js";

/** Every option of the engine, with its default. */
export const DEFAULT_ENGINE_OPTIONS = Object.freeze({
  tracker: null, // signaling WebSocket URL (ws://H:P/announce); null: CDN only
  token: null, // join token (sent as ?token=)
  iceServers: [], // RTCPeerConnection iceServers; empty: host candidates only
  maxPeers: 8, // neighbours at most
  offersPerAnnounce: 3, // fresh offers per announce
  maxUploads: 4, // concurrent uploads; BUSY beyond
  storeMaxBytes: 64 * 1024 * 1024, // verified segments kept for the player and for peers
  connectGraceS: 1.0, // neighbours get this long to connect before we elect ourselves
  busyBackoffS: 0.5, // a neighbour that answered BUSY without a hint is left alone this long
  maxHashRetries: 3, // CDN refetches of a segment failing its hash before giving up on it
  playerFallbackS: 8.0, // the loader falls back to hls.js's own loader after this long
  statsIntervalS: 5.0, // byte counters sent to the tracker this often
  historyIntervalS: 1.0, // one sample of the byte counters for the chart this often
  historySamples: 600, // samples kept
  scheduler: {}, // overrides of scheduler.js DEFAULT_SCHEDULER_CONFIG
  session: {}, // overrides of session.js DEFAULT_SESSION_CONFIG
  integrity: {}, // {ban_after_failures: 2, penalty_s: 10}
  trackerConfig: {}, // overrides of tracker.js DEFAULT_TRACKER_CONFIG
  swarmUrl: null, // URL the swarm id derives from (default: the URL given to hls.loadSource)
  auditDeliveries: false, // hash every fragment handed to hls.js again (stats().deliveries)
  random: Math.random, // randomness (peer choice, ids, jitter)
  Hls: null, // the hls.js class (default: globalThis.Hls)
});

const nowS = () => performance.now() / 1000;
const wireSeg = ([rendition, sequence]) => ({ rendition, sequence });
const arrSeg = (s) => [s.rendition, s.sequence];

export class P2PEngine {
  constructor(options = {}) {
    for (const key of Object.keys(options)) {
      if (!(key in DEFAULT_ENGINE_OPTIONS)) throw new Error(`unknown P2PEngine option ${key}`);
    }
    this.options = Object.freeze({ ...DEFAULT_ENGINE_OPTIONS, ...options });
    this.schedulerConfig = schedulerConfig(this.options.scheduler);
    this.sessionConfig = sessionConfig(this.options.session);
    this.random = this.options.random;
    this.peerId = makePeerId(this.random);
    this.infoHash = null;
    this.swarm = null;
    this.hls = null;
    this.media = null;
    this.destroyed = false;
    this.store = new SegmentStore(this.options.storeMaxBytes);
    this.penalties = new Penalties(this.options.integrity);
    this.variantByUrl = new Map(); // media playlist URL -> rendition (variant index in master)
    this.manifests = new Map(); // rendition -> Manifest
    this.timeline = new Map(); // key -> segment info
    this.rendition = null; // the rendition hls.js plays now
    this.transfers = new Map(); // key -> transfer
    this.held = new Map(); // key -> {buf: GrowBuffer, total, contributors: Set}
    this.avoid = new Map(); // key -> Set of peer ids
    this.sizes = new Map(); // key -> bytes
    this.neighbours = new Map(); // peer id -> neighbour
    this.peerRates = new Map(); // peer id -> ThroughputEstimator
    this.cdnRate = new ThroughputEstimator();
    this.uploads = new Set();
    this.waiters = new Map(); // key -> [{resolve, reject}]
    this.hashRetries = new Map();
    this.givenUp = new Set();
    this.connectingUntil = 0;
    this.playheadHint = null;
    this.liveEdgeS = null;
    this.counters = {
      bytesFromPeers: 0,
      bytesFromCdn: 0,
      bytesUploadedClosed: 0,
      segmentsFromPeers: 0,
      segmentsFromCdn: 0,
      segmentsVerified: 0,
      hashFailures: 0,
      unverifiable: 0,
      decisions: 0,
      cdnFallbacks: 0,
      bytesRejected: 0,
    };
    this.perPeer = new Map(); // peer id -> {bytesDown, bytesUp (closed links), link}
    this.history = [];
    this.deliveries = []; // with auditDeliveries: {sn, relurl, url, source, sha256} per fragment
    this._timer = null;
    this._wakeQueued = false;
    this._intervals = [];
  }

  // --- hls.js integration ---------------------------------------------------------------------

  /** hls.js config: our fragment loader (playlists keep the default loader), and a hook that
   * hands the Hls instance to the engine. Spread it into `new Hls({...})`. */
  hlsConfig(extra = {}) {
    const Hls = this.options.Hls || globalThis.Hls;
    if (!Hls) throw new Error("P2PEngine: hls.js not found (pass options.Hls)");
    const engine = this;
    const BaseAbr = Hls.DefaultConfig.abrController;
    class P2PAbrController extends BaseAbr {
      constructor(hls) {
        super(hls);
        engine.attach(hls);
      }
    }
    return {
      fLoader: makeFragmentLoader(this, Hls.DefaultConfig.loader),
      abrController: P2PAbrController,
      ...extra,
    };
  }

  /** Follow an Hls instance (called by hlsConfig's hook; callable by hand, idempotent). */
  attach(hls) {
    if (this.hls === hls) return;
    this.hls = hls;
    const E = hls.constructor.Events || (this.options.Hls || globalThis.Hls).Events;
    hls.on(E.MANIFEST_LOADING, (_, d) => this._start(this.options.swarmUrl || d.url));
    hls.on(E.MANIFEST_LOADED, (_, d) => {
      (d.levels || []).forEach((level, i) => this.variantByUrl.set(level.url, i));
      if (!d.levels?.length) this.variantByUrl.set(d.url, 0);
    });
    const onLevel = (_, d) => this._onLevel(d);
    hls.on(E.LEVEL_LOADED, onLevel);
    hls.on(E.LEVEL_UPDATED, onLevel);
    hls.on(E.MEDIA_ATTACHED, (_, d) => {
      this.media = d.media;
      for (const ev of ["playing", "seeked", "timeupdate"]) this.media.addEventListener(ev, () => this.wake());
    });
    hls.on(E.MEDIA_DETACHED, () => (this.media = null));
    hls.on(E.DESTROYING, () => this.destroy());
    if (hls.media) this.media = hls.media;
  }

  renditionOfUrl(url) {
    if (this.variantByUrl.has(url)) return this.variantByUrl.get(url);
    return null;
  }

  _onLevel(d) {
    const details = d.details;
    const level = this.hls?.levels?.[d.level];
    const url = details?.url || level?.url?.[0] || level?.uri;
    const rendition = this.renditionOfUrl(url);
    if (rendition === null || !details) return;
    this.rendition = rendition;
    const now = nowS();
    for (const frag of details.fragments) this._learn(frag, rendition, now);
    const last = details.fragments[details.fragments.length - 1];
    this.liveEdgeS = details.live && last ? last.start + last.duration : null;
    if (!this.manifests.has(rendition)) {
      const manifest = new Manifest(new URL("manifest.json", url).href);
      this.manifests.set(rendition, manifest);
      this._refreshManifest(manifest);
    }
    this._forgetBehind();
    this.wake();
  }

  _learn(frag, rendition, now) {
    if (typeof frag.sn !== "number") return null;
    const segment = [rendition, frag.sn];
    const key = segmentKey(segment);
    let info = this.timeline.get(key);
    if (!info) {
      info = { segment, key, known_since: now };
      this.timeline.set(key, info);
    }
    info.start_s = frag.start;
    info.duration_s = frag.duration;
    info.url = frag.url;
    info.relurl = frag.relurl || frag.url;
    info.byteRange = frag.byteRange?.length ? [frag.byteRange[0], frag.byteRange[1]] : null;
    if (info.byteRange) this.sizes.set(key, info.byteRange[1] - info.byteRange[0]);
    return info;
  }

  _forgetBehind() {
    const playhead = this.playhead();
    if (playhead === null) return;
    for (const [key, info] of this.timeline) {
      if (info.start_s + info.duration_s < playhead - 60 && !this.transfers.has(key)) {
        this.timeline.delete(key);
        this.held.delete(key);
        this.avoid.delete(key);
      }
    }
  }

  async _refreshManifest(manifest) {
    if (manifest._refreshing) return manifest._refreshing;
    manifest._refreshing = (async () => {
      try {
        const r = await fetch(manifest.url, { cache: "no-store" });
        if (r.ok) manifest.update(await r.text());
        else if (r.status === 404 && !manifest.loaded) manifest.url = null; // size-only mode
      } catch (exc) {
        console.warn("p2p: manifest refresh failed", exc);
      } finally {
        manifest._refreshedAt = nowS();
        setTimeout(() => (manifest._refreshing = null), 250);
      }
    })();
    return manifest._refreshing;
  }

  // --- swarm ----------------------------------------------------------------------------------

  async _start(url) {
    if (this.infoHash !== null || this.destroyed) return;
    this.infoHash = await swarmIdFor(url);
    this._intervals.push(setInterval(() => this._sample(), this.options.historyIntervalS * 1000));
    if (!this.options.tracker || this.destroyed) return;
    this.swarm = new Swarm({
      trackerUrl: this.options.tracker,
      infoHash: this.infoHash,
      peerId: this.peerId,
      token: this.options.token,
      onEvent: (link, event) => this._onPeerEvent(link, event),
      hello: () => this._hello(),
      config: { max_peers: this.options.maxPeers, offers_per_announce: this.options.offersPerAnnounce },
      link: { ice_servers: this.options.iceServers },
      sessionConfig: this.sessionConfig,
      tracker: this.options.trackerConfig,
      random: this.random,
    });
    this.swarm.start();
    this.connectingUntil = nowS() + this.options.connectGraceS;
    this._intervals.push(setInterval(() => this._sendStats(), this.options.statsIntervalS * 1000));
  }

  _hello() {
    const have = this.store.segments().slice(-16384).map(wireSeg);
    const fetching = [...this.transfers.values()]
      .filter((t) => t.peer_id === null)
      .slice(-256)
      .map((t) => ({ segment: wireSeg(t.segment), expected_bytes: Math.min(this.sizes.get(t.key) || 0, 64 << 20) }));
    return { have, fetching };
  }

  _sendStats() {
    const s = this.stats();
    this.swarm?.sendStats(s.bytesFromPeers, s.bytesUploaded, s.bytesFromCdn);
    if (this.swarm) this.swarm.setPosition(this.playhead());
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this._timer);
    for (const id of this._intervals) clearInterval(id);
    for (const t of this.transfers.values()) t.abort?.abort();
    this.swarm?.stop();
    for (const list of this.waiters.values()) for (const w of list) w.reject(new Error("engine destroyed"));
    this.waiters.clear();
  }

  // --- the loader's side ----------------------------------------------------------------------

  /**
   * A fragment hls.js wants. Returns null when the engine cannot serve it (the loader then
   * uses hls.js's own loader), else {promise (of {data: a copy, timing, source}), release()}.
   */
  requestFragment(frag) {
    if (this.destroyed || this.infoHash === null || typeof frag.sn !== "number") return null;
    const rendition = this.renditionOfUrl(frag.baseurl);
    if (rendition === null) return null;
    const info = this._learn(frag, rendition, nowS());
    if (!this.media || !this.media.buffered.length) this.playheadHint = frag.start;
    const stored = this.store.get(info.key);
    if (stored !== null) {
      const t = info.timing || { startedAt: nowS(), firstAt: nowS(), doneAt: nowS() };
      return { promise: Promise.resolve({ data: stored.slice(), timing: t, source: "store" }), release() {} };
    }
    if (this.givenUp.has(info.key)) return null;
    this.rendition = rendition;
    let waiter = null;
    const promise = new Promise((resolve, reject) => {
      waiter = { resolve, reject };
      const list = this.waiters.get(info.key) || [];
      list.push(waiter);
      this.waiters.set(info.key, list);
    });
    this.wake();
    const release = () => {
      const list = (this.waiters.get(info.key) || []).filter((w) => w !== waiter);
      if (list.length) this.waiters.set(info.key, list);
      else this.waiters.delete(info.key);
    };
    return { promise, release };
  }

  /** Bytes hls.js's own loader fetched (fallback): count them, verify, store and share. */
  ingestFromCdn(frag, data) {
    this.counters.bytesFromCdn += data.length;
    this.counters.cdnFallbacks += 1;
    if (typeof frag.sn !== "number") return;
    const rendition = this.renditionOfUrl(frag.baseurl);
    if (rendition === null || this.destroyed) return;
    const info = this._learn(frag, rendition, nowS());
    if (this.store.has(info.key) || this.transfers.has(info.key)) return;
    const held = { buf: new GrowBuffer(data.length), total: data.length, contributors: new Set([null]) };
    held.buf.append(data);
    this._complete(info, held, { startedAt: nowS(), firstAt: nowS(), doneAt: nowS(), peer_id: null }, false);
  }

  /** Audit (auditDeliveries): record the SHA-256 of exactly the bytes handed to hls.js. The
   * digest copies its input at once, so hls.js may detach the buffer right after this call. */
  auditDelivery(frag, data, source) {
    if (!this.options.auditDeliveries) return;
    const entry = { sn: frag.sn, relurl: frag.relurl || null, url: frag.url, source, sha256: null };
    this.deliveries.push(entry);
    globalThis.crypto.subtle.digest("SHA-256", data).then((d) => (entry.sha256 = toHex(d)));
  }

  playhead() {
    const m = this.media;
    if (m && m.buffered.length && m.readyState >= 1) return m.currentTime;
    return this.playheadHint;
  }

  bufferS() {
    const m = this.media;
    if (!m) return 0;
    for (let i = 0; i < m.buffered.length; i++) {
      if (m.buffered.start(i) <= m.currentTime + 0.1 && m.currentTime <= m.buffered.end(i)) {
        return m.buffered.end(i) - m.currentTime;
      }
    }
    return 0;
  }

  latencyS() {
    const l = this.hls?.latency;
    if (typeof l === "number" && Number.isFinite(l) && l > 0) return l;
    const p = this.playhead();
    return this.liveEdgeS !== null && p !== null ? this.liveEdgeS - p : null;
  }

  // --- the scheduler loop ---------------------------------------------------------------------

  wake() {
    if (this._wakeQueued || this.destroyed) return;
    this._wakeQueued = true;
    queueMicrotask(() => {
      this._wakeQueued = false;
      this._run();
    });
  }

  _run() {
    if (this.destroyed) return;
    clearTimeout(this._timer);
    let wakeAt = nowS() + this.schedulerConfig.idle_recheck_s;
    try {
      wakeAt = this.decideNow(nowS());
    } catch (exc) {
      console.error("p2p: scheduling failed", exc);
    }
    this._timer = setTimeout(() => this._run(), Math.max(5, (wakeAt - nowS()) * 1000));
  }

  buildView(now) {
    const playhead = this.playhead();
    const segments = [];
    for (const info of this.timeline.values()) {
      if (info.segment[0] !== this.rendition || playhead === null) continue;
      if (info.start_s + info.duration_s <= playhead || this.store.has(info.key) || this.givenUp.has(info.key)) continue;
      segments.push({
        segment: info.segment,
        start_s: info.start_s,
        duration_s: info.duration_s,
        size_bytes: this._sizeEstimate(info),
        known_since: info.known_since,
        partial_bytes: this.held.get(info.key)?.buf.length || 0,
        avoid: this.avoid.get(info.key) || new Set(),
      });
    }
    const peers = [];
    for (const nb of this.neighbours.values()) {
      if (!nb.open) continue;
      peers.push({
        peer_id: nb.peer_id,
        have: nb.have,
        fetching: nb.fetching,
        throughput_bytes_per_s: this.peerRates.get(nb.peer_id)?.estimate ?? null,
        choked_until: Math.max(nb.choked_until, this.penalties.blockedUntil(nb.peer_id)),
        uploads: nb.uploads && !this.penalties.isBanned(nb.peer_id),
      });
    }
    const transfers = [...this.transfers.values()].map((t) => ({
      segment: t.segment,
      peer_id: t.verifying ? null : t.peer_id,
      started_at: t.started_at,
      offset: t.offset,
      received_bytes: t.received,
      total_bytes: this.held.get(t.key)?.total ?? null,
      last_data_at: t.last_data_at,
    }));
    return {
      now,
      self_id: this.peerId,
      playhead_s: playhead ?? 0,
      rate: this.media?.playbackRate || 1.0,
      segments,
      have: new Set(this.store.segments().map(segmentKey)),
      transfers,
      peers,
      cdn_throughput_bytes_per_s: this.cdnRate.estimate,
      connecting_until: this.connectingUntil,
      swarm_size: this.swarm?.tracker.swarmSize || 0,
    };
  }

  _sizeEstimate(info) {
    const known = this.sizes.get(info.key);
    if (known) return known;
    const recent = [...this.sizes.values()].slice(-20);
    if (recent.length) return Math.round(recent.reduce((a, b) => a + b, 0) / recent.length);
    const bw = this.hls?.levels?.find((l) => this.renditionOfUrl(l.url?.[0] || l.uri) === info.segment[0])?.bitrate;
    return bw ? Math.max(1, Math.round((bw * info.duration_s) / 8)) : 500_000;
  }

  /** Ask the scheduler and carry out its actions; returns when to ask again. */
  decideNow(now) {
    if (this.playhead() === null) return now + this.schedulerConfig.idle_recheck_s;
    const decision = decide(this.buildView(now), this.schedulerConfig, this.random);
    this.counters.decisions += 1;
    for (const a of decision.actions) {
      const key = segmentKey(a.segment);
      if (a.action === "cancel") this._cancelTransfer(key);
      else if (a.action === "fetch_cdn") this._startCdn(key, a.offset);
      else if (a.action === "fetch_peer") this._startPeer(key, a.peer_id, a.offset);
    }
    return decision.wake_at ?? now + this.schedulerConfig.idle_recheck_s;
  }

  _addAvoid(key, peerId) {
    const set = new Set(this.avoid.get(key) || []);
    set.add(peerId);
    this.avoid.set(key, set);
  }

  _heldFor(key, offset) {
    let held = this.held.get(key);
    if (!held) {
      held = { buf: new GrowBuffer(), total: null, contributors: new Set() };
      this.held.set(key, held);
    }
    held.buf.truncate(offset);
    return held;
  }

  _cancelTransfer(key) {
    const t = this.transfers.get(key);
    if (!t || t.verifying) return;
    this.transfers.delete(key);
    if (t.peer_id === null) {
      t.abort?.abort();
      return;
    }
    this._addAvoid(key, t.peer_id);
    t.link?.cancel(t.request_id);
  }

  // --- CDN ------------------------------------------------------------------------------------

  _startCdn(key, offset) {
    const info = this.timeline.get(key);
    if (this.transfers.has(key) || !info) return;
    const held = this._heldFor(key, offset);
    const now = nowS();
    const t = {
      key,
      segment: info.segment,
      peer_id: null,
      started_at: now,
      offset: held.buf.length,
      received: 0,
      last_data_at: null,
      first_at: null,
      verifying: false,
      abort: new AbortController(),
    };
    this.transfers.set(key, t);
    this._cdnFetch(t, info, held);
    if (this.swarm) this.swarm.broadcastFetching([{ segment: wireSeg(info.segment), expected_bytes: this.sizes.get(key) || 0 }]);
  }

  async _cdnFetch(t, info, held) {
    const headers = {};
    const base = info.byteRange ? info.byteRange[0] : 0;
    if (info.byteRange) headers.Range = `bytes=${base + t.offset}-${info.byteRange[1] - 1}`;
    else if (t.offset > 0) headers.Range = `bytes=${t.offset}-`;
    const alive = () => this.transfers.get(t.key) === t && !this.destroyed;
    try {
      const r = await fetch(info.url, { headers, signal: t.abort.signal });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const length = Number(r.headers.get("Content-Length"));
      if (length > 0 && alive()) {
        held.total = t.offset + length;
        this.sizes.set(t.key, held.total);
        this._pumpSegment(t.key);
      }
      const reader = r.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!alive()) {
          reader.cancel().catch(() => {});
          return;
        }
        const now = nowS();
        if (t.first_at === null) t.first_at = now;
        held.buf.append(value);
        held.contributors.add(null);
        t.received += value.length;
        t.last_data_at = now;
        this.counters.bytesFromCdn += value.length;
        this._pumpSegment(t.key);
      }
      if (!alive()) return;
      const elapsed = Math.max(1e-6, nowS() - t.started_at);
      this.cdnRate.addSample(t.received, elapsed);
      held.total = held.buf.length;
      this.sizes.set(t.key, held.total);
      this._complete(info, held, { startedAt: t.started_at, firstAt: t.first_at ?? nowS(), doneAt: nowS(), peer_id: null }, true, t);
    } catch (exc) {
      if (t.abort.signal.aborted) return;
      console.warn(`p2p: CDN fetch of ${t.key} failed`, exc);
      if (this.transfers.get(t.key) === t) this.transfers.delete(t.key);
      this.wake();
    }
  }

  // --- completing a segment -------------------------------------------------------------------

  async _complete(info, held, timing, fromTransfer, transfer = null) {
    const key = info.key;
    if (transfer) transfer.verifying = true;
    const data = held.buf.copy();
    const manifest = this.manifests.get(info.segment[0]) || new Manifest(null);
    const target = { key: info.relurl, uri: info.url, byteRange: info.byteRange };
    let verdict = await manifest.verify(target, data, held.total);
    if (verdict === Verdict.UNKNOWN && manifest.url) {
      await this._refreshManifest(manifest);
      verdict = await manifest.verify(target, data, held.total);
    }
    if (fromTransfer && this.transfers.get(key) === transfer) this.transfers.delete(key);
    if (this.destroyed) return;
    const peers = [...held.contributors].filter((p) => p !== null);
    if (verdict === Verdict.UNKNOWN) {
      if (!manifest.url || peers.length === 0) verdict = Verdict.OK;
      else {
        this.counters.unverifiable += 1;
        this._discardAndRefetch(key);
        return;
      }
    }
    if (verdict === Verdict.MISMATCH) {
      this.counters.hashFailures += 1;
      this.counters.bytesRejected += data.length;
      console.warn(`p2p: ${key} failed its hash (sources: ${peers.join(", ") || "CDN"})`);
      for (const pid of peers) {
        if (this.penalties.record(pid, nowS())) this._ban(pid);
        this._addAvoid(key, pid);
      }
      this._discardAndRefetch(key);
      return;
    }
    this._accept(info, data, timing, peers.length > 0);
  }

  _discardAndRefetch(key) {
    this.held.delete(key);
    this._abortRelays(key);
    const count = (this.hashRetries.get(key) || 0) + 1;
    this.hashRetries.set(key, count);
    if (count <= this.options.maxHashRetries) this._startCdn(key, 0);
    else {
      this.givenUp.add(key);
      for (const w of this.waiters.get(key) || []) w.reject(new Error("segment failed its hash"));
      this.waiters.delete(key);
    }
    this.wake();
  }

  _accept(info, data, timing, fromPeers) {
    const key = info.key;
    this.counters.segmentsVerified += 1;
    if (fromPeers) this.counters.segmentsFromPeers += 1;
    else this.counters.segmentsFromCdn += 1;
    this.avoid.delete(key);
    this.held.delete(key);
    this.sizes.set(key, data.length);
    info.timing = timing;
    const evicted = this.store.put(key, info.segment, data);
    if (this.swarm) {
      if (this.store.has(key)) this.swarm.broadcastHave([wireSeg(info.segment)]);
      const lost = evicted.filter((s) => segmentKey(s) !== key).map(wireSeg);
      if (lost.length) this.swarm.broadcastLost(lost);
    }
    const waiters = this.waiters.get(key) || [];
    this.waiters.delete(key);
    for (const w of waiters) w.resolve({ data: data.slice(), timing, source: fromPeers ? "peer" : "cdn" });
    this._pumpSegment(key);
    this.wake();
  }

  // --- peers: events --------------------------------------------------------------------------

  _peerOf(link) {
    return link.remotePeerId || (link.session?.remotePeerId ? bytesToAscii(link.session.remotePeerId) : "?");
  }

  _peerStats(pid) {
    let s = this.perPeer.get(pid);
    if (!s) {
      s = { bytesDown: 0, bytesUpClosed: 0, links: new Set(), since: nowS(), banned: false };
      this.perPeer.set(pid, s);
    }
    return s;
  }

  _onPeerEvent(link, e) {
    if (this.destroyed) return;
    const pid = this._peerOf(link);
    const now = nowS();
    switch (e.type) {
      case "HelloReceived": {
        this._peerStats(pid).links.add(link);
        if (this.penalties.isBanned(pid)) {
          link.close(CloseCode.BANNED, "banned");
          return;
        }
        const nb = { peer_id: pid, have: new Set(), fetching: new Set(), uploads: !e.leech_only, choked_until: 0, open: true };
        for (const s of e.have) nb.have.add(segmentKey(arrSeg(s)));
        for (const f of e.fetching) {
          const k = segmentKey(arrSeg(f.segment));
          nb.fetching.add(k);
          if (f.expected_bytes && !this.sizes.has(k)) this.sizes.set(k, f.expected_bytes);
        }
        this.neighbours.set(pid, nb);
        break;
      }
      case "PeerHave":
      case "PeerLost":
      case "PeerFetching": {
        const nb = this.neighbours.get(pid);
        if (!nb) return;
        if (e.type === "PeerFetching") {
          for (const f of e.entries) {
            const k = segmentKey(arrSeg(f.segment));
            nb.fetching.add(k);
            if (f.expected_bytes && !this.sizes.has(k)) this.sizes.set(k, f.expected_bytes);
          }
        } else {
          for (const s of e.segments) {
            const k = segmentKey(arrSeg(s));
            if (e.type === "PeerHave") nb.have.add(k);
            else nb.have.delete(k);
            nb.fetching.delete(k);
          }
        }
        break;
      }
      case "ResponseStarted": {
        const t = this._transferOf(link, e.request_id);
        const held = t && this.held.get(t.key);
        if (held) {
          held.total = e.total_bytes;
          if (!this.sizes.has(t.key)) this.sizes.set(t.key, e.total_bytes);
        }
        return;
      }
      case "DataReceived": {
        const t = this._transferOf(link, e.request_id);
        const held = t && this.held.get(t.key);
        if (!held || e.offset !== held.buf.length) return;
        held.buf.append(e.data);
        held.contributors.add(t.peer_id);
        t.received += e.data.length;
        if (t.first_at === null) t.first_at = now;
        t.last_data_at = now;
        this.counters.bytesFromPeers += e.data.length;
        this._peerStats(pid).bytesDown += e.data.length;
        return;
      }
      case "RequestCompleted": {
        const t = this._transferOf(link, e.request_id);
        const held = t && this.held.get(t.key);
        const info = t && this.timeline.get(t.key);
        if (!held || !info) {
          if (t) this.transfers.delete(t.key);
          break;
        }
        held.total = e.total_bytes;
        t.verifying = true;
        const rate = this.peerRates.get(pid) || new ThroughputEstimator();
        rate.addSample(t.received, Math.max(1e-6, now - t.started_at));
        this.peerRates.set(pid, rate);
        this._complete(info, held, { startedAt: t.started_at, firstAt: t.first_at ?? now, doneAt: now, peer_id: pid }, true, t);
        return;
      }
      case "RequestFailed": {
        const t = this._transferOf(link, e.request_id);
        if (!t) return;
        this.transfers.delete(t.key);
        const nb = this.neighbours.get(pid);
        if (e.reason === "busy") {
          if (nb) nb.choked_until = now + Math.min(e.retry_after_s || this.options.busyBackoffS, 30);
        } else {
          this._addAvoid(t.key, pid);
          if (e.reason === "absent" && nb) {
            nb.have.delete(t.key);
            nb.fetching.delete(t.key);
          }
        }
        break;
      }
      case "SegmentRequested":
        this._onRequest(link, pid, e);
        return;
      case "RequestCancelled":
        for (const u of this.uploads) if (u.link === link && u.request_id === e.request_id) this.uploads.delete(u);
        return;
      case "SessionClosed":
        this._onClosed(link, pid);
        break;
      default:
        return;
    }
    this.wake();
  }

  _transferOf(link, requestId) {
    for (const t of this.transfers.values()) if (t.link === link && t.request_id === requestId) return t;
    return null;
  }

  _onClosed(link, pid) {
    const s = this.perPeer.get(pid);
    if (s && s.links.has(link)) {
      s.links.delete(link);
      s.bytesUpClosed += link.session?.stats.payload_bytes_sent || 0;
    }
    this.counters.bytesUploadedClosed += link.session?.stats.payload_bytes_sent || 0;
    for (const u of [...this.uploads]) if (u.link === link) this.uploads.delete(u);
    if (!this.swarm?.links.has(pid) || this.swarm.links.get(pid) === link) this.neighbours.delete(pid);
    for (const t of [...this.transfers.values()]) {
      if (t.link === link && !t.verifying) {
        this.transfers.delete(t.key);
        this._addAvoid(t.key, pid);
      }
    }
  }

  _ban(pid) {
    const nb = this.neighbours.get(pid);
    if (nb) nb.open = false;
    this._peerStats(pid).banned = true;
    const link = this.swarm?.links.get(pid);
    if (link) {
      console.warn(`p2p: banning peer ${pid} after repeated hash failures`);
      link.close(CloseCode.BANNED, "repeated integrity failures");
    }
  }

  // --- peers: our requests --------------------------------------------------------------------

  _startPeer(key, peerId, offset) {
    if (this.transfers.has(key) || !this.swarm) return;
    const link = this.swarm.links.get(peerId);
    const nb = this.neighbours.get(peerId);
    const info = this.timeline.get(key);
    if (!info || !link || !link.session?.canRequest) {
      if (nb) nb.choked_until = nowS() + this.options.busyBackoffS;
      this.wake();
      return;
    }
    const held = this._heldFor(key, offset);
    const from = held.buf.length;
    const requestId = link.request(wireSeg(info.segment), from);
    this.transfers.set(key, {
      key,
      segment: info.segment,
      peer_id: peerId,
      started_at: nowS(),
      offset: from,
      received: 0,
      last_data_at: null,
      first_at: null,
      verifying: false,
      link,
      request_id: requestId,
    });
  }

  // --- peers: serving -------------------------------------------------------------------------

  _onRequest(link, pid, e) {
    const key = segmentKey(arrSeg(e.segment));
    if (this.penalties.isBanned(pid)) {
      link.rejectBusy(e.request_id, 0xffff);
      return;
    }
    if (this.uploads.size >= this.options.maxUploads) {
      link.rejectBusy(e.request_id, 500);
      return;
    }
    const data = this.store.get(key);
    const upload = { link, pid, request_id: e.request_id, key, offset: e.offset, sent: e.offset, total: null };
    if (data !== null) {
      if (e.offset >= data.length) {
        link.rejectAbsent(e.request_id);
        return;
      }
    } else if (!(this.transfers.has(key) && this._cdnOnly(this.held.get(key)))) {
      link.rejectAbsent(e.request_id);
      return;
    }
    this.uploads.add(upload);
    this._pump(upload);
  }

  _cdnOnly(held) {
    return held !== undefined && held !== null && [...held.contributors].every((c) => c === null);
  }

  _source(key) {
    const data = this.store.get(key);
    if (data !== null) return { bytes: data, length: data.length, total: data.length };
    const held = this.held.get(key);
    if (this._cdnOnly(held)) return { bytes: held.buf.bytes, length: held.buf.length, total: held.total };
    return null; // bytes from peers are relayed only once verified (from the store)
  }

  _pumpSegment(key) {
    for (const u of this.uploads) if (u.key === key) this._pump(u);
  }

  _pump(u) {
    if (u.link.isClosed) {
      this.uploads.delete(u);
      return;
    }
    const src = this._source(u.key);
    if (src === null) return;
    if (u.total === null) {
      if (src.total === null) return;
      if (u.offset >= src.total) {
        this.uploads.delete(u);
        u.link.rejectAbsent(u.request_id);
        return;
      }
      u.total = src.total;
      if (!u.link.respond(u.request_id, u.total)) {
        this.uploads.delete(u);
        return;
      }
    }
    const available = Math.min(src.length, u.total);
    if (available > u.sent) {
      if (!u.link.sendData(u.request_id, u.sent, src.bytes.subarray(u.sent, available))) {
        this.uploads.delete(u);
        return;
      }
      u.sent = available;
    }
    if (u.sent >= u.total) this.uploads.delete(u);
  }

  _abortRelays(key) {
    for (const u of [...this.uploads]) {
      if (u.key === key && !this.store.has(key)) {
        this.uploads.delete(u);
        if (!u.link.isClosed) u.link.abort(u.request_id, AbortReason.UPSTREAM_FAILED);
      }
    }
  }

  // --- statistics -----------------------------------------------------------------------------

  _sample() {
    const s = this.stats();
    this.history.push({ t: nowS(), p2p: s.bytesFromPeers, cdn: s.bytesFromCdn, up: s.bytesUploaded });
    if (this.history.length > this.options.historySamples) this.history.shift();
  }

  /** Everything the demo panel draws; see README "Embedding in a player page". */
  stats() {
    const peers = [];
    let uploadedLive = 0;
    const linkBytes = (link) => link.session?.stats.payload_bytes_sent || 0;
    for (const [pid, s] of this.perPeer) {
      const live = [...s.links].reduce((n, l) => n + linkBytes(l), 0);
      uploadedLive += live;
      const link = this.swarm?.links.get(pid);
      const connected = Boolean(link && link.isOpen && this.neighbours.get(pid)?.open);
      peers.push({
        peerId: pid,
        connected,
        banned: s.banned || this.penalties.isBanned(pid),
        bytesDown: s.bytesDown,
        bytesUp: s.bytesUpClosed + live,
        rateBytesPerS: this.peerRates.get(pid)?.estimate ?? null,
        have: this.neighbours.get(pid)?.have.size ?? 0,
        hashFailures: this.penalties.failures.get(pid) || 0,
      });
    }
    const c = this.counters;
    const total = c.bytesFromPeers + c.bytesFromCdn;
    const anyManifest = [...this.manifests.values()].some((m) => m.url);
    return {
      peerId: this.peerId,
      swarmId: this.infoHash,
      rendition: this.rendition,
      bytesFromPeers: c.bytesFromPeers,
      bytesFromCdn: c.bytesFromCdn,
      bytesUploaded: c.bytesUploadedClosed + uploadedLive,
      p2pRatio: total ? c.bytesFromPeers / total : 0,
      segmentsFromPeers: c.segmentsFromPeers,
      segmentsFromCdn: c.segmentsFromCdn,
      segmentsVerified: c.segmentsVerified,
      hashFailures: c.hashFailures,
      cdnFallbacks: c.cdnFallbacks,
      bytesRejected: c.bytesRejected,
      integrity: anyManifest ? "sha256" : "size-only",
      peers,
      connectedPeers: peers.filter((p) => p.connected).length,
      bannedPeers: peers.filter((p) => p.banned).map((p) => p.peerId),
      bufferS: this.bufferS(),
      latencyS: this.latencyS(),
      playheadS: this.playhead(),
      trackerConnected: Boolean(this.swarm?.tracker.connected),
      swarmSize: this.swarm?.tracker.swarmSize || 0,
      storeBytes: this.store.usedBytes,
      history: this.history.slice(),
      deliveries: this.deliveries.slice(),
    };
  }
}
