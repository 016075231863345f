// Serving peers' requests for SegmentExchange (segment_exchange.js), as
// peer_agent/core/exchange_serve.py + exchange_uploads.py: from the store, from a verified copy
// kept for relays, or cut-through from a download in progress, under the upload cap (a token
// bucket) and the upload slot limit. The last relay_holdback_bytes of a segment leave only once
// our own copy verified; a copy that fails ABORTs (UPSTREAM_FAILED) every relay of it
// (docs/exchange.md §7-8). Pure: time is an argument, every output an action handed to emit.

import { uploadSlots } from "./capacity.js";
import { segmentKey } from "./scheduler.js";
import { AbortReason } from "./wire.js";

/** BUSY hint of a peer that never uploads (leech-only) or of a banned requester. */
export const NEVER_RETRY_MS = 0xffff;

/** rateBytesPerS sustained, bursts up to burstBytes (0: a quarter second, at least 16 KiB);
 * a null rate: no cap. The bucket starts full. */
export class TokenBucket {
  constructor(rateBytesPerS, now, burstBytes = 0) {
    if (rateBytesPerS !== null && !(rateBytesPerS > 0)) throw new Error("rateBytesPerS must be positive");
    this.rateBytesPerS = rateBytesPerS;
    this.burstBytes = burstBytes || (rateBytesPerS ? Math.max(16 * 1024, Math.trunc(rateBytesPerS / 4)) : 0);
    this._tokens = this.burstBytes;
    this._at = now;
  }

  _refill(now) {
    if (this.rateBytesPerS === null) return;
    const dt = Math.max(0, now - this._at);
    this._at = Math.max(this._at, now);
    this._tokens = Math.min(this.burstBytes, this._tokens + dt * this.rateBytesPerS);
  }

  /** Up to `wanted` bytes that may be sent now (taken from the bucket). */
  take(wanted, now) {
    if (this.rateBytesPerS === null) return wanted;
    this._refill(now);
    const granted = Math.max(0, Math.min(wanted, Math.trunc(this._tokens)));
    this._tokens -= granted;
    return granted;
  }

  /** Change the rate (what accrued so far accrued at the old one). */
  setRate(rateBytesPerS, now, burstBytes = 0) {
    if (rateBytesPerS === this.rateBytesPerS) return;
    this._refill(now);
    this.rateBytesPerS = rateBytesPerS;
    this.burstBytes = burstBytes || Math.max(16 * 1024, Math.trunc(rateBytesPerS / 4));
    this._tokens = Math.min(this._tokens, this.burstBytes);
  }

  /** When min(wanted, burst) bytes will be available. */
  readyAt(wanted, now) {
    if (this.rateBytesPerS === null) return now;
    this._refill(now);
    const need = Math.min(wanted, this.burstBytes) - this._tokens;
    return need <= 0 ? now : now + need / this.rateBytesPerS;
  }
}

const uploadKey = (link, requestId) => `${link}\n${requestId}`;

/** Per-neighbour serving records for the fairness rules (docs/exchange.md, "Fairness"): times
 * each segment was served, and bytes handed over the sliding window. */
export class PeerLedger {
  constructor(windowS) {
    this.windowS = windowS;
    this._peers = new Map(); // peer id -> {bySegment: Map key -> n, window: [[at, bytes]], windowBytes}
  }

  _peer(peerId) {
    let rec = this._peers.get(peerId);
    if (rec === undefined) {
      rec = { bySegment: new Map(), window: [], windowBytes: 0 };
      this._peers.set(peerId, rec);
    }
    return rec;
  }

  serves(peerId, key) {
    return this._peers.get(peerId)?.bySegment.get(key) ?? 0;
  }

  countServe(peerId, key) {
    const rec = this._peer(peerId);
    rec.bySegment.set(key, (rec.bySegment.get(key) ?? 0) + 1);
  }

