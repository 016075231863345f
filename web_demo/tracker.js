// Browser WebSocket client of the WebTorrent tracker protocol as signaling/ speaks it
// (docs/signaling.md); the same behaviour as peer_agent/net/tracker.py:
//
// - announces event "started" on every (re)connection, then every `interval` the server gives
//   (or earlier on announceNow(), at most once per min_announce_gap_s), each with the full-SDP
//   offers makeOffers() returns (at most 5, numwant = their number) and our extension fields
//   (hints: position_s, region, max_peers, caps, connected);
// - hands relayed offers to onOffer(offer) -> answer SDP or null (offer.drop: the server splits
//   our link to that peer, docs/signaling.md "Making room"), and sends the answer;
// - announces again after nextAnnounceS() seconds when that returns a number (the swarm's
//   refill of free neighbour slots), not only every `interval`;
// - hands answers to our offers to onAnswer(answer), and the ids of offers the server relayed to
//   nobody (the reply's unused_offers) to onUnusedOffers(ids);
// - counts `failure reason` replies without stopping;
// - sends cumulative byte counters in our `stats` message;
// - reconnects with exponential backoff and jitter (randomness injected);
// - with request_ice_servers, asks the server for its ICE servers ({action:"ice_servers"}: STUN,
//   and TURN with short-lived TURN REST credentials) before its first offers and again when less
//   than ice_refresh_fraction of their lifetime is left; `ice` holds the latest grant
//   ({servers, expires_unix_s}; credentials never logged). No reply within ice_timeout_s, a
//   refusal or a malformed reply is counted (ice_failures) and warned about, and offers go out
//   with the configured servers only;
// - with tokenProvider (async () => a fresh join token), sends {action:"token", token} on the
//   open socket when less than token_refresh_fraction of the token's lifetime (its exp) is
//   left, so the server never closes it with 4002; a refused refresh is retried after
//   token_retry_s; closed with 4002 anyway, it reconnects with a token from the provider;
// - announces "stopped" on stop(). The join token goes in ?token= (browsers cannot set WS
//   headers); neither the token nor SDP is ever logged.

export const MAX_OFFERS_PER_ANNOUNCE = 5;

// What the signaling server's close codes mean to a page (docs/signaling.md, "Close codes").
// level "error": P2P cannot work until the page or the operator acts (fatal: the client stops
// reconnecting until setToken()); "warning": transient, the client reconnects with backoff.
const CLOSE_REASONS = new Map([
  [1000, ["warning", "closed", "the server closed the connection"]],
  [1001, ["warning", "server_going_away", "the signaling server is shutting down"]],
  [1003, ["warning", "binary_frame", "the server refused a binary frame"]],
  [1006, ["warning", "connection_lost", "the connection to the signaling server was lost"]],
  [1008, ["warning", "policy_violation", "the server refused the connection (policy)"]],
  [1009, ["warning", "message_too_big", "the server refused a frame over its size limit"]],
  [1013, ["warning", "too_many_connections", "the signaling server is full; retrying"]],
  [4000, ["warning", "idle_timeout", "closed after a silent period"]],
  [4001, ["error", "token_invalid", "the join token was refused (malformed or badly signed)"]],
  [4002, ["error", "token_expired", "the join token has expired: mint a new one and call setToken()"]],
  [4003, ["error", "origin_forbidden", "this page's Origin is not allowed by the signaling server (p2p-signaling --origins)"]],
  [4008, ["warning", "send_queue_full", "evicted as a slow reader"]],
  [4009, ["warning", "write_timeout", "evicted as a slow reader"]],
  [4029, ["warning", "rate_limited", "the signaling server rate-limited this client"]],
]);

// Failure replies (`{"failure reason", reason}`) that mean the same as a refused connection.
const FATAL_FAILURES = new Set(["token_swarm_mismatch"]);

/**
 * A tracker close as the page sees it: {level, reason, message, fatal}. `opened`: the socket
 * had opened (a handshake refused before accept gives the browser code 1006 and nothing else);
 * `hadToken`: we sent a token (4001 without one is token_missing).
 */
