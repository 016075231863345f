// One swarm: a tracker client and up to max_peers PeerLinks, with no playback policy; the
// same rules as peer_agent/net/swarm.py, so browsers and headless agents pair up:
//
// - announce with up to offers_per_announce fresh full-SDP offers, as many as free slots allow;
// - answer relayed offers unless full or already linked to that peer; when full, answer an
//   offer relayed with `drop` naming one of our links by draining that link (the tracker splits
//   it for a newcomer: overlay.js admitOffer), and announce the "split" capability. A drained
//   link leaves swarm.links at once (no new request goes on it), its transfers in flight go on,
//   and it is closed ("making room") once idle with an empty send buffer, or after
//   split_drain_s at the latest (overlay.js drainDue);
// - while neighbour slots are free, announce again with fresh offers after a backoff (overlay.js
//   Refill: 2 s doubling to 30 s while no link is added), and announce (offers if slots are
//   free) soon after the links changed, so the tracker's view of `connected` stays current;
//   close at once the offers the tracker reports it relayed to nobody (unused_offers), and before
//   each refill announce those unanswered for offer_reserve_s (a full member refuses silently);
// - when offers cross (two links to one peer), keep the link offered by the smaller peer_id;
// - drop links whose session closed (the app gets their SessionClosed first) and re-announce
//   (with refill, only for links that had opened: one that never did waits for the backoff);
// - after a link closed BANNED (either side refused or banned the other), neither answer that
//   peer's offers nor open a link from its answer for a back-off doubling per such close
//   (overlay.js Refusals: 30 s up to 1 h), and do not re-announce at once for it;
// - send the tracker our extension fields: max_peers, connected and position_s.
//
// Every event of an exposed link goes to onEvent(link, event). A link is exposed from the end
// of its SDP exchange (it is then in swarm.links) until its SessionClosed.
//
// Page events (events.js) go to emit(type, detail): peer-connected / peer-closed / peer-banned,
// bytes-downloaded (from peers) and bytes-uploaded, and the tracker's. With uploads off
// (setUploadEnabled(false)) every request is answered BUSY 65535 here and never reaches onEvent.

import { asciiBytes } from "./ids.js";
import { PeerLink } from "./rtc.js";
import { Refill, Refusals, SPLIT_CAP, admitOffer, drainDue } from "./overlay.js";
import { TrackerClient } from "./tracker.js";
import { CloseCode } from "./wire.js";

export const DEFAULT_SWARM_CONFIG = Object.freeze({
  max_peers: 8, // links kept at once (pending offers reserve slots)
  offers_per_announce: 3, // fresh offers per announce (the tracker allows at most 5)
  refill: { base_s: 2.0, max_s: 30.0 }, // announce while slots are free; null: only every interval
  make_room: true, // answer split offers when full (announce the "split" capability)
  offer_reserve_s: 10.0, // with refill: an offer unanswered this long is closed before the next announce
  refusals: { base_s: 30.0, max_s: 3600.0, max_peer_ids: 256 }, // after a BANNED close: no pairing with that peer id
  split_drain_s: 5.0, // a link split to make room closes once idle with an empty send buffer, or after this (0: at once)
});

// A drained link is checked on each of its events and at least this often: its peer's requests
// end when the app sends their last bytes and its send buffer empties, neither an event of the link.
const DRAIN_CHECK_S = 0.1;

/** [our requests, the peer's requests] in flight on a link, and the bytes its channel holds. */
function linkLoad(link) {
  const session = link.session;
  if (!session) return [0, 0, 0];
  const ch = link.channel;
  const buffered = ch && ch.readyState === "open" ? ch.bufferedAmount : 0;
  return [session.outboundRequests, session.inboundRequests, buffered];
}