  addBytes(peerId, n, now) {
    const rec = this._peer(peerId);
    rec.window.push([now, n]);
    rec.windowBytes += n;
  }

  /** Bytes handed to peerId in (now - windowS, now]. */
  windowBytes(peerId, now) {
    const rec = this._peers.get(peerId);
    if (rec === undefined) return 0;
    let drop = 0;
    while (drop < rec.window.length && rec.window[drop][0] <= now - this.windowS) rec.windowBytes -= rec.window[drop++][1];
    if (drop) rec.window.splice(0, drop);
    return rec.windowBytes;
  }

  /** Forget serve counts of segments keep(key) rejects (gone from the timeline). */
  keepSegments(keep) {
    for (const [peerId, rec] of [...this._peers]) {
      for (const key of [...rec.bySegment.keys()]) if (!keep(key)) rec.bySegment.delete(key);
      if (!rec.bySegment.size && !rec.window.length) this._peers.delete(peerId);
    }
  }
}

export class UploadServer {
  /**
   * @param config the exchange's config
   * @param store the SegmentStore of verified segments (pinned while served)
   * @param inProgress (key) => {buf: GrowBuffer, total} of a download in progress, or null
   * @param emit (action) => void
   * @param stream {bitrateBitsPerS: () => bits/s or null, neighbourCount: () => open neighbours}
   */
  constructor(config, store, inProgress, emit, stream = { bitrateBitsPerS: () => null, neighbourCount: () => 0 }) {
    this.config = config;
    this.store = store;
    this.inProgress = inProgress;
    this.emit = emit;
    this.uploads = new Map(); // "link\nid" -> upload, in the order accepted
    this.bucket = null;
    this.relayCopies = new Map(); // key -> bytes of a verified segment still being relayed
    this.pumpAt = null;
    this.bytesUploaded = 0;
    this.busySent = 0;
    this.relaysAborted = 0;
    this.unfairRefusals = 0; // requests refused by the per-neighbour fairness rules
    this.ledger = new PeerLedger(config.peer_window_s);
    this.stream = stream;
  }

  // --- inputs ---------------------------------------------------------------------------------

  /**
   * Serve, wait or refuse a request. `announced`: the peer announced `segment` (HAVE, not LOST
   * since). Returns true when the request is a lie (refused BUSY(65535), counted
   * unfairRefusals); the caller records the offence.
   */
  onRequest(link, peerId, requestId, segment, offset, now, banned, announced = false) {
    const cfg = this.config;
    if (cfg.leech_only || banned) {
      this.emit(act("reject_busy", { link, request_id: requestId, retry_after_ms: NEVER_RETRY_MS }));
      return false;
    }
    if (announced) {
      this.unfairRefusals += 1;
      this.emit(act("reject_busy", { link, request_id: requestId, retry_after_ms: NEVER_RETRY_MS }));
      return true;
    }
    const slots = this.slots();
    if (this.uploads.size >= slots || this._capBacklogged()) {
      // every slot taken, or more than cap_backlog_s of the cap still to send; with no slot at
      // all (the cap is below the bitrate) it never will be: retry never
      this.busySent += 1;
      this.emit(act("reject_busy", { link, request_id: requestId, retry_after_ms: slots ? cfg.busy_retry_after_ms : NEVER_RETRY_MS }));
      return false;
    }
    const key = segmentKey(segment);
    const stored = this.store.get(key);
    const data = stored !== null ? stored : this.relayCopies.get(key) ?? null;
    const progress = data === null ? this.inProgress(key) : null;
    const total = data !== null ? data.length : progress !== null ? progress.total : null;
    if ((data === null && progress === null) || (total !== null && offset >= total)) {
      this.emit(act("reject_absent", { link, request_id: requestId }));
      return false;
    }
    const retryMs = this._unfair(peerId, key, now);
    if (retryMs !== null) {
      this.unfairRefusals += 1;
      this.emit(act("reject_busy", { link, request_id: requestId, retry_after_ms: retryMs }));
      return false;
    }
    const upload = { link, peerId, requestId, segment, key, offset, sentUntil: offset, totalBytes: null, pinned: false };
    if (stored !== null) {
      this.store.pin(key);
      upload.pinned = true;
    }
    if (total !== null) {
      upload.totalBytes = total;
      this.emit(act("respond", { link, request_id: requestId, total_bytes: total }));
    }
    this.uploads.set(uploadKey(link, requestId), upload);
    this._pump(upload, now);
    return false;
  }