export function classifyClose(code, serverReason = "", { opened = true, hadToken = false } = {}) {
  if (!opened) {
    return { level: "warning", reason: "tracker_unreachable", message: "cannot reach the signaling server (or it refused the handshake)", fatal: false };
  }
  const known = CLOSE_REASONS.get(code);
  let [level, reason, message] = known || ["warning", "closed", `the server closed the connection (code ${code})`];
  if (code === 4001 && !hadToken) {
    reason = "token_missing";
    message = "the signaling server requires a join token (P2PEngine option token)";
  }
  if (serverReason) message = `${message}: ${serverReason}`;
  return { level, reason, message, fatal: level === "error" };
}

export const DEFAULT_TRACKER_CONFIG = Object.freeze({
  reconnect_initial_s: 0.5, // first reconnect delay; doubles per failure
  reconnect_max_s: 30.0, // cap of the reconnect delay
  reconnect_jitter: 0.5, // delay multiplied by a uniform factor in [1 - j, 1 + j]
  default_interval_s: 120.0, // re-announce period until the server sends its interval
  min_interval_s: 5.0, // floor of the server's interval
  min_announce_gap_s: 2.0, // early announces are spaced by at least this
  request_ice_servers: false, // ask the server for ICE servers (action ice_servers) before offering
  ice_timeout_s: 10.0, // wait this long for the ice_servers reply
  ice_refresh_fraction: 0.25, // ask again when less than this fraction of the lifetime is left
  token_refresh_fraction: 0.25, // with tokenProvider: refresh when less than this of the token's life is left
  token_retry_s: 30.0, // retry a refused or failed refresh after this (or half the time left)
  fetcher_assignment: true, // ask for the server's fetcher assignment (cap "fetchers", docs/signaling.md)
  uplink_bytes_per_s: null, // our uplink claim sent with it (cap "uplink:N"), when known
});

// -- the fetcher assignment (docs/signaling.md, "Fetcher assignment"; Python: peer_agent/net/fetchers.py)
export const FETCHERS_CAP = "fetchers";
const MAX_FETCHERS = 16;
const MAX_FETCHERS_VALID_S = 3600;
const byteId = (v) => typeof v === "string" && v.length === 20 && [...v].every((ch) => ch.charCodeAt(0) < 256);

/**
 * Validate a fetchers message for swarm infoHash: {fetchers, valid_s, slot, region} or throws an
 * Error saying what is wrong (the vectors in docs/vectors/signaling/fetchers_message.json).
 */
export function parseFetchers(msg, infoHash) {
  if (msg.info_hash !== infoHash) throw new Error("fetchers: info_hash is not our swarm's");
  const f = msg.fetchers;
  if (!Array.isArray(f) || f.length === 0 || f.length > MAX_FETCHERS) {
    throw new Error(`fetchers: fetchers must be a list of 1..${MAX_FETCHERS} ids`);
  }
  if (!f.every(byteId) || new Set(f).size !== f.length) {
    throw new Error("fetchers: each fetcher must be a distinct 20-byte peer_id");
  }
  const v = msg.valid_s;
  if (typeof v !== "number" || !(v > 0 && v <= MAX_FETCHERS_VALID_S)) {
    throw new Error(`fetchers: valid_s must be a number in (0, ${MAX_FETCHERS_VALID_S}]`);
  }
  if (!Number.isInteger(msg.slot) || msg.slot < 0) throw new Error("fetchers: slot must be a non-negative integer");
  const region = msg.region ?? null;
  if (region !== null && (typeof region !== "string" || !/^[A-Za-z0-9._-]{1,32}$/.test(region))) {
    throw new Error("fetchers: region must be 1..32 of [A-Za-z0-9._-]");
  }
  return { fetchers: [...f], valid_s: v, slot: msg.slot, region };
}

const MAX_TOKEN_CHARS = 4096;

/** The exp of a join token (docs/signaling.md "Join tokens"), read without the secret; null if unreadable. */
export function tokenExpiryUnixS(token) {
  if (typeof token !== "string" || token.length > MAX_TOKEN_CHARS) return null;
  const parts = token.split(".");
  if (parts.length !== 3 || parts[0] !== "v1") return null;
  try {
    const b64 = parts[1].replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (parts[1].length % 4)) % 4);
    const body = JSON.parse(atob(b64));
    const exp = body?.exp;
    return Number.isInteger(exp) ? exp : null;
  } catch {
    return null;
  }
}

