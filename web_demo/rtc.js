// One neighbour: an RTCPeerConnection, one data channel "p2p-hls/1" and the PeerSession it
// drives. Glue only, like peer_agent/net/rtc.py:
//
// - channel message -> session.receiveData(data, now), then every pending event goes to
//   onEvent(link, event);
// - after every input it flushes session.dataToSend(budget) with a budget that keeps the
//   channel's bufferedAmount under high_water_bytes (control messages always go out; DATA waits
//   for "bufferedamountlow", fired when the buffer drains to low_water_bytes);
// - one setTimeout re-armed at session.getTimer();
// - the end of the channel or connection closes the session (transportClosed), and a closed
//   session closes the connection. SessionClosed reaches the app exactly once.
//
// Signalling is full (non-trickle) SDP: we wait for ICE gathering to complete. The offerer
// creates the channel (ordered, reliable); the answerer takes it from "datachannel".

import { asciiBytes } from "./ids.js";
import { PeerSession } from "./session.js";
import { CHANNEL_LABEL, CloseCode } from "./wire.js";

export const DEFAULT_LINK_CONFIG = Object.freeze({
  ice_servers: [], // empty: host candidates only (LANs, loopback); give STUN/TURN for the Internet
  high_water_bytes: 1024 * 1024, // DATA is pulled from the session only under this bufferedAmount
  low_water_bytes: 256 * 1024, // bufferedAmountLowThreshold: flushing resumes here
  offer_ttl_s: 30.0, // an offer with no answer after this is closed
  gather_timeout_s: 5.0, // longest wait for ICE gathering before sending what we have
  close_timeout_s: 1.0, // after our CLOSE, wait this long before tearing the connection down
  identity_timeout_s: 2.0, // longest wait for getStats() (the remote's address) before the session starts
});

/** Messages kept while the link reads its remote's identity, before its session starts. */
export const MAX_EARLY_MESSAGES = 64;

/**
 * What identifies the remote beyond its peer id, for bans that stick (docs/exchange.md §8b), as
 * peer_agent/net/rtc.py's remote_identity_keys: `addr:<IP>` of the remote candidate of the
 * selected ICE candidate pair (no port: ports are free; none for a `relay` candidate, whose
 * address is the TURN server's, shared by every peer it relays), and `cert:<algorithm> <FINGERPRINT>` of
 * each DTLS certificate fingerprint the remote description announced (the DTLS handshake fails
 * unless the certificate matches). `stats`: an RTCStatsReport (or any iterable of stats
 * objects); `remoteSdp`: the remote description's SDP. Pure.
 */
export function remoteIdentityKeys(stats, remoteSdp) {
  const byId = new Map();
  for (const s of typeof stats?.values === "function" ? stats.values() : stats || []) byId.set(s.id, s);
  let pair;
  for (const s of byId.values()) {
    if (s.type === "transport" && s.selectedCandidatePairId) pair = byId.get(s.selectedCandidatePairId);
  }
  if (pair === undefined) {
    pair = [...byId.values()].find((s) => s.type === "candidate-pair" && s.nominated && s.state === "succeeded");
  }
  const keys = [];
  const remote = pair !== undefined ? byId.get(pair.remoteCandidateId) : undefined;
  // A relay candidate's address is the TURN server's, shared by every peer it relays: no key.
  const ip = remote !== undefined && remote.candidateType !== "relay" ? remote.address || remote.ip : undefined;
  if (ip) keys.push(`addr:${ip}`);
  for (const line of (remoteSdp || "").split(/\r?\n/)) {
    if (!line.startsWith("a=fingerprint:")) continue;
    const [algorithm, value] = line.slice("a=fingerprint:".length).trim().split(/\s+/, 2);
    if (algorithm && value) keys.push(`cert:${algorithm.toLowerCase()} ${value.toUpperCase()}`);
  }
  return [...new Set(keys)];
}