  onCancelled(link, requestId) {
    const upload = this.uploads.get(uploadKey(link, requestId));
    if (upload !== undefined) this._end(upload);
  }

  onLinkClosed(link) {
    for (const upload of [...this.uploads.values()]) if (upload.link === link) this._end(upload);
  }

  /** Our copy matched: keep it for the uploads relaying it, whether or not the store keeps it. */
  segmentVerified(key, data) {
    if (this._forSegment(key).length) this.relayCopies.set(key, data);
  }

  pumpSegment(key, now) {
    for (const upload of this._forSegment(key)) this._pump(upload, now);
  }

  getTimer() {
    return this.pumpAt;
  }

  handleTimer(now) {
    if (this.pumpAt === null || now < this.pumpAt) return;
    this.pumpAt = null;
    for (const upload of [...this.uploads.values()]) if (this.uploads.has(uploadKey(upload.link, upload.requestId))) this._pump(upload, now);
  }

  /** ABORT (UPSTREAM_FAILED) the relays of unverified segment `key`: all of them, or (beyond
   * given) those that were handed bytes past it. */
  abortRelays(key, beyond = null) {
    if (this._verifiedCopy(key) !== null) return;
    for (const upload of this._forSegment(key)) {
      if (upload.pinned) continue;
      if (beyond !== null && upload.sentUntil <= Math.max(beyond, upload.offset)) continue;
      this._end(upload);
      this.relaysAborted += 1;
      this.emit(act("abort_upload", { link: upload.link, request_id: upload.requestId, reason: AbortReason.UPSTREAM_FAILED }));
    }
  }

  forgetSegments(keep) {
    this.ledger.keepSegments(keep);
  }

  /** Bytes one neighbour may draw over peer_window_s. */
  peerBudgetBytes() {
    const cfg = this.config;
    const bitrate = this.stream.bitrateBitsPerS() || cfg.default_bitrate_bits_per_s;
    return Math.trunc(((cfg.peer_window_copies * bitrate) / 8) * cfg.peer_window_s);
  }

  /** The upload cap now: the configured one, else upload_cap_copies copies of the stream per
   * open neighbour once the timeline gave a bitrate, else none (null). */
  capBytesPerS() {
    const cfg = this.config;
    if (cfg.upload_cap_bytes_per_s !== null) return cfg.upload_cap_bytes_per_s;
    const bitrate = this.stream.bitrateBitsPerS();
    if (!bitrate) return null;
    return ((cfg.upload_cap_copies * bitrate) / 8) * Math.max(1, this.stream.neighbourCount());
  }

  // --- internals ------------------------------------------------------------------------------

  /** Uploads served at once: max_uploads, fewer when the upload cap cannot feed that many at the
   * stream's bitrate (docs/scheduling.md, "Upload fan-out"). */
  slots() {
    return uploadSlots(this.config.upload_cap_bytes_per_s ?? null, this.stream.bitrateBitsPerS() || null, this.config.max_uploads);
  }

  _capBacklogged() {
    const cap = this.capBytesPerS();
    if (cap === null) return false;
    let owed = 0;
    for (const u of this.uploads.values()) if (u.totalBytes !== null) owed += u.totalBytes - u.sentUntil;
    return owed > cap * this.config.cap_backlog_s;
  }