export const MAX_ICE_SERVERS = 8;
const MAX_ICE_URL_CHARS = 256;
const MAX_ICE_SECRET_CHARS = 512;
const ICE_SCHEMES = ["stun:", "turn:", "turns:"];

/**
 * Validate an ice_servers reply (docs/signaling.md); throws an Error saying what is wrong.
 * Returns {servers: [{urls: [...], username?, credential?}], expires_unix_s}.
 */
export function parseIceReply(msg, nowUnixS) {
  const raw = msg.ice_servers;
  const expires = msg.expires;
  if (!Array.isArray(raw) || raw.length > MAX_ICE_SERVERS) throw new Error(`ice_servers must be a list of at most ${MAX_ICE_SERVERS}`);
  if (typeof expires !== "number" || !Number.isFinite(expires)) throw new Error("expires must be a number");
  if (expires <= nowUnixS) throw new Error("the ICE credentials have already expired (clock skew?)");
  const servers = raw.map((entry) => {
    if (entry === null || typeof entry !== "object" || Array.isArray(entry)) throw new Error("each ice server must be an object");
    const urls = typeof entry.urls === "string" ? [entry.urls] : entry.urls;
    if (!Array.isArray(urls) || urls.length === 0 || urls.length > MAX_ICE_SERVERS) throw new Error("urls must be a string or a non-empty list");
    for (const url of urls) {
      if (typeof url !== "string" || !ICE_SCHEMES.some((s) => url.startsWith(s))) throw new Error("each url must be a stun:/turn:/turns: string");
      if (url.length > MAX_ICE_URL_CHARS || url.includes("@")) throw new Error("url too long or with credentials in it");
    }
    const out = { urls: [...urls] };
    for (const name of ["username", "credential"]) {
      const value = entry[name];
      if (value === undefined || value === null) continue;
      if (typeof value !== "string" || value.length > MAX_ICE_SECRET_CHARS) throw new Error(`${name} must be a string of at most ${MAX_ICE_SECRET_CHARS}`);
      out[name] = value;
    }
    return out;
  });
  return { servers, expires_unix_s: expires };
}

/** Report reasons the server accepts (docs/signaling.md, "Reports"). */
export const REPORT_REASONS = Object.freeze(["hash_failure", "protocol", "lies", "stall", "flood"]);

