// The engine's side of the peer protocol (P2PEngine methods, installed on its prototype; the same
// split as peer_agent/agent/exchange.py): session events in, requests and uploads out. Uploads
// come from the store (verified segments) or cut-through from a download in progress (from the
// CDN or a peer), the last byte held back until our copy matched its hash: a corrupting peer's
// segment is never completed downstream (ABORT instead), so an honest relay is never blamed.

import { bytesToAscii } from "./ids.js";
import { segmentKey } from "./scheduler.js";
import { ThroughputEstimator, arrSeg, wireSeg } from "./store.js";
import { AbortReason, CloseCode } from "./wire.js";

const nowS = () => performance.now() / 1000;

export const exchangeMethods = {
  // --- peers: events --------------------------------------------------------------------------

  _peerOf(link) {
    return link.remotePeerId || (link.session?.remotePeerId ? bytesToAscii(link.session.remotePeerId) : "?");
  },

  _peerStats(pid) {
    let s = this.perPeer.get(pid);
    if (!s) {
      s = { bytesDown: 0, bytesUpClosed: 0, links: new Set(), since: nowS(), banned: false };
      this.perPeer.set(pid, s);
    }
    return s;
  },

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
          this._pumpSegment(t.key);
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
        this._pumpSegment(t.key);
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
  },

  _transferOf(link, requestId) {
    for (const t of this.transfers.values()) if (t.link === link && t.request_id === requestId) return t;
    return null;
  },

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
  },

  _ban(pid) {
    const nb = this.neighbours.get(pid);
    if (nb) nb.open = false;
    this._peerStats(pid).banned = true;
    const link = this.swarm?.links.get(pid);
    if (link) {
      console.warn(`p2p: banning peer ${pid} after repeated hash failures`);
      link.close(CloseCode.BANNED, "repeated integrity failures");
    }
  },

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
    // Others may take it from us as it arrives (the last byte waits for our hash check).
    this.swarm.broadcastFetching([{ segment: wireSeg(info.segment), expected_bytes: this.sizes.get(key) || 0 }]);
  },

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
    } else if (!(this.transfers.has(key) && this.held.has(key))) {
      link.rejectAbsent(e.request_id);
      return;
    }
    this.uploads.add(upload);
    this._pump(upload);
  },

  _source(key) {
    const data = this.store.get(key);
    if (data !== null) return { bytes: data, length: data.length, total: data.length };
    const held = this.held.get(key);
    if (held && this.transfers.has(key)) return { bytes: held.buf.bytes, length: held.buf.length, total: held.total };
    return null;
  },

  _pumpSegment(key) {
    for (const u of this.uploads) if (u.key === key) this._pump(u);
  },

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
    // Cut-through (docs/protocol.md, "Relaying before the segment is complete"): until our own
    // copy has matched its hash, the last byte stays here; a copy that fails is ABORTed.
    const verified = this.store.has(u.key);
    const available = Math.min(src.length, verified ? u.total : u.total - 1);
    if (available > u.sent) {
      if (!u.link.sendData(u.request_id, u.sent, src.bytes.subarray(u.sent, available))) {
        this.uploads.delete(u);
        return;
      }
      u.sent = available;
    }
    if (u.sent >= u.total) this.uploads.delete(u);
  },

  _abortRelays(key) {
    for (const u of [...this.uploads]) {
      if (u.key === key && !this.store.has(key)) {
        this.uploads.delete(u);
        if (!u.link.isClosed) u.link.abort(u.request_id, AbortReason.UPSTREAM_FAILED);
      }
    }
  },

};