export class Swarm {
  /**
   * @param opts {trackerUrl, infoHash, peerId, token?, onEvent(link, event), hello(),
   *   config?: {max_peers, offers_per_announce}, link?: link options (rtc.js),
   *   sessionConfig, tracker?: tracker options, random?, onReply?, emit?: (type, detail) => void,
   *   upload?: boolean (default true)}
   */
  constructor(opts) {
    this.config = Object.freeze({ ...DEFAULT_SWARM_CONFIG, ...(opts.config || {}) });
    if (!(this.config.split_drain_s >= 0)) throw new RangeError("swarm: split_drain_s must be >= 0");
    this.infoHash = opts.infoHash;
    this.peerId = opts.peerId;
    this.links = new Map(); // remote peer_id -> PeerLink
    this._swarmId = asciiBytes(opts.infoHash);
    this._localPeerId = asciiBytes(opts.peerId);
    this._onEvent = opts.onEvent;
    this._hello = opts.hello;
    this._linkOptions = opts.link || {};
    this._sessionConfig = opts.sessionConfig;
    this._pending = new Map(); // offer_id -> link waiting for an answer
    this._pendingAt = new Map(); // offer_id -> performance.now() ms when it was made
    this._exposed = new Set();
    this._all = new Set();
    this._stopping = false;
    this._random = opts.random || Math.random;
    this._emit = opts.emit || (() => {});
    this.uploadEnabled = opts.upload !== false;
    this._greeted = new Set(); // links whose HELLO arrived (peer-connected sent)
    this.tracker = new TrackerClient({
      url: opts.trackerUrl,
      infoHash: opts.infoHash,
      peerId: opts.peerId,
      peerKey: opts.peerKey,
      token: opts.token,
      config: opts.tracker,
      random: this._random,
      makeOffers: () => this._makeOffers(),
      onOffer: (offer) => this._onOffer(offer),
      onAnswer: (answer) => this._onAnswer(answer),
      onReply: opts.onReply,
      nextAnnounceS: () => this._nextAnnounceS(),
      onUnusedOffers: (ids) => this._onUnusedOffers(ids),
      emit: this._emit,
    });
    this.tracker.hints.max_peers = this.config.max_peers;
    if (this.config.make_room) this.tracker.hints.caps = [...this.tracker.hints.caps, SPLIT_CAP];
    this._refill = this.config.refill ? new Refill(this.config.refill) : null;
    this.linksSplit = 0; // links closed to make room for a newcomer
    this.linksDrainForced = 0; // of those, closed at split_drain_s with a transfer in flight
    this._draining = new Map(); // drained link -> {check(), timer}
    this.refusals = new Refusals(this.config.refusals); // peer ids not paired with for now
    this.pairingsRefused = 0; // offers and answers left alone because their peer id was blocked
    this._clock = opts.clock || (() => performance.now() / 1000); // seconds
  }

  _nextAnnounceS() {
    if (this._refill === null || this._stopping) return null;
    return this._refill.afterAnnounce(this.links.size, this.config.max_peers);
  }

  _linksChanged() {
    if (!this._stopping && this.config.make_room) this.tracker.announceNow();
  }

  start() {
    this.tracker.start();
  }

  stop() {
    if (this._stopping) return;
    this._stopping = true;
    this.tracker.stop();
    for (const drain of this._draining.values()) clearTimeout(drain.timer); // closed below
    this._draining.clear();
    for (const link of [...this._all]) link.close(CloseCode.GOING_AWAY, "leaving the swarm");
  }

  broadcastHave(segments) {
    for (const link of this.links.values()) link.announceHave(segments);
  }

  broadcastFetching(entries) {
    for (const link of this.links.values()) link.announceFetching(entries);
  }

  broadcastLost(segments) {
    for (const link of this.links.values()) link.announceLost(segments);
  }

  /** Uploads on or off at runtime; off: new requests get BUSY 65535 (transfers in flight finish). */
  setUploadEnabled(on) {
    this.uploadEnabled = Boolean(on);
  }

  setPosition(positionS) {
    this.tracker.hints.position_s = positionS;
  }

  sendStats(down, up, cdn, cdnFetches = null) {
    this.tracker.sendStats(down, up, cdn, cdnFetches);
  }

  // --- links ----------------------------------------------------------------------------------

  /** Link options with the tracker's ICE servers (if any) ahead of the configured ones. */
  _currentLinkOptions() {
    const grant = this.tracker.ice;
    if (!grant) return this._linkOptions;
    const configured = this._linkOptions.ice_servers || [];
    return { ...this._linkOptions, ice_servers: [...grant.servers, ...configured] };
  }

