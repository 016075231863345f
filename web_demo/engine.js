// P2PEngine: the browser peer. It follows hls.js (playlists, playhead), keeps a swarm of
// neighbours (swarm.js), asks the pure scheduler (scheduler.js: decide) what to fetch from where,
// exactly as peer_agent/agent does, verifies every segment with SHA-256 against the origin's
// manifest (integrity.js), serves neighbours (from the store, or cut-through from a download in
// progress, the last byte held until our copy verifies) and hands verified segments to the
// hls.js loader (loader.js).
//
//   const p2p = new P2PEngine({ tracker: "ws://host:8000/announce", token });
//   const hls = new Hls({ ...p2p.hlsConfig() });   // hls.js finds the engine itself
//   p2p.stats()  // {bytesFromPeers, bytesFromCdn, bytesUploaded, peers: [...], ...}
//   p2p.on("error", (e) => ...)  // events (events.js): segment-loaded, peer-banned, error, ...
//   p2p.setP2PEnabled(false); p2p.setUploadEnabled(false); P2PEngine.isSupported()
//
// Bytes from peers are untrusted: a segment is handed to the player, stored or announced (HAVE)
// only after its hash matched, and a relay never sends a segment's last byte before that. On a
// mismatch every contributing peer is penalised, repeat offenders are banned (CLOSE BANNED) and
// the segment is fetched again from the CDN.

import { checkEngineOptions, isSupported, manifestUrlFor, supportReport, swarmKeyFor } from "./controls.js";
import { Emitter } from "./events.js";
import { makePeerId, swarmIdFor, toHex } from "./ids.js";
import { Manifest, Penalties } from "./integrity.js";
import { makeFragmentLoader } from "./loader.js";
import { decide, schedulerConfig, segmentKey } from "./scheduler.js";
import { sessionConfig } from "./session.js";
import { exchangeMethods } from "./exchange.js";
import { intakeMethods } from "./intake.js";
import { GrowBuffer, SegmentStore, ThroughputEstimator, wireSeg } from "./store.js";
import { Swarm } from "./swarm.js";

/** Every option of the engine, with its default. */
export const DEFAULT_ENGINE_OPTIONS = Object.freeze({
  tracker: null, // signaling WebSocket URL (ws://H:P/announce); null: CDN only
  token: null, // join token (sent as ?token=)
  iceServers: [], // RTCPeerConnection iceServers; empty: host candidates only
  iceFromTracker: false, // ask the tracker for ICE servers (STUN + TURN with short-lived credentials)
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
  swarmId: null, // string the swarm id derives from (default: the URL given to hls.loadSource); see controls.js
  swarmUrl: null, // older name of swarmId
  hashService: null, // p2p-hashsvc base URL: manifests from <hashService>/manifest?playlist=<url>
  manifestUrl: null, // (playlistUrl, rendition) => manifest URL (or one URL); wins over hashService
  p2p: true, // start with P2P on (setP2PEnabled changes it at runtime)
  upload: true, // serve other peers (setUploadEnabled changes it at runtime)
  auditDeliveries: false, // hash every fragment handed to hls.js again (stats().deliveries)
  random: Math.random, // randomness (peer choice, ids, jitter)
  Hls: null, // the hls.js class (default: globalThis.Hls)
});

const nowS = () => performance.now() / 1000;

export class P2PEngine {
  constructor(options = {}) {
    for (const key of Object.keys(options)) {
      if (!(key in DEFAULT_ENGINE_OPTIONS)) throw new Error(`unknown P2PEngine option ${key}`);
    }
    this.options = Object.freeze({ ...DEFAULT_ENGINE_OPTIONS, ...options });
    checkEngineOptions(this.options);
    this.events = new Emitter();
    this.p2pEnabled = this.options.p2p;
    this.uploadEnabled = this.options.upload;
    this.token = this.options.token;
    this.integrityMode = null;
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
    this.actionCounts = {}; // "fetch_cdn:elected" -> how often the scheduler asked for it
    this.deliveries = []; // with auditDeliveries: {sn, relurl, url, source, sha256} per fragment
    this._timer = null;
    this._wakeQueued = false;
    this._intervals = [];
  }

  /** Can this browser run the engine? (WebRTC, WebCrypto, WebSocket, MediaSource) */
  static isSupported() {
    return isSupported(globalThis);
  }

  /** Which part is missing: {webrtc, webcrypto, websocket, mediaSource}. */
  static supportReport() {
    return supportReport(globalThis);
  }

  // --- events (events.js) -------------------------------------------------------------------

  on(type, listener) {
    return this.events.on(type, listener);
  }

  once(type, listener) {
    return this.events.once(type, listener);
  }

  off(type, listener) {
    this.events.off(type, listener);
  }

  // --- runtime controls -----------------------------------------------------------------------

  /** P2P on or off: off leaves the swarm (links closed, tracker left) and takes every segment
   * from the CDN; on joins again (with a fresh peer id, so the tracker never sees it twice). */
  setP2PEnabled(on) {
    on = Boolean(on);
    if (on === this.p2pEnabled || this.destroyed) return;
    this.p2pEnabled = on;
    if (!on && this.swarm) {
      this.swarm.stop();
      this.swarm = null;
    } else if (on && this.infoHash !== null) {
      this.peerId = makePeerId(this.random);
      this._joinSwarm();
    }
    this.events.emit("p2p-state", { p2p: this.p2pEnabled, upload: this.uploadEnabled });
    this.wake();
  }

