// P2PEngine: the browser peer, glue around two pure parts, like peer_agent/agent does: the
// segment exchange (segment_exchange.js: what to do with bytes, requests and verdicts,
// docs/exchange.md) and the scheduler (scheduler.js: decide what to fetch from where,
// docs/scheduling.md). The engine follows hls.js (playlists, playhead), runs what the exchange
// asks for (CDN fetches, SHA-256 checks with WebCrypto against the origin's manifest, session
// calls on the swarm's links, announcements), hands verified segments to the hls.js loader
// (loader.js), re-arms one timer and keeps the stats.
//
//   const p2p = new P2PEngine({ tracker: "ws://host:8000/announce", token });
//   const hls = new Hls({ ...p2p.hlsConfig() });   // hls.js finds the engine itself
//   p2p.stats()  // {bytesFromPeers, bytesFromCdn, bytesUploaded, peers: [...], ...}
//   p2p.on("error", (e) => ...)  // events (events.js): segment-loaded, peer-banned, error, ...
//   p2p.setP2PEnabled(false); p2p.setUploadEnabled(false); P2PEngine.isSupported()
//
// Bytes from peers are untrusted: a segment is handed to the player, stored or announced only
// after its hash matched, and a relay withholds a segment's last DATA frame until then. On a
// mismatch every contributing peer is penalised, repeat offenders are banned (CLOSE BANNED) and
// the segment is fetched again from the CDN.

import { bytesToAscii, makeKeyedIdentity, makePeerId, swarmIdFor, toHex } from "./ids.js";
import { Manifests, Verdict } from "./integrity.js";
import { downloadSegment } from "./cdn.js";
import { CdnFetchCounts } from "./cdn_phase.js";
import { checkEngineOptions, isSupported, manifestUrlFor, supportReport, swarmKeyFor } from "./controls.js";
import { Emitter } from "./events.js";
import { makeFragmentLoader } from "./loader.js";
import { Playlists } from "./playlist.js";
import { decide, schedulerConfig, segmentKey } from "./scheduler.js";
import { SegmentExchange, exchangeConfig } from "./segment_exchange.js";
import { sessionConfig } from "./session.js";
import { wireSeg } from "./store.js";
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
  uploadCapBytesPerS: null, // upload cap over all uploads in bytes/s (token bucket); null: none
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
  exchange: {}, // overrides of segment_exchange.js DEFAULT_EXCHANGE_CONFIG (win over the above)
  trackerConfig: {}, // overrides of tracker.js DEFAULT_TRACKER_CONFIG
  swarmId: null, // string the swarm id derives from (default: the URL given to hls.loadSource); see controls.js
  swarmUrl: null, // older name of swarmId
  hashService: null, // p2p-hashsvc base URL: manifests from <hashService>/manifest?playlist=<url>
  manifestUrl: null, // (playlistUrl, rendition) => manifest URL (or one URL); wins over hashService
  p2p: true, // start with P2P on (setP2PEnabled changes it at runtime)
  upload: true, // serve other peers (setUploadEnabled changes it at runtime)
  backBufferS: 30, // hlsConfig()'s backBufferLength: hls.js otherwise keeps every played second in memory; null: hls.js's default (Infinity)
  liveCatchUpRate: 1.1, // hlsConfig()'s maxLiveSyncPlaybackRate: a live page that fell behind its target latency plays up to this fast until back (else its lag, and the store behind it, only grow); 1: never
  auditDeliveries: false, // hash every fragment handed to hls.js again (stats().deliveries)
  random: Math.random, // randomness (peer choice, ids, jitter)
  Hls: null, // the hls.js class (default: globalThis.Hls)
});

const nowS = () => performance.now() / 1000;
/** Playlist entries this far behind the playhead are forgotten. */
const FORGET_BEHIND_S = 60.0;
/** The CDN throughput estimate floors what hls.js ABR is told while its last sample is this
 * recent (loader.js abrDurationMs). */
const ABR_CDN_FRESH_S = 60.0;
/** A CDN fetch this small says more about the round trip than the rate: it does not set the
 * last-fetch figure of abrCdnBytesPerS (a resume after a slow peer is often a few kB). */
const ABR_CDN_MIN_SAMPLE_BYTES = 256 * 1024;
const arrSegs = (segments) => segments.map(wireSeg);

/** The uplink we claim to the tracker (cap "uplink:N", docs/signaling.md "Fetcher assignment"):
 * 0 when leech-only (the server never picks us to fetch), the upload cap when one is set, else
 * none (null). */
