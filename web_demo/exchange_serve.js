// Serving peers' requests for SegmentExchange (segment_exchange.js), as
// peer_agent/core/exchange_serve.py + exchange_uploads.py: from the store, from a verified copy
// kept for relays, or cut-through from a download in progress, under the upload cap (a token
// bucket) and the upload slot limit. The last relay_holdback_bytes of a segment leave only once
// our own copy verified; a copy that fails ABORTs (UPSTREAM_FAILED) every relay of it
// (docs/exchange.md §7-8). Pure: time is an argument, every output an action handed to emit.

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

  /** When min(wanted, burst) bytes will be available. */
  readyAt(wanted, now) {
    if (this.rateBytesPerS === null) return now;
    this._refill(now);
    const need = Math.min(wanted, this.burstBytes) - this._tokens;
    return need <= 0 ? now : now + need / this.rateBytesPerS;
  }
}

const uploadKey = (link, requestId) => `${link}\n${requestId}`;

export class UploadServer {
  /**
   * @param config the exchange's config
   * @param store the SegmentStore of verified segments (pinned while served)
   * @param inProgress (key) => {buf: GrowBuffer, total} of a download in progress, or null
   * @param emit (action) => void
   */
  constructor(config, store, inProgress, emit) {
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
  }

  // --- inputs ---------------------------------------------------------------------------------

  onRequest(link, peerId, requestId, segment, offset, now, banned) {
    const cfg = this.config;
    if (cfg.leech_only || banned) {
      this.emit(act("reject_busy", { link, request_id: requestId, retry_after_ms: NEVER_RETRY_MS }));
      return;
    }
    if (this.uploads.size >= cfg.max_uploads) {
      this.busySent += 1;
      this.emit(act("reject_busy", { link, request_id: requestId, retry_after_ms: cfg.busy_retry_after_ms }));
      return;
    }
    const key = segmentKey(segment);
    const stored = this.store.get(key);
    const data = stored !== null ? stored : this.relayCopies.get(key) ?? null;
    const upload = { link, peerId, requestId, segment, key, offset, sentUntil: offset, totalBytes: null, pinned: false };
    if (data !== null) {
      if (offset >= data.length) {
        this.emit(act("reject_absent", { link, request_id: requestId }));
        return;
      }
      if (stored !== null) {
        this.store.pin(key);
        upload.pinned = true;
      }
      upload.totalBytes = data.length;
      this.emit(act("respond", { link, request_id: requestId, total_bytes: data.length }));
    } else {
      const progress = this.inProgress(key);
      if (progress === null) {
        this.emit(act("reject_absent", { link, request_id: requestId }));
        return;
      }
      if (progress.total !== null) {
        if (offset >= progress.total) {
          this.emit(act("reject_absent", { link, request_id: requestId }));
          return;
        }
        upload.totalBytes = progress.total;
        this.emit(act("respond", { link, request_id: requestId, total_bytes: progress.total }));
      }
    }
    this.uploads.set(uploadKey(link, requestId), upload);
    this._pump(upload, now);
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

  // --- internals ------------------------------------------------------------------------------

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
      if (this.bucket === null) {
        const cfg = this.config;
        this.bucket = new TokenBucket(cfg.upload_cap_bytes_per_s, now, cfg.upload_burst_bytes || 0);
      }
      const granted = this.bucket.take(wanted, now);
      if (granted > 0) {
        const start = upload.sentUntil;
        const data = src.bytes.slice(start, start + granted);
        this.emit(act("send_data", { link: upload.link, request_id: upload.requestId, offset: start, data }));
        upload.sentUntil += granted;
        this.bytesUploaded += granted;
      }
      if (granted < wanted) {
        const at = this.bucket.readyAt(wanted - granted, now);
        this.pumpAt = this.pumpAt === null ? at : Math.min(this.pumpAt, at);
      }
    }
    if (upload.sentUntil >= upload.totalBytes) this._end(upload);
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
