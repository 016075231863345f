// The bookkeeping of SegmentExchange (segment_exchange.js), as peer_agent/core/exchange_state.py:
// bytes of a segment being assembled with their sources, and per-peer hash-failure penalties.
// Pure data with small methods; time is an argument (docs/exchange.md).

import { GrowBuffer } from "./store.js";

/** What the caller found when it checked a whole segment (docs/exchange.md §6). */
export const Verdict = Object.freeze({ OK: "ok", MISMATCH: "mismatch", UNKNOWN: "unknown" });

/** Bytes [0, buf.length) of a segment being assembled, possibly from several sources. */
export class Held {
  constructor() {
    this.buf = new GrowBuffer();
    this.total = null;
    this.contributors = new Set(); // peer ids that supplied bytes (null: the CDN)
    this.spans = []; // [first byte, source] of each run of bytes from one source, in order
    // peers that vouched for their bytes: they had announced the segment HAVE before the bytes
    // came, or they completed the copy (docs/exchange.md §6)
    this.vouched = new Set();
  }

  /** Bytes from `source` (a peer id; null: the CDN) at the end of buf. */
  append(data, source) {
    if (!data.length) return;
    const last = this.spans[this.spans.length - 1];
    if (last === undefined || last[1] !== source) this.spans.push([this.buf.length, source]);
    this.buf.append(data);
    this.contributors.add(source);
  }

  /** Keep bytes [0, length) only; sources of nothing kept are no contributors. */
  truncate(length) {
    if (length >= this.buf.length) return;
    this.buf.truncate(length);
    this.spans = this.spans.filter((span) => span[0] < length);
    this.contributors = new Set(this.spans.map((span) => span[1]));
  }
}

/** Per-peer hash-failure counts, penalty windows and bans (ban_after_failures, penalty_s). */
export class Penalties {
  constructor({ ban_after_failures = 2, penalty_s = 10.0 } = {}) {
    if (!(ban_after_failures >= 1)) throw new Error("ban_after_failures must be >= 1");
    if (!(penalty_s >= 0)) throw new Error("penalty_s must be >= 0");
    this.banAfterFailures = ban_after_failures;
    this.penaltyS = penalty_s;
    this.failures = new Map();
    this.banned = new Set();
    this.penalisedUntil = new Map();
  }

  /** `peerId` contributed to a segment that failed its hash; true: ban it now. */
  record(peerId, now) {
    const count = (this.failures.get(peerId) || 0) + 1;
    this.failures.set(peerId, count);
    this.penalisedUntil.set(peerId, now + this.penaltyS);
    if (count >= this.banAfterFailures && !this.banned.has(peerId)) {
      this.banned.add(peerId);
      return true;
    }
    return false;
  }

  isBanned(peerId) {
    return this.banned.has(peerId);
  }

  blockedUntil(peerId) {
    return this.banned.has(peerId) ? Infinity : this.penalisedUntil.get(peerId) || 0;
  }
}