  _newLink(remotePeerId = null) {
    const link = new PeerLink({
      swarmId: this._swarmId,
      localPeerId: this._localPeerId,
      sessionConfig: this._sessionConfig,
      onEvent: (l, e) => this._onLinkEvent(l, e),
      hello: this._hello,
      config: this._currentLinkOptions(),
      remotePeerId,
      onSent: (l, bytes) => this._emit("bytes-uploaded", { peerId: l.remotePeerId, bytes }),
    });
    this._all.add(link);
    return link;
  }

  _expose(peerId, link) {
    this.links.set(peerId, link);
    this._exposed.add(link);
  }

  _onLinkEvent(link, event) {
    const exposed = this._exposed.has(link);
    const opened = this._greeted.has(link) || event.type === "HelloReceived";
    if (exposed) this._report(link, event);
    if (exposed && event.type === "SegmentRequested" && !this.uploadEnabled) {
      link.rejectBusy(event.request_id, 0xffff);
      return;
    }
    if (event.type === "SessionClosed") {
      this._all.delete(link);
      this._exposed.delete(link);
      for (const [offerId, pending] of this._pending) {
        if (pending === link) {
          this._pending.delete(offerId);
          this._pendingAt.delete(offerId);
        }
      }
      const peerId = link.remotePeerId;
      const banned = event.code === CloseCode.BANNED;
      if (peerId !== null && banned) this.refusals.closedBanned(peerId, this._clock());
      if (peerId !== null && this.links.get(peerId) === link) {
        this.links.delete(peerId);
        // A link lost after it opened: replace it now. One that never opened (ICE or DTLS
        // failed) waits for the refill backoff, so failing links make no offers at every failure.
        // A refused link is no lost neighbour to replace at once: the tracker would pair us with
        // the same peer again.
        if (!this._stopping && !banned && (opened || this._refill === null)) {
          if (this._refill !== null) this._refill.reset();
          this.tracker.announceNow();
        }
      }
    }
    if (exposed) this._onEvent(link, event);
    const drain = this._draining.get(link);
    if (drain !== undefined) queueMicrotask(drain.check);
  }

  /**
   * Close `link` (already out of this.links) once no request is in flight on it and its send
   * buffer is empty, or after split_drain_s (docs/signaling.md, "Making room"): a cut transfer
   * would orphan the cut-through subtree behind it.
   */
  _drain(link) {
    this.linksSplit += 1;
    const maxS = this.config.split_drain_s;
    const started = this._clock();
    const drain = { check: null, timer: null };
    drain.check = () => {
      if (this._draining.get(link) !== drain) return;
      clearTimeout(drain.timer);
      if (link.isClosed) {
        this._draining.delete(link);
        return;
      }
      const [outbound, inbound, buffered] = linkLoad(link);
      const elapsed = this._clock() - started;
      if (drainDue(outbound, inbound, buffered, elapsed, maxS)) {
        this._draining.delete(link);
        if (outbound || inbound || buffered) this.linksDrainForced += 1;
        link.close(CloseCode.NORMAL, "making room");
        return;
      }
      drain.timer = setTimeout(drain.check, Math.min(DRAIN_CHECK_S, maxS - elapsed) * 1000);
    };
    this._draining.set(link, drain);
    drain.check();
  }

  _report(link, e) {
    const peerId = link.remotePeerId;
    if (e.type === "HelloReceived") {
      this._greeted.add(link);
      this._emit("peer-connected", { peerId, role: link.role, leechOnly: Boolean(e.leech_only) });
      if (link.identityError) {
        const message = `peer ${peerId}: remote address unknown (${link.identityError}); bans key on its peer id and certificate only`;
        this._emit("warning", { source: "peer", reason: "identity_unknown", message });
      }
    } else if (e.type === "DataReceived") {
      this._emit("bytes-downloaded", { source: "peer", peerId, bytes: e.data.length });
    } else if (e.type === "SessionClosed" && this._greeted.delete(link)) {
      this._emit("peer-closed", { peerId, code: e.code, reason: e.reason, byRemote: e.by_remote });
      if (e.code === CloseCode.BANNED && !e.by_remote) this._emit("peer-banned", { peerId, reason: e.reason });
      if (e.code === CloseCode.BANNED && e.by_remote) {
        this._emit("warning", { source: "peer", reason: "banned_by_peer", message: `peer ${peerId} banned us: ${e.reason}`, code: e.code });
      }
    }
  }