  /** Serve other peers or not; off: new requests are answered BUSY (transfers in flight finish). */
  setUploadEnabled(on) {
    this.uploadEnabled = Boolean(on);
    this.swarm?.setUploadEnabled(this.uploadEnabled);
    this.events.emit("p2p-state", { p2p: this.p2pEnabled, upload: this.uploadEnabled });
  }

  /** A new join token (after an "error" event with reason token_expired / token_invalid). */
  setToken(token) {
    this.token = token;
    this.swarm?.tracker.setToken(token);
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
      const manifest = new Manifest(manifestUrlFor(this.options, url, rendition));
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
    if (!manifest.url) return this._noteIntegrityMode();
    if (manifest._refreshing) return manifest._refreshing;
    manifest._refreshing = (async () => {
      try {
        const r = await fetch(manifest.url, { cache: "no-store" });
        if (r.ok) manifest.update(await r.text());
        else if (r.status === 404 && !manifest.loaded) {
          this._warn("manifest", "no_manifest", `no integrity manifest at ${manifest.url} (404): peers' segments are checked by size only`);
          manifest.url = null; // size-only mode
        } else this._warn("manifest", `manifest_http_${r.status}`, `integrity manifest ${manifest.url}: HTTP ${r.status}`);
      } catch (exc) {
        this._warn("manifest", "manifest_unavailable", `integrity manifest ${manifest.url}: ${exc?.message || exc}`);
      } finally {
        this._noteIntegrityMode();
        manifest._refreshedAt = nowS();
        setTimeout(() => (manifest._refreshing = null), 250);
      }
    })();
    return manifest._refreshing;
  }

  _warn(source, reason, message) {
    console.warn(`p2p: ${message}`);
    this.events.emit("warning", { source, reason, message, code: null });
  }

  _noteIntegrityMode() {
    const withUrl = [...this.manifests.values()].filter((m) => m.url);
    const mode = withUrl.length ? "sha256" : "size-only";
    if (mode === this.integrityMode || this.destroyed) return;
    this.integrityMode = mode;
    this.events.emit("integrity-mode", { mode, manifestUrl: withUrl[0]?.url ?? null });
  }

  // --- swarm ----------------------------------------------------------------------------------

  async _start(url) {
    if (this.infoHash !== null || this.destroyed) return;
    this.infoHash = await swarmIdFor(swarmKeyFor(this.options, url));
    this._intervals.push(setInterval(() => this._sample(), this.options.historyIntervalS * 1000));
    this._intervals.push(setInterval(() => this._sendStats(), this.options.statsIntervalS * 1000));
    if (this.p2pEnabled) this._joinSwarm();
  }

  _joinSwarm() {
    if (!this.options.tracker || this.destroyed) return;
    this.swarm = new Swarm({
      trackerUrl: this.options.tracker,
      infoHash: this.infoHash,
      peerId: this.peerId,
      token: this.token,
      emit: (type, detail) => this.events.emit(type, detail),
      upload: this.uploadEnabled,
      onEvent: (link, event) => this._onPeerEvent(link, event),
      hello: () => this._hello(),
      config: { max_peers: this.options.maxPeers, offers_per_announce: this.options.offersPerAnnounce },
      link: { ice_servers: this.options.iceServers },
      sessionConfig: this.sessionConfig,
      tracker: {
        ...(this.options.trackerConfig || {}),
        request_ice_servers: Boolean(this.options.iceFromTracker || this.options.trackerConfig?.request_ice_servers),
      },
      random: this.random,
    });
    this.swarm.start();
    this.connectingUntil = nowS() + this.options.connectGraceS;
  }

  _hello() {
    const have = this.store.segments().slice(-16384).map(wireSeg);
    // Every download in progress, from the CDN or a peer: both are relayed cut-through.
    const fetching = [...this.transfers.values()]
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
    this.events.emit("bytes-downloaded", { source: "cdn", peerId: null, bytes: data.length });
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
      this.events.emit("error", { source: "engine", reason: "internal_error", message: `scheduling failed: ${exc?.message || exc}`, code: null, fatal: false });
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
      if (a.action === "cancel" || (a.action !== "wait" && !this.transfers.has(key))) {
        const name = `${a.action}:${a.reason}`;
        this.actionCounts[name] = (this.actionCounts[name] || 0) + 1;
      }
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
      trackerRefused: this.swarm?.tracker.refused ?? null,
      p2pEnabled: this.p2pEnabled,
      uploadEnabled: this.uploadEnabled,
      swarmSize: this.swarm?.tracker.swarmSize || 0,
      storeBytes: this.store.usedBytes,
      history: this.history.slice(),
      deliveries: this.deliveries.slice(),
      actions: { ...this.actionCounts },
    };
  }
}

Object.assign(P2PEngine.prototype, intakeMethods, exchangeMethods);