export function uplinkClaim(leechOnly, uploadCapBytesPerS) {
  if (leechOnly) return 0;
  return Number.isFinite(uploadCapBytesPerS) && uploadCapBytesPerS >= 0 ? Math.min(Math.floor(uploadCapBytesPerS), 1e12 - 1) : null;
}

/** The exchange's ban and refusal closes, with the reason the tracker is told. */
const REPORTED_CLOSES = Object.freeze({
  "repeated integrity failures": "hash_failure",
  "integrity failure": "hash_failure",
  "penalty points": "protocol",
  "refused for misbehaviour": "protocol",
});

export class P2PEngine {
  constructor(options = {}) {
    for (const key of Object.keys(options)) {
      if (!(key in DEFAULT_ENGINE_OPTIONS)) throw new Error(`unknown P2PEngine option ${key}`);
    }
    const o = (this.options = Object.freeze({ ...DEFAULT_ENGINE_OPTIONS, ...options }));
    checkEngineOptions(o);
    this.events = new Emitter();
    this.p2pEnabled = o.p2p;
    this.uploadEnabled = o.upload;
    this.token = o.token;
    this.integrityMode = null;
    this.schedulerConfig = schedulerConfig(o.scheduler);
    this.random = o.random;
    this.peerId = makePeerId(this.random);
    this.exchange = new SegmentExchange(
      exchangeConfig({
        max_uploads: o.maxUploads,
        upload_cap_bytes_per_s: o.uploadCapBytesPerS,
        store_max_bytes: o.storeMaxBytes,
        busy_backoff_s: o.busyBackoffS,
        max_hash_retries: o.maxHashRetries,
        ...o.integrity,
        ...o.exchange,
      }),
    );
    // A leech-only exchange never uploads: its sessions say so in HELLO.
    this.sessionConfig = sessionConfig({ ...(this.exchange.config.leech_only ? { leech_only: true } : {}), ...o.session });
    this.infoHash = null;
    this.swarm = null;
    this.hls = null;
    this.media = null;
    this.destroyed = false;
    this.playlists = new Playlists();
    this.manifests = new Manifests({
      onWarning: (reason, message) => this._warn("manifest", reason, message),
      onChange: () => this._noteIntegrityMode(),
    });
    this.rendition = null; // the rendition hls.js plays now (the exchange's timeline)
    this.links = new Map(); // our name of a link ("L1", ...) -> PeerLink
    this._linkNames = new WeakMap(); // PeerLink -> name
    this._nextLink = 1;
    this.cdnFetches = new Map(); // fetch id -> {abort: AbortController, key}
    this._cdnSampledAt = null; // when the exchange last got a CDN throughput sample
    this._cdnLastBytesPerS = null; // that sample's rate (abrCdnBytesPerS)
    this.timing = new Map(); // key -> {startedAt, firstAt, doneAt, source} of the transfer that made it
    this.waiters = new Map(); // key -> [{resolve, reject}]
    this._ingest = new Map(); // key -> bytes hls.js's own loader fetched, fed to the exchange
    this.connectingUntil = 0;
    this.playheadHint = null;
    this.liveEdgeS = null;
    this.counters = {
      fallbackBytesNotShared: 0, // bytes hls.js's own loader fetched that the exchange did not take
      segmentsFromPeers: 0,
      segmentsFromCdn: 0,
      segmentsVerified: 0,
      decisions: 0,
      cdnFallbacks: 0,
      bytesRejected: 0,
      bytesUploadedClosed: 0,
      cdnStallCancels: 0, // CDN fetches of urgent segments given up as silent (rule 1)
    };
    this.perPeer = new Map(); // peer id -> {bytesDown, bytesUpClosed, links: Set, banned}
    this.history = [];
    this.actionCounts = {}; // "fetch_cdn:elected" -> how often the scheduler asked for it
    this.cdnFetchCounts = new CdnFetchCounts(); // join ramp / steady state (cdn_phase.js)
    this.deliveries = []; // with auditDeliveries: {sn, relurl, url, source, sha256} per fragment
    this._timer = null;
    this._timerAt = Infinity;
    this._wakeQueued = false;
    this._draining = false;
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
      if (this._peerKey === undefined) {
        this.peerId = makePeerId(this.random);
        this._joinSwarm();
      } else {
        // a fresh keyed identity (docs/signaling.md "peer_id ownership")
        makeKeyedIdentity().then((id) => {
          if (!this.p2pEnabled || this.destroyed || this.swarm) return;
          ({ peerId: this.peerId, peerKey: this._peerKey } = id);
          this._joinSwarm();
        });
      }
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

  /** hls.js config: our fragment loader (playlists keep the default loader), a hook that hands
   * the Hls instance to the engine, and a bounded back buffer (options.backBufferS; hls.js's
   * default keeps all played media in the SourceBuffers, so a page's memory grows with the
   * session) and a live catch-up rate (options.liveCatchUpRate; hls.js's default 1 never
   * catches up, so a page's lag behind live and the store it keeps grow). Spread it into `new Hls({...})`; `extra` wins over all of it. */
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
    const backBuffer = this.options.backBufferS === null ? {} : { backBufferLength: this.options.backBufferS };
    return {
      fLoader: makeFragmentLoader(this, Hls.DefaultConfig.loader),
      abrController: P2PAbrController,
      ...backBuffer,
      maxLiveSyncPlaybackRate: this.options.liveCatchUpRate,
      ...extra,
    };
  }