  /** The BUSY hint (ms) if serving peerId now would break a fairness rule, else null. */
  _unfair(peerId, key, now) {
    const cfg = this.config;
    let inFlight = 0;
    for (const u of this.uploads.values()) if (u.peerId === peerId) inFlight += 1;
    if (inFlight >= cfg.max_uploads_per_peer) return cfg.busy_retry_after_ms;
    const going = this._forSegment(key).filter((u) => u.peerId === peerId).length;
    if (this.ledger.serves(peerId, key) + going >= cfg.max_serves_per_segment) return NEVER_RETRY_MS;
    if (this.ledger.windowBytes(peerId, now) >= this.peerBudgetBytes()) return cfg.busy_retry_after_ms;
    return null;
  }


  _forSegment(key) {
    return [...this.uploads.values()].filter((u) => u.key === key);
  }

  _verifiedCopy(key) {
    const data = this.store.get(key);
    return data !== null ? data : this.relayCopies.get(key) ?? null;
  }

  _source(key) {
    const data = this._verifiedCopy(key);
    if (data !== null) return { bytes: data, length: data.length, total: data.length, verified: true };
    const progress = this.inProgress(key);
    if (progress !== null) {
      return { bytes: progress.buf.bytes, length: progress.buf.length, total: progress.total, verified: false };
    }
    return null;
  }

  /** Hand the session what the source holds beyond what was sent, within the cap. */
  _pump(upload, now) {
    const src = this._source(upload.key);
    if (src === null) return; // the upstream went away; bytes may come back with a new fetch
    if (upload.totalBytes === null) {
      if (src.total === null) return;
      if (upload.offset >= src.total) {
        this.uploads.delete(uploadKey(upload.link, upload.requestId));
        this.emit(act("reject_absent", { link: upload.link, request_id: upload.requestId }));
        return;
      }
      upload.totalBytes = src.total;
      this.emit(act("respond", { link: upload.link, request_id: upload.requestId, total_bytes: src.total }));
    }
    let limit = upload.totalBytes;
    if (!src.verified) limit -= this.config.relay_holdback_bytes; // the last frame waits for our hash
    const wanted = Math.min(src.length, limit) - upload.sentUntil;
    if (wanted > 0) {
      const cfg = this.config;
      const cap = this.capBytesPerS();
      if (this.bucket === null || this.bucket.rateBytesPerS === null) {
        this.bucket = new TokenBucket(cap, now, cfg.upload_burst_bytes || 0);
      } else if (cap !== null) {
        this.bucket.setRate(cap, now, cfg.upload_burst_bytes || 0);
      }
      const granted = this.bucket.take(wanted, now);
      if (granted > 0) {
        const start = upload.sentUntil;
        const data = src.bytes.slice(start, start + granted);
        this.emit(act("send_data", { link: upload.link, request_id: upload.requestId, offset: start, data }));
        upload.sentUntil += granted;
        this.bytesUploaded += granted;
        this.ledger.addBytes(upload.peerId, granted, now);
      }
      if (granted < wanted) {
        const at = this.bucket.readyAt(wanted - granted, now);
        this.pumpAt = this.pumpAt === null ? at : Math.min(this.pumpAt, at);
      }
    }
    if (upload.sentUntil >= upload.totalBytes) {
      this.ledger.countServe(upload.peerId, upload.key); // a whole copy went
      this._end(upload);
    }
  }

  _end(upload) {
    this.uploads.delete(uploadKey(upload.link, upload.requestId));
    if (!this.uploads.size) this.pumpAt = null; // nobody waits for the cap any more
    if (this.relayCopies.has(upload.key) && !this._forSegment(upload.key).length) this.relayCopies.delete(upload.key);
    if (upload.pinned) {
      upload.pinned = false;
      const evicted = this.store.unpin(upload.key);
      if (evicted.length) this.emit(act("announce_lost", { segments: evicted }));
    }
  }
}

/** An action: a frozen object named by `action` (docs/vectors/exchange/README.md). */
export function act(action, fields) {
  return Object.freeze({ action, ...fields });
}