/** A promise that rejects after `timeoutS`. */
function within(promise, timeoutS, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} took over ${timeoutS} s`)), timeoutS * 1000);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

const nowS = () => performance.now() / 1000;

function waitForGathering(pc, timeoutS) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(done, timeoutS * 1000);
    function done() {
      clearTimeout(timer);
      pc.removeEventListener("icegatheringstatechange", check);
      resolve();
    }
    function check() {
      if (pc.iceGatheringState === "complete") done();
    }
    pc.addEventListener("icegatheringstatechange", check);
  });
}

export class PeerLink {
  /**
   * @param opts {swarmId: Uint8Array(20), localPeerId: Uint8Array(20), sessionConfig,
   *   onEvent(link, event), hello: () => ({have, fetching}), config?, remotePeerId?,
   *   onSent?: (link, payloadBytes) => void}
   */
  constructor(opts) {
    this.config = Object.freeze({ ...DEFAULT_LINK_CONFIG, ...(opts.config || {}) });
    this.swarmId = opts.swarmId;
    this.localPeerId = opts.localPeerId;
    this.sessionConfig = opts.sessionConfig;
    this.remotePeerId = opts.remotePeerId || null;
    this.role = null;
    this.session = null;
    this.channel = null;
    this.maxBufferedBytes = 0;
    this.openedAt = null;
    /** The remote's identity keys (remoteIdentityKeys), read when the channel opens. */
    this.identityKeys = [];
    /** Why they could not be read (null: they were). */
    this.identityError = null;
    this._starting = false;
    this._early = [];
    this._onEvent = opts.onEvent;
    this._onSent = opts.onSent || null;
    this._hello = opts.hello || (() => ({ have: [], fetching: [] }));
    this._started = false;
    this._closedReported = false;
    this._timer = null;
    this._ttl = null;
    this._flushing = false;
    // Every listener on the connection and its channel goes with this signal at teardown, so a
    // closed link holds none (a page that churns links must not collect them).
    this._listeners = new AbortController();
    const signal = this._listeners.signal;
    this.pc = new RTCPeerConnection({ iceServers: this.config.ice_servers });
    this.pc.addEventListener(
      "connectionstatechange",
      () => {
        const s = this.pc.connectionState;
        if (s === "failed" || s === "closed") this._transportEnded(`connection ${s}`);
      },
      { signal },
    );
    this.pc.addEventListener(
      "datachannel",
      (e) => {
        if (this.role === "answerer" && this.channel === null && e.channel.label === CHANNEL_LABEL) {
          this._wireChannel(e.channel);
        } else {
          e.channel.close();
        }
      },
      { signal },
    );
  }

  get isOpen() {
    return this._started && this.session !== null && !this.session.isClosed;
  }

  get isClosed() {
    return this._closedReported;
  }

  // --- signalling ---------------------------------------------------------------------------

  async _setLocal(description) {
    await this.pc.setLocalDescription(description);
    await waitForGathering(this.pc, this.config.gather_timeout_s);
    return this.pc.localDescription.sdp;
  }

  /** Create the channel and a full SDP offer. Starts the offer TTL. */
  async createOffer() {
    if (this.role !== null) throw new Error("createOffer on a link already in use");
    this.role = "offerer";
    this._wireChannel(this.pc.createDataChannel(CHANNEL_LABEL, { ordered: true }));
    const sdp = await this._setLocal(await this.pc.createOffer());
    if (!this._closedReported) this._ttl = setTimeout(() => this._offerExpired(), this.config.offer_ttl_s * 1000);
    return sdp;
  }

  /** Apply the answer to our offer; the session (and its HELLO timeout) starts now. */
  async acceptAnswer(sdp, remotePeerId = null) {
    if (this.role !== "offerer" || this.session !== null) throw new Error("acceptAnswer needs a pending offer");
    if (this._closedReported) return;
    clearTimeout(this._ttl);
    if (remotePeerId) this.remotePeerId = remotePeerId;
    this._newSession();
    try {
      await this.pc.setRemoteDescription({ type: "answer", sdp });
    } catch {
      this.close(CloseCode.PROTOCOL_ERROR, "bad answer SDP");
    }
  }

  /** Answer a remote offer: the full answer SDP, or null (the link is then closed). */
  async acceptOffer(sdp, remotePeerId = null) {
    if (this.role !== null) throw new Error("acceptOffer on a link already in use");
    this.role = "answerer";
    if (remotePeerId) this.remotePeerId = remotePeerId;
    this._newSession();
    try {
      await this.pc.setRemoteDescription({ type: "offer", sdp });
      return await this._setLocal(await this.pc.createAnswer());
    } catch {
      this.close(CloseCode.PROTOCOL_ERROR, "bad offer SDP");
      return null;
    }
  }

  _newSession() {
    let expected = null;
    if (typeof this.remotePeerId === "string" && this.remotePeerId.length === 20) {
      try {
        expected = asciiBytes(this.remotePeerId);
      } catch {
        expected = null; // not a byte string: no identity to hold the remote to
      }
    }
    this.session = new PeerSession(this.sessionConfig, this.swarmId, this.localPeerId, nowS(), expected);
    this._armTimer();
  }

  _offerExpired() {
    this._ttl = null;
    if (this.session === null && !this._closedReported) {
      this._report({ type: "SessionClosed", code: CloseCode.NORMAL, reason: "offer expired", by_remote: false });
      this._teardown();
    }
  }

  // --- channel ------------------------------------------------------------------------------

  _wireChannel(channel) {
    this.channel = channel;
    channel.binaryType = "arraybuffer";
    channel.bufferedAmountLowThreshold = this.config.low_water_bytes;
    const signal = this._listeners.signal;
    channel.addEventListener("open", () => this._onOpen(), { signal });
    channel.addEventListener("message", (e) => this._guard(() => this._onMessage(e.data)), { signal });
    channel.addEventListener("bufferedamountlow", () => this._guard(() => this.flush()), { signal });
    channel.addEventListener("close", () => this._transportEnded("channel closed"), { signal });
    if (channel.readyState === "open") this._onOpen();
  }

  _onOpen() {
    if (this._started || this._starting || this.session === null || this.session.isClosed) return;
    this._starting = true;
    // The remote's address and certificate first, so that the HELLO can be judged by them.
    within(this.pc.getStats(), this.config.identity_timeout_s, "getStats")
      .then((stats) => {
        this.identityKeys = remoteIdentityKeys(stats, this.pc.remoteDescription?.sdp);
        if (!this.identityKeys.some((k) => k.startsWith("addr:"))) this.identityError = "no selected candidate pair";
      })
      .catch((exc) => {
        this.identityError = String(exc?.message || exc);
        this.identityKeys = remoteIdentityKeys([], this.pc.remoteDescription?.sdp);
      })
      .finally(() => this._start());
  }

  _start() {
    this._starting = false;
    if (this._started || this.session === null || this.session.isClosed || this._closedReported) {
      this._early = [];
      return;
    }
    if (this.identityError !== null) console.warn(`p2p link: remote address unknown (${this.identityError}): bans key on its peer id and certificate only`);
    this._guard(() => {
      const { have, fetching } = this._hello();
      this.session.start({ now: nowS(), have, fetching });
      this._started = true;
      this.openedAt = nowS();
      this.flush();
    });
    const early = this._early;
    this._early = [];
    for (const data of early) this._guard(() => this._onMessage(data));
  }

  _onMessage(data) {
    if (this._starting) {
      // the remote's HELLO may come while we read its identity: kept (bounded) for the session
      if (this._early.length >= MAX_EARLY_MESSAGES) this.close(CloseCode.LIMIT_EXCEEDED, "too many messages before our HELLO");
      else this._early.push(data);
      return;
    }
    if (this.session === null || !this._started) return;
    const late = this.session.stats.late_frames_dropped;
    this.session.receiveData(data, nowS());
    this._deliver();
    // bytes stuck behind a loss arrived after we gave up their request: the link is alive
    const more = this.session.stats.late_frames_dropped - late;
    if (more > 0 && !this._closedReported) {
      try {
        this._onEvent(this, { type: "LateFrames", count: more });
      } catch (exc) {
        console.error("p2p link: event handler failed", exc);
      }
    }
    this.flush();
  }

  _guard(fn) {
    try {
      fn();
    } catch (exc) {
      console.error("p2p link: internal error", exc);
      if (this.session !== null && !this.session.isClosed) {
        try {
          this.session.close(CloseCode.GOING_AWAY, "internal error");
        } catch {
          // nothing more to do
        }
      }
      this.flush();
    }
  }

  _deliver() {
    if (this.session === null) return;
    for (let e = this.session.nextEvent(); e !== null; e = this.session.nextEvent()) {
      if (e.type === "SessionClosed") {
        this._report(e);
        this._scheduleTeardown();
      } else if (!this._closedReported) {
        try {
          this._onEvent(this, e);
        } catch (exc) {
          console.error("p2p link: event handler failed", exc);
        }
      }
    }
  }

  _report(event) {
    if (this._closedReported) return;
    this._closedReported = true;
    try {
      this._onEvent(this, event);
    } catch (exc) {
      console.error("p2p link: event handler failed", exc);
    }
  }

  /** Send what the session has, keeping bufferedAmount under the high-water mark. */
  flush() {
    const session = this.session;
    const ch = this.channel;
    if (session === null || this._flushing) return;
    this._flushing = true;
    try {
      if (ch === null || ch.readyState !== "open") return;
      const budget = Math.max(0, this.config.high_water_bytes - ch.bufferedAmount);
      const sentBefore = session.stats.payload_bytes_sent;
      for (const message of session.dataToSend(budget)) ch.send(message);
      const sent = session.stats.payload_bytes_sent - sentBefore;
      if (sent > 0 && this._onSent !== null) this._onSent(this, sent);
      this.maxBufferedBytes = Math.max(this.maxBufferedBytes, ch.bufferedAmount);
    } catch (exc) {
      console.warn("p2p link: send failed", exc);
      this._transportEnded("send failed");
    } finally {
      this._flushing = false;
      this._deliver();
      this._armTimer();
    }
  }

  _armTimer() {
    clearTimeout(this._timer);
    this._timer = null;
    const session = this.session;
    if (session === null || session.isClosed) return;
    const at = session.getTimer();
    if (at === null) return;
    this._timer = setTimeout(() => {
      this._timer = null;
      this._guard(() => {
        session.handleTimer(nowS());
        this._deliver();
        this.flush();
      });
    }, Math.max(0, (at - nowS()) * 1000) + 1);
  }

  // --- app calls (each flushes) ---------------------------------------------------------------

  request(segment, offset = 0) {
    const id = this.session.request(segment, offset, nowS());
    this.flush();
    return id;
  }

  cancel(requestId) {
    const ok = this.session !== null && this.session.cancel(requestId, nowS());
    this.flush();
    return ok;
  }

  _call(fn) {
    if (!this.isOpen) return false;
    const result = fn(this.session);
    this.flush();
    return result;
  }

  respond(id, total) {
    return this._call((s) => s.respond(id, total));
  }
  sendData(id, offset, data) {
    return this._call((s) => s.sendData(id, offset, data));
  }
  rejectAbsent(id) {
    return this._call((s) => s.rejectAbsent(id));
  }
  rejectBusy(id, ms = 0) {
    return this._call((s) => s.rejectBusy(id, ms));
  }
  abort(id, reason) {
    return this._call((s) => s.abort(id, reason));
  }
  announceHave(segments) {
    return segments.length > 0 && this._call((s) => s.announceHave(segments));
  }
  announceFetching(entries) {
    return entries.length > 0 && this._call((s) => s.announceFetching(entries));
  }
  announceLost(segments) {
    return segments.length > 0 && this._call((s) => s.announceLost(segments));
  }

  // --- closing --------------------------------------------------------------------------------

  /** Close the session with a code (our CLOSE goes out), then the connection. */
  close(code = CloseCode.NORMAL, reason = "") {
    if (this.session !== null && !this.session.isClosed) {
      this.session.close(code, reason);
      this.flush();
    } else if (!this._closedReported) {
      this._report({ type: "SessionClosed", code, reason, by_remote: false });
      this._teardown();
    }
  }

  _transportEnded(reason) {
    if (this.session !== null && !this.session.isClosed) {
      this.session.transportClosed(reason);
      this._deliver();
    } else if (!this._closedReported) {
      this._report({ type: "SessionClosed", code: CloseCode.GOING_AWAY, reason, by_remote: true });
    }
    this._teardown();
  }

  _scheduleTeardown() {
    // Give our CLOSE a moment to leave before the connection goes.
    setTimeout(() => this._teardown(), this.config.close_timeout_s * 1000);
  }

  _teardown() {
    clearTimeout(this._timer);
    clearTimeout(this._ttl);
    try {
      this.channel?.close();
      if (this.pc.signalingState !== "closed") this.pc.close();
    } catch {
      // already closed
    }
    this._listeners.abort(); // the connection's and the channel's listeners go
  }
}