export class TrackerClient {
  /**
   * @param opts {url, infoHash, peerId, token?, config?, random?, WebSocket?,
   *   makeOffers?: async () => [[offerId, sdp]], onOffer?: async ({peer_id, offer_id, sdp}) => sdp|null,
   *   onAnswer?: ({peer_id, offer_id, sdp}) => void, onReply?: ({interval_s, complete, incomplete}) => void,
   *   nextAnnounceS?: () => number|null (asked after each announce: announce again this soon),
   *   onUnusedOffers?: (offerIds) => void (our offers the server relayed to nobody),
   *   onFailure?: (reason, detail) => void, emit?: (type, detail) => void (events.js)}
   */
  constructor(opts) {
    for (const name of ["infoHash", "peerId"]) {
      if (typeof opts[name] !== "string" || opts[name].length !== 20) throw new Error(`${name} must be 20 characters`);
    }
    if (opts.peerId.startsWith("-PH0002-") && typeof opts.peerKey !== "string") {
      throw new Error("a keyed peerId (-PH0002-) needs its peerKey");
    }
    this.url = opts.url;
    this.infoHash = opts.infoHash;
    this.peerId = opts.peerId;
    this._peerKey = opts.peerKey ?? null; // proves a keyed peer_id on every announce; never logged
    this.config = Object.freeze({ ...DEFAULT_TRACKER_CONFIG, ...(opts.config || {}) });
    this.hints = { position_s: null, region: null, max_peers: null, caps: [], connected: [] };
    this.stats = {
      connects: 0,
      disconnects: 0,
      connect_failures: 0,
      announces_sent: 0,
      announce_replies: 0,
      offers_sent: 0,
      offers_received: 0,
      answers_sent: 0,
      answers_received: 0,
      offers_refused: 0,
      stats_sent: 0,
      failures: 0,
      failure_reasons: {},
      ignored_messages: 0,
      ice_requests: 0,
      ice_replies: 0,
      ice_failures: 0,
      token_refreshes: 0,
      token_refresh_failures: 0,
      fetchers_received: 0,
      fetchers_refused: 0, // malformed fetchers messages (ignored; the earlier assignment stays)
      last_close_code: null,
    };
    this.assignment = null; // the server's fetcher assignment, held until assignmentUntil (s)
    this.assignmentUntil = 0;
    this.intervalS = this.config.default_interval_s;
    this.swarmSize = 0;
    this._token = opts.token || null;
    this._tokenProvider = opts.tokenProvider || null;
    this._tokenTimer = null;
    this._pendingToken = null; // sent in a refresh, not yet acknowledged
    this._random = opts.random || Math.random;
    this._WebSocket = opts.WebSocket || globalThis.WebSocket;
    this._makeOffers = opts.makeOffers || null;
    this._onOffer = opts.onOffer || null;
    this._onAnswer = opts.onAnswer || null;
    this._onReply = opts.onReply || null;
    this._nextAnnounceS = opts.nextAnnounceS || null; // after each announce: seconds to the next, or null
    this._onUnusedOffers = opts.onUnusedOffers || null; // ids of our offers relayed to nobody
    this._onFailure = opts.onFailure || null;
    this._emit = opts.emit || (() => {});
    this.refused = null; // the reason of a fatal refusal: no reconnects until setToken()
    this._lastProblem = null; // the last warning/error reason emitted (no repeats in a streak)
    this._connectedEmitted = false; // tracker-connected sent for this connection
    this._ws = null;
    this._stopping = false;
    this._announced = false;
    this._failuresInARow = 0;
    this._announceTimer = null;
    this._reconnectTimer = null;
    this._lastAnnounceAt = -Infinity;
    this._announcing = false;
    this._pendingEvent = "started";
    this._counters = null;
    this._countersSent = null;
    this.ice = null; // the latest ICE servers from the tracker
    this._iceRefreshAt = -Infinity; // now() after which we ask again
    this._iceWaiter = null; // resolves the pending ice_servers request
  }

  get connected() {
    return this._ws !== null && this._ws.readyState === 1;
  }

  start() {
    this._connect();
  }