  /** Follow an Hls instance (called by hlsConfig's hook; callable by hand, idempotent). */
  attach(hls) {
    if (this.hls === hls) return;
    this.hls = hls;
    const E = hls.constructor.Events || (this.options.Hls || globalThis.Hls).Events;
    hls.on(E.MANIFEST_LOADING, (_, d) => this._start(this.options.swarmUrl || d.url));
    hls.on(E.MANIFEST_LOADED, (_, d) => this.playlists.setVariants(d.url, d.levels || []));
    // Only LEVEL_UPDATED: LEVEL_LOADED carries a reloaded live playlist as parsed, its fragment
    // times counted from its own first segment; hls.js aligns them with the previous playlist
    // before LEVEL_UPDATED. Taken as they were, segments ahead of the playhead seemed far behind
    // it: the exchange forgot them (store, records, LOST to the neighbours) and fetched them
    // again (six-page bench: about 3 CDN fetches per segment and page).
    hls.on(E.LEVEL_UPDATED, (_, d) => this._onLevel(d));
    hls.on(E.MEDIA_ATTACHED, (_, d) => {
      this.media = d.media;
      for (const ev of ["playing", "seeked", "timeupdate"]) this.media.addEventListener(ev, () => this.wake());
    });
    hls.on(E.MEDIA_DETACHED, () => (this.media = null));
    hls.on(E.DESTROYING, () => this.destroy());
    if (hls.media) this.media = hls.media;
  }


  _onLevel(d) {
    const details = d.details;
    const level = this.hls?.levels?.[d.level];
    const url = details?.url || level?.url?.[0] || level?.uri;
    const rendition = this.playlists.renditionOf(url);
    if (rendition === null || !details) return;
    const now = nowS();
    for (const frag of details.fragments) this.playlists.learn(frag, rendition, now);
    const last = details.fragments[details.fragments.length - 1];
    this.liveEdgeS = details.live && last ? last.start + last.duration : null;
    if (!this.manifests.has(rendition)) this.manifests.add(rendition, manifestUrlFor(this.options, url, rendition));
    this._forgetBehind();
    this._follow(rendition);
    this.wake();
  }

  /** The exchange's timeline is the rendition hls.js plays now. */
  _follow(rendition) {
    this.rendition = rendition;
    const entries = this.playlists.timeline(rendition);
    const level = this.hls?.levels?.find((l) => this.playlists.renditionOf(l.url?.[0] || l.uri) === rendition);
    this.exchange.setTimeline(entries, { bandwidthBitsPerS: level?.bitrate || null });
    this.exchange.setSha256(this.manifests.sha256(rendition));
  }

  _forgetBehind() {
    const playhead = this.playhead();
    if (playhead === null) return;
    const keep = (key) => this.exchange.transfers.has(key) || this.waiters.has(key);
    for (const key of this.playlists.forget(playhead - FORGET_BEHIND_S, keep)) this.timing.delete(key);
    this.exchange.forgetBefore(playhead, nowS());
    this._drain();
  }

  _warn(source, reason, message) {
    console.warn(`p2p: ${message}`);
    this.events.emit("warning", { source, reason, message, code: null });
  }

  /** Tell the exchange (and the page, on a change) whether a manifest is in use. */
  _noteIntegrityMode() {
    if (this.rendition !== null) this.exchange.setSha256(this.manifests.sha256(this.rendition));
    const mode = this.manifests.mode;
    if (mode === this.integrityMode || this.destroyed) return;
    this.integrityMode = mode;
    this.events.emit("integrity-mode", { mode, manifestUrl: this.manifests.firstUrl });
  }

  // --- swarm ----------------------------------------------------------------------------------