  /** Both sides of a doubled pair keep the link offered by the smaller peer_id. */
  static _keepNewLink(newOfferer, oldOfferer) {
    return newOfferer < oldOfferer;
  }

  /** Close offers unanswered for offer_reserve_s. */
  _retireStaleOffers() {
    const cutoff = performance.now() - this.config.offer_reserve_s * 1000;
    this._onUnusedOffers([...this._pendingAt].filter(([, madeAt]) => madeAt <= cutoff).map(([id]) => id));
  }

  /** The tracker relayed these offers to nobody: close them, freeing their slots. */
  _onUnusedOffers(offerIds) {
    for (const offerId of offerIds) {
      this._pendingAt.delete(offerId);
      const link = this._pending.get(offerId);
      this._pending.delete(offerId);
      if (link !== undefined) {
        this._all.delete(link);
        link.close();
      }
    }
  }

  async _makeOffers() {
    this.tracker.hints.connected = [...this.links.keys()];
    if (this._stopping) return [];
    if (this._refill !== null) this._retireStaleOffers();
    const free = this.config.max_peers - this.links.size - this._pending.size;
    const count = Math.max(0, Math.min(this.config.offers_per_announce, free));
    const links = Array.from({ length: count }, () => this._newLink());
    const results = await Promise.allSettled(links.map((l) => l.createOffer()));
    const offers = [];
    results.forEach((r, i) => {
      const link = links[i];
      if (r.status !== "fulfilled" || link.isClosed) {
        this._all.delete(link);
        link.close();
        return;
      }
      let offerId = "";
      for (let k = 0; k < 20; k++) offerId += Math.floor(this._random() * 16).toString(16);
      this._pending.set(offerId, link);
      this._pendingAt.set(offerId, performance.now());
      offers.push([offerId, r.value]);
    });
    return offers;
  }

  async _onOffer(offer) {
    const peerId = offer.peer_id;
    if (this._stopping) return null;
    if (this.refusals.blocked(peerId, this._clock())) {
      this.pairingsRefused += 1;
      return null;
    }
    const existing = this.links.get(peerId);
    let drop = null;
    if (existing !== undefined) {
      if (existing.role !== "offerer" || !Swarm._keepNewLink(peerId, this.peerId)) return null;
    } else {
      const admission = admitOffer(this.links, this.config.max_peers, peerId, this.config.make_room ? (offer.drop ?? null) : null);
      if (!admission.accept) return null;
      if (admission.drop !== null) {
        drop = this.links.get(admission.drop);
        this.links.delete(admission.drop); // its slot is the newcomer's; the app still gets its close
      }
    }
    const link = this._newLink(peerId);
    if (existing !== undefined) existing.close(CloseCode.NORMAL, "duplicate link");
    if (drop) this._drain(drop);
    this._expose(peerId, link);
    this._linksChanged();
    const answer = await link.acceptOffer(offer.sdp, peerId);
    return answer === null || link.isClosed ? null : answer;
  }

  async _onAnswer(answer) {
    const link = this._pending.get(answer.offer_id);
    this._pending.delete(answer.offer_id);
    this._pendingAt.delete(answer.offer_id);
    if (link === undefined || link.isClosed) return;
    const peerId = answer.peer_id;
    if (this._stopping) {
      link.close(CloseCode.GOING_AWAY, "leaving the swarm");
      return;
    }
    if (this.refusals.blocked(peerId, this._clock())) {
      this.pairingsRefused += 1;
      link.close(CloseCode.NORMAL, "refused pairing");
      return;
    }
    const existing = this.links.get(peerId);
    if (existing !== undefined) {
      if (existing.role === "answerer" && Swarm._keepNewLink(this.peerId, peerId)) {
        existing.close(CloseCode.NORMAL, "duplicate link");
      } else {
        link.close(CloseCode.NORMAL, "duplicate link");
        return;
      }
    } else if (this.links.size >= this.config.max_peers) {
      link.close(CloseCode.NORMAL, "no free slot");
      return;
    }
    this._expose(peerId, link);
    this._linksChanged();
    await link.acceptAnswer(answer.sdp, peerId);
  }
}