  stop() {
    if (this._stopping) return;
    this._stopping = true;
    clearTimeout(this._announceTimer);
    clearTimeout(this._reconnectTimer);
    clearTimeout(this._tokenTimer);
    const ws = this._ws;
    if (ws !== null) {
      if (this._announced && ws.readyState === 1) this._send(ws, this._announceBody("stopped", []));
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
  }

  /** Re-announce soon (fresh offers), no earlier than min_announce_gap_s after the last. */
  announceNow() {
    if (this._stopping || !this.connected) return;
    const wait = this.config.min_announce_gap_s - (now() - this._lastAnnounceAt);
    this._scheduleAnnounce(Math.max(0, wait));
  }

  /** A new join token (e.g. after token_expired): reconnect with it now. */
  setToken(token) {
    this._token = token || null;
    if (this._stopping) return;
    this.refused = null;
    this._lastProblem = null;
    this._failuresInARow = 0;
    clearTimeout(this._reconnectTimer);
    const ws = this._ws;
    if (ws !== null) {
      this._ws = null;
      ws.onclose = null;
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    this._connect();
  }

  /** Stop connecting after a refusal that retrying cannot fix (until setToken()). */
  _refuse(reason) {
    this.refused = reason;
    clearTimeout(this._announceTimer);
    clearTimeout(this._reconnectTimer);
    try {
      this._ws?.close(1000);
    } catch {
      // already closing
    }
  }

  _problem(level, reason, message, code = null, fatal = false) {
    if (this._lastProblem === reason) return;
    this._lastProblem = reason;
    const detail = { source: "tracker", reason, message, code };
    if (level === "error") {
      console.error(`tracker: ${message} (${reason})`);
      this._emit("error", { ...detail, fatal });
    } else {
      console.warn(`tracker: ${message} (${reason})`);
      this._emit("warning", detail);
    }
  }

  /** Report cumulative byte counters, and optionally CDN fetches by phase ([join ramp, steady]:
   * docs/simulator.md); sent now if announced, else after the next announce. */
  sendStats(bytesP2pDown, bytesP2pUp, bytesCdn, cdnFetches = null) {
    const fetches = cdnFetches ? cdnFetches : [];
    this._counters = [bytesP2pDown, bytesP2pUp, bytesCdn, ...fetches].map((n) => Math.max(0, Math.floor(n)));
    if (this._ws !== null && this._announced) this._flushStats(this._ws);
  }

  /** Report a peer we banned or refused (docs/signaling.md, "Reports"); `reason` is one of
   * REPORT_REASONS. False: not connected and announced (dropped: a later ban reports again). */
  report(reportedPeerId, reason) {
    if (!REPORT_REASONS.includes(reason)) throw new Error(`reason must be one of ${REPORT_REASONS.join(", ")}`);
    const ws = this._ws;
    if (ws === null || !this._announced || reportedPeerId === this.peerId) return false;
    return this._send(ws, {
      action: "report",
      info_hash: this.infoHash,
      peer_id: this.peerId,
      reported_peer_id: reportedPeerId,
      reason,
    });
  }

  // --- connection -----------------------------------------------------------------------------

  _connectUrl() {
    if (!this._token) return this.url;
    const sep = this.url.includes("?") ? "&" : "?";
    return `${this.url}${sep}token=${encodeURIComponent(this._token)}`;
  }

  _connect() {
    if (this._stopping || this.refused !== null) return;
    let ws;
    try {
      ws = new this._WebSocket(this._connectUrl());
    } catch (exc) {
      this._problem("error", "bad_tracker_url", `cannot open ${this.url}: ${exc?.message || exc}`, null, false);
      this.stats.connect_failures += 1;
      this._failuresInARow += 1;
      this._scheduleReconnect();
      return;
    }
    this._ws = ws;
    let opened = false;
    ws.onopen = () => {
      opened = true;
      this._connectedEmitted = false;
      this.stats.connects += 1;
      this._announced = false;
      this._countersSent = null;
      this._pendingEvent = "started";
      this._scheduleAnnounce(0);
      this._scheduleTokenRefresh(ws);
    };
    ws.onmessage = (e) => {
      try {
        this._onFrame(ws, e.data);
      } catch (exc) {
        this.stats.ignored_messages += 1;
        console.warn("tracker: handling a frame failed", exc);
      }
    };
    ws.onclose = (e) => {
      if (this._ws === ws) this._ws = null;
      this.assignment = null; // the server's word holds only while we hear it
      this.stats.last_close_code = e?.code ?? null;
      clearTimeout(this._announceTimer);
      const wasAnnounced = this._announced;
      this._announced = false;
      if (opened) this.stats.disconnects += 1;
      else {
        this.stats.connect_failures += 1;
        this._failuresInARow += 1;
      }
      if (this._failuresInARow === 0) this._failuresInARow = 1;
      clearTimeout(this._tokenTimer);
      if (this._stopping || this.refused !== null) return;
      const code = e?.code ?? 1006;
      if (code === 4002 && this._tokenProvider) {
        // a fresh token at the reconnect loses nothing (keyed peer_ids survive reconnects)
        this._tokenProvider().then(
          (token) => this.setToken(token),
          () => this._problem("error", "token_expired", "the join token expired and the token provider failed", code, true),
        );
        return;
      }
      const c = classifyClose(code, String(e?.reason || "").slice(0, 200), { opened, hadToken: Boolean(this._token) });
      if (wasAnnounced) this._emit("tracker-disconnected", { url: this.url, code, reason: c.reason });
      this._problem(c.level, c.reason, c.message, code, c.fatal);
      if (c.fatal) {
        this.refused = c.reason;
        return;
      }
      this._scheduleReconnect();
    };
    ws.onerror = () => {}; // onclose follows
  }

  _scheduleTokenRefresh(ws, failed = false) {
    clearTimeout(this._tokenTimer);
    if (!this._tokenProvider || this._stopping) return;
    const exp = tokenExpiryUnixS(this._token);
    if (exp === null) return;
    const leftS = exp - Date.now() / 1000;
    let waitS = Math.max(0, leftS * (1 - this.config.token_refresh_fraction));
    if (failed && leftS > 0) waitS = Math.min(waitS, this.config.token_retry_s, leftS / 2);
    this._tokenTimer = setTimeout(() => this._refreshToken(ws), waitS * 1000);
  }

  async _refreshToken(ws) {
    if (this._stopping || this._ws !== ws || ws.readyState !== 1) return;
    let token;
    try {
      token = await this._tokenProvider();
    } catch {
      this.stats.token_refresh_failures += 1;
      this._problem("warning", "token_refresh_failed", "the token provider failed; retrying");
      this._scheduleTokenRefresh(ws, true);
      return;
    }
    this._pendingToken = token;
    if (!this._send(ws, { action: "token", token })) this._pendingToken = null;
  }

  _scheduleReconnect() {
    if (this._stopping) return;
    const c = this.config;
    const n = Math.max(1, this._failuresInARow);
    const delay = Math.min(c.reconnect_max_s, c.reconnect_initial_s * 2 ** Math.min(n - 1, 30));
    const factor = 1 - c.reconnect_jitter + 2 * c.reconnect_jitter * this._random();
    clearTimeout(this._reconnectTimer);
    this._reconnectTimer = setTimeout(() => this._connect(), delay * factor * 1000);
  }

  _scheduleAnnounce(delayS) {
    clearTimeout(this._announceTimer);
    this._announceTimer = setTimeout(() => this._announce(), delayS * 1000);
  }

  async _announce() {
    const ws = this._ws;
    if (this._stopping || ws === null || ws.readyState !== 1) return;
    if (this._announcing) return;
    this._announcing = true;
    try {
      if (this.config.request_ice_servers && now() >= this._iceRefreshAt) await this._requestIce(ws);
      if (this._stopping || this._ws !== ws || ws.readyState !== 1) return;
      let offers = [];
      if (this._makeOffers) {
        try {
          offers = (await this._makeOffers()).slice(0, MAX_OFFERS_PER_ANNOUNCE);
        } catch (exc) {
          console.warn("tracker: makeOffers failed", exc);
        }
      }
      if (this._stopping || this._ws !== ws || ws.readyState !== 1) return;
      const event = this._pendingEvent;
      this._pendingEvent = null;
      this._send(ws, this._announceBody(event, offers));
      this.stats.announces_sent += 1;
      this.stats.offers_sent += offers.length;
      this._lastAnnounceAt = now();
    } finally {
      this._announcing = false;
    }
    let waitS = this.intervalS;
    if (this._nextAnnounceS) {
      const soonerS = this._nextAnnounceS();
      if (typeof soonerS === "number") waitS = Math.min(waitS, Math.max(soonerS, this.config.min_announce_gap_s));
    }
    this._scheduleAnnounce(waitS);
  }

  _requestIce(ws) {
    this.stats.ice_requests += 1;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this._iceWaiter = null;
        this._iceFailed(`no ice_servers reply within ${this.config.ice_timeout_s} s`);
        resolve();
      }, this.config.ice_timeout_s * 1000);
      this._iceWaiter = () => {
        clearTimeout(timer);
        this._iceWaiter = null;
        resolve();
      };
      if (!this._send(ws, { action: "ice_servers" })) this._iceWaiter();
    });
  }

  _iceFailed(why) {
    this.stats.ice_failures += 1;
    this._iceRefreshAt = -Infinity; // ask again at the next announce
    console.warn(`tracker: no ICE servers from the tracker (${why})`);
  }

  _onIceReply(msg) {
    const nowUnixS = Date.now() / 1000;
    try {
      const grant = parseIceReply(msg, nowUnixS);
      this.ice = grant;
      this.stats.ice_replies += 1;
      const lifeS = grant.expires_unix_s - nowUnixS;
      this._iceRefreshAt = now() + lifeS * (1 - this.config.ice_refresh_fraction);
    } catch (exc) {
      this.stats.ignored_messages += 1;
      this._iceFailed(`bad ice_servers reply: ${exc.message}`);
    }
    this._iceWaiter?.();
  }

  _announceBody(event, offers) {
    const body = { action: "announce", info_hash: this.infoHash, peer_id: this.peerId, numwant: offers.length };
    if (this._peerKey) body.peer_key = this._peerKey;
    if (event) body.event = event;
    if (event !== "stopped") {
      body.offers = offers.map(([offer_id, sdp]) => ({ offer_id, offer: { type: "offer", sdp } }));
      const h = this.hints;
      if (typeof h.position_s === "number" && Number.isFinite(h.position_s)) body.position_s = Math.max(0, h.position_s);
      if (h.region) body.region = h.region;
      if (Number.isInteger(h.max_peers)) body.max_peers = h.max_peers;
      const caps = [...(h.caps || [])];
      if (this.config.fetcher_assignment && !caps.includes(FETCHERS_CAP)) {
        caps.push(FETCHERS_CAP);
        if (Number.isInteger(this.config.uplink_bytes_per_s)) caps.push(`uplink:${this.config.uplink_bytes_per_s}`);
      }
      if (caps.length) body.caps = caps.slice(0, 16);
      if (h.connected?.length) body.connected = h.connected.slice(0, 256);
    }
    return body;
  }

  _send(ws, body) {
    try {
      ws.send(JSON.stringify(body));
      return true;
    } catch {
      return false;
    }
  }

  _flushStats(ws) {
    const c = this._counters;
    const sent = this._countersSent;
    if (c === null || (sent && sent.length === c.length && c.every((v, i) => v === sent[i]))) return;
    const [down, up, cdn, ramp, steady] = c;
    const body = {
      action: "stats",
      info_hash: this.infoHash,
      peer_id: this.peerId,
      bytes_p2p_down: down,
      bytes_p2p_up: up,
      bytes_cdn: cdn,
    };
    if (c.length === 5) Object.assign(body, { cdn_fetches_join_ramp: ramp, cdn_fetches_steady: steady });
    if (this._send(ws, body)) {
      this._countersSent = c;
      this.stats.stats_sent += 1;
    }
  }

  // --- incoming -------------------------------------------------------------------------------

  _onFrame(ws, raw) {
    let msg;
    try {
      msg = JSON.parse(raw);
    } catch {
      this.stats.ignored_messages += 1;
      return;
    }
    if (msg === null || typeof msg !== "object" || Array.isArray(msg)) {
      this.stats.ignored_messages += 1;
      return;
    }
    if ("failure reason" in msg) {
      const reason = String(msg.reason ?? "unknown");
      this.stats.failures += 1;
      this.stats.failure_reasons[reason] = (this.stats.failure_reasons[reason] || 0) + 1;
      const detail = String(msg["failure reason"]).slice(0, 200);
      if (FATAL_FAILURES.has(reason)) {
        this._problem("error", reason, `the signaling server refused this swarm: ${detail}`, null, true);
        this._refuse(reason);
      } else {
        this._problem("warning", reason, `the signaling server refused a message: ${detail}`);
      }
      if (this._onFailure) this._onFailure(reason, detail);
      if (msg.action === "ice_servers") {
        this._iceFailed(`refused: ${reason}`);
        this._iceWaiter?.();
      }
      if (msg.action === "token") {
        this.stats.token_refresh_failures += 1;
        this._pendingToken = null;
        this._scheduleTokenRefresh(ws, true);
      }
      return;
    }
    if (msg.action === "token" && "expires_at" in msg) {
      if (this._pendingToken !== null) this._token = this._pendingToken; // also what a reconnect uses
      this._pendingToken = null;
      this.stats.token_refreshes += 1;
      this._scheduleTokenRefresh(ws);
      return;
    }
    if (msg.action === "ice_servers" && "ice_servers" in msg) {
      this._onIceReply(msg);
      return;
    }
    if (msg.action === "fetchers") {
      this._onFetchers(msg);
      return;
    }
    if (msg.action !== "announce" || msg.info_hash !== this.infoHash) {
      this.stats.ignored_messages += 1;
      return;
    }
    if ("offer" in msg) this._onRelayedOffer(ws, msg);
    else if ("answer" in msg) this._onRelayedAnswer(msg);
    else if ("interval" in msg) this._onReplyFrame(ws, msg);
    else this.stats.ignored_messages += 1;
  }

  _onFetchers(msg) {
    let a;
    try {
      a = parseFetchers(msg, this.infoHash);
    } catch (exc) {
      this.stats.fetchers_refused += 1;
      console.warn(`tracker: ignored a malformed fetcher assignment: ${exc.message}`);
      return;
    }
    this.stats.fetchers_received += 1;
    this.assignment = a;
    this.assignmentUntil = now() + a.valid_s;
  }

  /** The scheduler's view fields: {fetchers, fetchers_until} (none: [] and 0). */
  fetcherAssignment() {
    if (this.assignment === null) return { fetchers: [], fetchers_until: 0 };
    return { fetchers: this.assignment.fetchers, fetchers_until: this.assignmentUntil };
  }

  _onReplyFrame(ws, msg) {
    if (typeof msg.interval === "number") this.intervalS = Math.max(this.config.min_interval_s, msg.interval);
    this.stats.announce_replies += 1;
    this._announced = true;
    this._failuresInARow = 0;
    const reply = {
      interval_s: this.intervalS,
      complete: Number(msg.complete) || 0,
      incomplete: Number(msg.incomplete) || 0,
    };
    this.swarmSize = reply.complete + reply.incomplete;
    if (this._onUnusedOffers && Array.isArray(msg.unused_offers)) {
      const ids = msg.unused_offers.slice(0, MAX_OFFERS_PER_ANNOUNCE).filter((u) => typeof u === "string");
      if (ids.length > 0) this._onUnusedOffers(ids);
    }
    if (!this._connectedEmitted) {
      this._connectedEmitted = true;
      this._lastProblem = null;
      this._emit("tracker-connected", { url: this.url, swarmId: this.infoHash, swarmSize: this.swarmSize });
    }
    this._flushStats(ws);
    if (this._onReply) this._onReply(reply);
  }

  static _sdpOf(msg, key) {
    const desc = msg[key];
    if (typeof msg.peer_id !== "string" || msg.peer_id.length !== 20 || typeof msg.offer_id !== "string") return null;
    if (desc === null || typeof desc !== "object" || desc.type !== key || typeof desc.sdp !== "string") return null;
    const out = { peer_id: msg.peer_id, offer_id: msg.offer_id, sdp: desc.sdp };
    if (key === "offer" && typeof msg.drop === "string" && msg.drop.length === 20) out.drop = msg.drop;
    return out;
  }

  _onRelayedOffer(ws, msg) {
    const offer = TrackerClient._sdpOf(msg, "offer");
    if (offer === null) {
      this.stats.ignored_messages += 1;
      return;
    }
    this.stats.offers_received += 1;
    if (offer.peer_id === this.peerId || !this._onOffer) {
      this.stats.offers_refused += 1;
      return;
    }
    Promise.resolve()
      .then(() => this._onOffer(offer))
      .catch((exc) => {
        console.warn("tracker: onOffer failed", exc);
        return null;
      })
      .then((sdp) => {
        if (!sdp) {
          this.stats.offers_refused += 1;
          return;
        }
        const body = {
          action: "announce",
          info_hash: this.infoHash,
          peer_id: this.peerId,
          to_peer_id: offer.peer_id,
          offer_id: offer.offer_id,
          answer: { type: "answer", sdp },
        };
        if (this._send(this._ws || ws, body)) this.stats.answers_sent += 1;
      });
  }

  _onRelayedAnswer(msg) {
    const answer = TrackerClient._sdpOf(msg, "answer");
    if (answer === null) {
      this.stats.ignored_messages += 1;
      return;
    }
    this.stats.answers_received += 1;
    if (this._onAnswer) {
      Promise.resolve()
        .then(() => this._onAnswer(answer))
        .catch((exc) => console.warn("tracker: onAnswer failed", exc));
    }
  }
}

function now() {
  return performance.now() / 1000;
}