  async _start(url) {
    if (this.infoHash !== null || this.destroyed) return;
    this.infoHash = await swarmIdFor(swarmKeyFor(this.options, url));
    if (this.options.tracker && this._peerKey === undefined) {
      // a keyed peer_id: the tracker lets only us announce it, even after a reconnect or restart
      ({ peerId: this.peerId, peerKey: this._peerKey } = await makeKeyedIdentity());
    }
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
      peerKey: this._peerKey,
      token: this.token,
      emit: (type, detail) => this.events.emit(type, detail),
      upload: this.uploadEnabled,
      onEvent: (link, event) => this.onLinkEvent(link, event),
      hello: () => this._hello(),
      config: { max_peers: this.options.maxPeers, offers_per_announce: this.options.offersPerAnnounce },
      link: { ice_servers: this.options.iceServers },
      sessionConfig: this.sessionConfig,
      tracker: {
        // our uplink claim for the server's fetcher pick: 0 when we never upload (never picked)
        uplink_bytes_per_s: uplinkClaim(this.exchange.config.leech_only, this.exchange.config.upload_cap_bytes_per_s),
        ...(this.options.trackerConfig || {}),
        request_ice_servers: Boolean(this.options.iceFromTracker || this.options.trackerConfig?.request_ice_servers),
      },
      random: this.random,
    });
    this.swarm.start();
    this.connectingUntil = nowS() + this.options.connectGraceS;
  }

  _hello() {
    const { have, fetching } = this.exchange.helloState();
    return { have: arrSegs(have), fetching: fetching.map((e) => ({ segment: wireSeg(e.segment), expected_bytes: e.expected_bytes })) };
  }

  _sendStats() {
    const s = this.stats();
    this.swarm?.sendStats(s.bytesFromPeers, s.bytesUploaded, s.bytesFromCdn, [s.cdnFetchesJoinRamp, s.cdnFetchesSteady]);
    if (this.swarm) this.swarm.setPosition(this.playhead());
  }

  destroy() {
    if (this.destroyed) return;
    this.destroyed = true;
    clearTimeout(this._timer);
    for (const id of this._intervals) clearInterval(id);
    for (const f of this.cdnFetches.values()) f.abort.abort();
    this.cdnFetches.clear();
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
    const rendition = this.playlists.renditionOf(frag.baseurl);
    if (rendition === null) return null;
    const now = nowS();
    const info = this.playlists.learn(frag, rendition, now);
    this.cdnFetchCounts.start(frag.sn); // the first fragment hls.js asks for: the start segment
    if (!this.media || !this.media.buffered.length) this.playheadHint = frag.start;
    const stored = this.exchange.store.get(info.key);
    if (stored !== null) {
      const t = this.timing.get(info.key) || { startedAt: now, firstAt: now, doneAt: now };
      return { promise: Promise.resolve({ data: stored.slice(), timing: t, source: "store" }), release() {} };
    }
    if (this.exchange.givenUp.has(info.key)) return null;
    this._follow(rendition);
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

  /** The viewer's measured CDN throughput (bytes/s) that floors what hls.js ABR is told of a
   * peer's delivery (loader.js abrDurationMs): the lower of the exchange's CDN estimate (an EWMA)
   * and the last CDN fetch's own rate (of at least ABR_CDN_MIN_SAMPLE_BYTES), so a CDN that just slowed down (a real cap) counts at
   * once, while the EWMA alone would keep most of the old, much higher rate for several fetches;
   * null when no CDN fetch finished in the last ABR_CDN_FRESH_S. */
  abrCdnBytesPerS(now = nowS()) {
    if (this._cdnSampledAt === null || now - this._cdnSampledAt > ABR_CDN_FRESH_S) return null;
    const estimate = this.exchange.cdnRate.estimate;
    if (estimate === null) return null;
    return this._cdnLastBytesPerS === null ? estimate : Math.min(estimate, this._cdnLastBytesPerS);
  }

  _noteCdnSample(bytes, elapsedS, now) {
    this._cdnSampledAt = now;
    if (bytes >= ABR_CDN_MIN_SAMPLE_BYTES) this._cdnLastBytesPerS = bytes / Math.max(1e-6, elapsedS);
  }

  /** Bytes hls.js's own loader fetched (fallback) in `elapsedS` seconds (null: unknown): the
   * exchange takes them as a CDN download (verified, stored and shared) unless it has or is
   * fetching the segment already. */
  ingestFromCdn(frag, data, elapsedS = null) {
    this.events.emit("bytes-downloaded", { source: "cdn", peerId: null, bytes: data.length });
    this.counters.cdnFallbacks += 1;
    if (typeof frag.sn === "number") this.cdnFetchCounts.count(frag.sn); // hls.js fetched it
    const rendition = typeof frag.sn === "number" ? this.playlists.renditionOf(frag.baseurl) : null;
    if (rendition === null || this.destroyed || rendition !== this.rendition) {
      this.counters.fallbackBytesNotShared += data.length;
      return;
    }
    const info = this.playlists.learn(frag, rendition, nowS());
    if (this.exchange.verified.has(info.key) || this.exchange.transfers.has(info.key)) {
      this.counters.fallbackBytesNotShared += data.length;
      return;
    }
    this._follow(rendition);
    // Unknown timing counts as the scheduler's assumed CDN rate, so it skews no estimate.
    const elapsed = elapsedS > 0 ? elapsedS : data.length / this.schedulerConfig.assumed_cdn_bytes_per_s;
    this._ingest.set(info.key, { data, elapsedS: elapsed });
    this.exchange.startCdn(info.segment, data.length, nowS()); // from the bytes held, if any
    this._drain();
    if (this._ingest.delete(info.key)) this.counters.fallbackBytesNotShared += data.length;
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

  // --- the scheduler loop and the one timer ---------------------------------------------------

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
    const now = nowS();
    let wakeAt = now + this.schedulerConfig.idle_recheck_s;
    try {
      const due = this.exchange.getTimer();
      if (due !== null && now >= due) {
        this.exchange.handleTimer(now);
        this._drain();
      }
      wakeAt = this.decideNow(now);
    } catch (exc) {
      console.error("p2p: scheduling failed", exc);
      this.events.emit("error", { source: "engine", reason: "internal_error", message: `scheduling failed: ${exc?.message || exc}`, code: null, fatal: false });
    }
    this._arm(wakeAt);
  }

  /** One timer: the scheduler's next decision or the exchange's timer, whichever is first. */
  _arm(at) {
    if (this.destroyed) return;
    const due = this.exchange.getTimer();
    if (due !== null) at = Math.min(at, due);
    clearTimeout(this._timer);
    this._timerAt = at;
    this._timer = setTimeout(() => this._run(), Math.max(5, (at - nowS()) * 1000));
  }

  /** Ask the scheduler and hand its actions to the exchange; returns when to ask again. */
  decideNow(now) {
    const playhead = this.playhead();
    if (playhead === null) return now + this.schedulerConfig.idle_recheck_s;
    const view = {
      ...this.exchange.schedulerView(now, playhead, {
        connectingUntil: this.connectingUntil,
        swarmSize: this.swarm?.tracker.swarmSize || 0,
        rate: this.media?.playbackRate || 1.0,
      }),
      self_id: this.peerId, // a fresh one after P2P was switched off and on
      ...(this.swarm?.tracker.fetcherAssignment?.() ?? {}), // the server's fetcher assignment
    };
    const decision = decide(view, this.schedulerConfig, this.random);
    this.counters.decisions += 1;
    const cancelled = new Set(); // a fetch after a cancel of the same segment is a new one
    for (const a of decision.actions) {
      const key = segmentKey(a.segment);
      if (a.action === "cancel") {
        cancelled.add(key);
        // a CDN fetch given up as silent, fetched again from the byte it reached (rule 1)
        if (a.peer_id === null) this.counters.cdnStallCancels += 1;
      }
      if (a.action === "cancel" || (a.action !== "wait" && (!this.exchange.transfers.has(key) || cancelled.has(key)))) {
        const name = `${a.action}:${a.reason}`;
        this.actionCounts[name] = (this.actionCounts[name] || 0) + 1;
      }
    }
    this.exchange.apply(decision.actions, now);
    this._drain();
    return decision.wake_at ?? now + this.schedulerConfig.idle_recheck_s;
  }

  // --- carrying out the exchange's actions (docs/exchange.md §9) ------------------------------

  /** Pull and carry out every action; inputs they cause meanwhile queue more for this loop. */
  _drain() {
    if (this._draining || this.destroyed) return;
    this._draining = true;
    try {
      for (let a = this.exchange.nextAction(); a !== null; a = this.exchange.nextAction()) {
        try {
          this._perform(a);
        } catch (exc) {
          console.error(`p2p: ${a.action} failed`, exc);
        }
      }
    } finally {
      this._draining = false;
    }
    const due = this.exchange.getTimer();
    if (due !== null && due < this._timerAt) this._arm(due);
  }

  _perform(a) {
    const link = "link" in a ? this.links.get(a.link) : undefined;
    switch (a.action) {
      case "fetch_cdn":
        return this._fetchCdn(a);
      case "cancel_cdn":
        this.cdnFetches.get(a.fetch_id)?.abort.abort();
        this.cdnFetches.delete(a.fetch_id);
        return undefined;
      case "request":
        return this._request(a, link);
      case "cancel_request":
        return link?.cancel(a.request_id);
      case "respond":
        return link?.respond(a.request_id, a.total_bytes);
      case "send_data":
        return link?.sendData(a.request_id, a.offset, a.data);
      case "reject_absent":
        return link?.rejectAbsent(a.request_id);
      case "reject_busy":
        return link?.rejectBusy(a.request_id, a.retry_after_ms);
      case "abort_upload":
        return link?.abort(a.request_id, a.reason);
      case "close_link":
        if (link) {
          const pid = this._peerOf(link);
          this._peerStats(pid).banned = this.exchange.penalties.isBanned(pid);
          console.warn(`p2p: closing the link to ${pid}: ${a.reason}`);
          // the exchange's own ban or refusal (not a known peer refused at HELLO): tell the
          // tracker (docs/signaling.md "Reports")
          const reported = REPORTED_CLOSES[a.reason];
          if (reported && this.swarm) this.swarm.tracker.report(pid, reported);
          link.close(a.code, a.reason);
        }
        return undefined;
      case "announce_have":
        return this.swarm?.broadcastHave(arrSegs(a.segments));
      case "announce_lost":
        return this.swarm?.broadcastLost(arrSegs(a.segments));
      case "announce_fetching":
        return this.swarm?.broadcastFetching(a.entries.map((e) => ({ segment: wireSeg(e.segment), expected_bytes: e.expected_bytes })));
      case "verify":
        return this._verify(a);
      case "deliver":
        return this._deliver(a);
      case "give_up":
        return this._giveUp(a);
      default:
        throw new Error(`unknown exchange action ${a.action}`);
    }
  }

  /**
   * A request goes only on the link the swarm keeps for the peer: a link drained to make room
   * (docs/signaling.md, "Making room") or the duplicate of a doubled pair is closing, so it gets
   * no new request; otherwise, as when the session cannot take one, it is not sent.
   */
  _request(a, link) {
    const now = nowS();
    let id = null;
    const current = this.swarm ? this.swarm.links.get(a.peer) === link : true;
    if (current && link?.isOpen && link.session.canRequest) {
      try {
        id = link.request(wireSeg(a.segment), a.offset);
      } catch (exc) {
        console.warn("p2p: request refused by the session", exc);
      }
    }
    if (id === null) {
      this.exchange.requestNotSent(a.link, a.segment, now);
      this.wake();
      return;
    }
    this.timing.set(segmentKey(a.segment), { startedAt: now, firstAt: null, doneAt: null, source: "peer", peer_id: a.peer });
    this.exchange.requestSent(a.link, a.segment, id);
  }

  // --- the CDN --------------------------------------------------------------------------------

  _fetchCdn(a) {
    const key = segmentKey(a.segment);
    const started = nowS();
    this.timing.set(key, { startedAt: started, firstAt: null, doneAt: null, source: "cdn", peer_id: null });
    const ingest = this._ingest.get(key);
    if (ingest !== undefined) {
      const bytes = ingest.data;
      // hls.js's own loader fetched it already: the exchange gets those bytes as this download.
      this._ingest.delete(key);
      this.timing.get(key).firstAt = started;
      this.exchange.cdnTotal(a.fetch_id, bytes.length, started);
      if (a.offset < bytes.length) this.exchange.cdnData(a.fetch_id, a.offset, bytes.subarray(a.offset), started);
      this.exchange.cdnDone(a.fetch_id, bytes.length, ingest.elapsedS, started);
      this._noteCdnSample(bytes.length, ingest.elapsedS, started);
      return;
    }
    this.cdnFetchCounts.count(a.segment[1]);
    const info = this.playlists.get(key);
    const abort = new AbortController();
    this.cdnFetches.set(a.fetch_id, { abort, key });
    const timing = this.timing.get(key);
    const report = {
      onTotal: (total) => {
        this.exchange.cdnTotal(a.fetch_id, total, nowS());
        this._drain();
      },
      onData: (offset, chunk) => {
        const now = nowS();
        if (timing.firstAt === null) timing.firstAt = now;
        this.events.emit("bytes-downloaded", { source: "cdn", peerId: null, bytes: chunk.length });
        this.exchange.cdnData(a.fetch_id, offset, chunk, now);
        this._drain();
      },
    };
    const fail = (exc) => {
      console.warn(`p2p: CDN fetch of ${key} failed`, exc);
      this.events.emit("warning", { source: "cdn", reason: "cdn_fetch_failed", message: `CDN fetch of ${info?.url ?? key} failed: ${exc?.message || exc}`, code: null });
      this.exchange.cdnFailed(a.fetch_id, nowS());
      this._drain();
      this.wake();
    };
    if (!info) {
      fail(new Error("not in the playlist"));
      return;
    }
    downloadSegment(info, a.offset, abort.signal, report).then(
      (end) => {
        this.cdnFetches.delete(a.fetch_id);
        if (end === null || this.destroyed) return;
        const now = nowS();
        this.exchange.cdnDone(a.fetch_id, end, Math.max(1e-6, now - timing.startedAt), now);
        this._noteCdnSample(end - a.offset, now - timing.startedAt, now);
        this._drain();
      },
      (exc) => {
        this.cdnFetches.delete(a.fetch_id);
        if (!abort.signal.aborted && !this.destroyed) fail(exc);
      },
    );
  }

  // --- verification and the player ------------------------------------------------------------

  /** Check a whole segment: SHA-256 against the rendition's manifest (refreshed once when it
   * has no entry yet), or without a manifest its size; the verdict goes back to the exchange.
   * Only a peer's bytes wait for that refresh: the CDN's alone are trusted unlisted
   * (docs/exchange.md §6), so their verdict comes at once and the refresh runs in the
   * background (as the agent does: on the network bed at 200 ms / 3 % loss the wait held
   * 1 in 10 CDN-fetched segments 0.13-0.9 s between their last byte and the player). */
  async _verify(a) {
    const key = segmentKey(a.segment);
    const held = this.exchange.held.get(key);
    const peerBytes = held === undefined || [...held.contributors].some((p) => p !== null);
    const timing = this.timing.get(key);
    if (timing) {
      timing.doneAt = nowS();
      // The bytes may come from a resumed download: the source is whoever contributed.
      const { peers } = this.exchange.contributors(a.segment);
      timing.source = peers.length ? "peer" : "cdn";
      timing.peer_id = peers.length ? (peers.includes(timing.peer_id) ? timing.peer_id : peers[0]) : null;
    }
    const info = this.playlists.get(key);
    let verdict = Verdict.UNKNOWN;
    if (info) {
      const target = { key: info.relurl, byteRange: info.byteRange, msn: a.segment[1] };
      verdict = await this.manifests.verify(a.segment[0], target, a.data, a.total_bytes, { wait: peerBytes });
    }
    if (this.destroyed) return;
    if (verdict === Verdict.MISMATCH) {
      const peers = this.exchange.contributors(a.segment).peers;
      this.counters.bytesRejected += a.data.length;
      console.warn(`p2p: ${key} failed its hash (sources: ${peers.join(", ") || "CDN"})`);
    }
    this.exchange.verdict(a.segment, verdict, nowS());
    this._drain();
    this.wake();
  }

  _deliver(a) {
    const key = segmentKey(a.segment);
    const now = nowS();
    const timing = this.timing.get(key) || { startedAt: now, firstAt: now, doneAt: now, source: "cdn", peer_id: null };
    timing.firstAt ??= timing.doneAt ?? now;
    timing.doneAt ??= now;
    this.timing.set(key, timing);
    this.counters.segmentsVerified += 1;
    if (timing.source === "peer") this.counters.segmentsFromPeers += 1;
    else this.counters.segmentsFromCdn += 1;
    const waiters = this.waiters.get(key) || [];
    this.waiters.delete(key);
    for (const w of waiters) w.resolve({ data: a.data.slice(), timing, source: timing.source });
    this.wake();
  }

  _giveUp(a) {
    const key = segmentKey(a.segment);
    console.warn(`p2p: giving up ${key}: it failed its hash ${this.exchange.config.max_hash_retries + 1} times`);
    for (const w of this.waiters.get(key) || []) w.reject(new Error("segment failed its hash"));
    this.waiters.delete(key);
  }

  // --- peers ----------------------------------------------------------------------------------

  /** Every event of a swarm link (the Swarm's onEvent). */
  onLinkEvent(link, e) {
    if (this.destroyed) return;
    let name = this._linkNames.get(link);
    if (name === undefined) {
      name = `L${this._nextLink++}`;
      this._linkNames.set(link, name);
      this.links.set(name, link);
    }
    const pid = this._peerOf(link);
    const now = nowS();
    const stats = this._peerStats(pid);
    if (e.type === "HelloReceived") {
      stats.links.add(link);
      // address and certificate (rtc.js remoteIdentityKeys): bans outlive the peer id
      if (link.identityKeys?.length) this.exchange.setLinkKeys(name, link.identityKeys);
    }
    else if (e.type === "DataReceived") {
      stats.bytesDown += e.data.length;
      const timing = this.timing.get(segmentKey([e.segment.rendition, e.segment.sequence]));
      if (timing && timing.firstAt === null) timing.firstAt = now;
    } else if (e.type === "SessionClosed") {
      const sent = link.session?.stats.payload_bytes_sent || 0;
      if (stats.links.delete(link)) stats.bytesUpClosed += sent;
      this.counters.bytesUploadedClosed += sent;
    }
    this.exchange.onPeerEvent(name, pid, e, now);
    if (e.type === "SessionClosed") this.links.delete(name);
    this._drain();
    if (!["ResponseStarted", "DataReceived", "LateFrames", "SegmentRequested", "RequestCancelled"].includes(e.type)) this.wake();
  }

  _peerOf(link) {
    return link.remotePeerId || (link.session?.remotePeerId ? bytesToAscii(link.session.remotePeerId) : "?");
  }

  _peerStats(pid) {
    let s = this.perPeer.get(pid);
    if (!s) {
      s = { bytesDown: 0, bytesUpClosed: 0, links: new Set(), banned: false };
      this.perPeer.set(pid, s);
    }
    return s;
  }

  // --- statistics -----------------------------------------------------------------------------

  _sample() {
    const s = this.stats();
    this.history.push({ t: nowS(), p2p: s.bytesFromPeers, cdn: s.bytesFromCdn, up: s.bytesUploaded });
    if (this.history.length > this.options.historySamples) this.history.shift();
  }

  /** Everything the demo panel draws; see README "Embedding in a player page". */
  stats() {
    const ex = this.exchange;
    const peers = [];
    let uploadedLive = 0;
    const linkBytes = (link) => link.session?.stats.payload_bytes_sent || 0;
    for (const [pid, s] of this.perPeer) {
      const live = [...s.links].reduce((n, l) => n + linkBytes(l), 0);
      uploadedLive += live;
      const link = this.swarm?.links.get(pid);
      const nb = ex.neighbours.get(pid);
      peers.push({
        peerId: pid,
        connected: Boolean(link && link.isOpen && nb?.open),
        banned: s.banned || ex.penalties.isBanned(pid),
        bytesDown: s.bytesDown,
        bytesUp: s.bytesUpClosed + live,
        rateBytesPerS: ex.peerRates.get(pid)?.estimate ?? null,
        have: nb?.have.size ?? 0,
        hashFailures: ex.penalties.failures.get(pid) || 0,
      });
    }
    const c = this.counters;
    const fromCdn = ex.bytesCdn + c.fallbackBytesNotShared;
    const total = ex.bytesP2p + fromCdn;
    return {
      peerId: this.peerId,
      swarmId: this.infoHash,
      rendition: this.rendition,
      bytesFromPeers: ex.bytesP2p,
      bytesFromCdn: fromCdn,
      bytesUploaded: c.bytesUploadedClosed + uploadedLive,
      p2pRatio: total ? ex.bytesP2p / total : 0,
      segmentsFromPeers: c.segmentsFromPeers,
      segmentsFromCdn: c.segmentsFromCdn,
      segmentsVerified: c.segmentsVerified,
      hashFailures: ex.hashFailures,
      unverifiable: ex.unverifiable,
      cdnFailures: ex.cdnFailures,
      cdnStallCancels: c.cdnStallCancels,
      relaysAborted: ex.server.relaysAborted,
      busySent: ex.server.busySent,
      cdnFallbacks: c.cdnFallbacks,
      bytesRejected: c.bytesRejected,
      integrity: this.manifests.mode,
      cdnFetchesJoinRamp: this.cdnFetchCounts.joinRamp,
      cdnFetchesSteady: this.cdnFetchCounts.steady,
      manifestFetches: this.manifests.fetches,
      manifestBytes: this.manifests.bytesFetched,
      peers,
      connectedPeers: peers.filter((p) => p.connected).length,
      bannedPeers: peers.filter((p) => p.banned).map((p) => p.peerId),
      // banned subjects: id:<peer id>, addr:<IP>, cert:<algorithm> <fingerprint> (docs/exchange.md §8b)
      bannedSubjects: [...ex.reputation.banned].sort(),
      bufferS: this.bufferS(),
      latencyS: this.latencyS(),
      playheadS: this.playhead(),
      trackerConnected: Boolean(this.swarm?.tracker.connected),
      trackerRefused: this.swarm?.tracker.refused ?? null,
      p2pEnabled: this.p2pEnabled,
      uploadEnabled: this.uploadEnabled,
      swarmSize: this.swarm?.tracker.swarmSize || 0,
      storeBytes: ex.store.usedBytes,
      storeSegments: ex.store.size,
      // entries of the exchange's per-segment records (docs/exchange.md §3 "Bounds")
      segmentRecords: { sizes: ex.sizes.size, verified: ex.verified.size, hashRetries: ex.hashRetries.size, avoid: ex.avoid.size, held: ex.held.size },
      history: this.history.slice(),
      deliveries: this.deliveries.slice(),
      actions: { ...this.actionCounts },
    };
  }
}
