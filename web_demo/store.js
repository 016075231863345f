// Small pure helpers of the engine: a segment store bounded in bytes (oldest evicted first),
// a growable byte buffer for segments being assembled, and the throughput estimator of
// peer_agent/core/throughput.py (EWMA over transfer time, zero-factor corrected).

/** Segment ids: [rendition, sequence] (scheduler) <-> {rendition, sequence} (wire). */
export const wireSeg = ([rendition, sequence]) => ({ rendition, sequence });
export const arrSeg = (s) => [s.rendition, s.sequence];

export class SegmentStore {
  constructor(maxBytes) {
    if (!(maxBytes > 0)) throw new Error("maxBytes must be positive");
    this.maxBytes = maxBytes;
    this.usedBytes = 0;
    this._items = new Map(); // key -> {segment, data}; insertion order = age
    this._pins = new Map(); // key -> uploads serving it (never evicted while > 0)
  }

  has(key) {
    return this._items.has(key);
  }

  get(key) {
    return this._items.get(key)?.data ?? null;
  }

  get size() {
    return this._items.size;
  }

  segments() {
    return [...this._items.values()].map((v) => v.segment);
  }

  /** Store `data`; returns the segments evicted to make room (maybe this one, if too big or
   * everything else is pinned). */
  put(key, segment, data) {
    if (!data.length) throw new Error("a segment has at least one byte");
    const old = this._items.get(key);
    if (old) {
      this.usedBytes -= old.data.length;
      this._items.delete(key);
    }
    this._items.set(key, { segment, data });
    this.usedBytes += data.length;
    return this._evict();
  }

  /** Drop `key` (pinned or not); whether it was held. */
  discard(key) {
    const item = this._items.get(key);
    if (item === undefined) return false;
    this._items.delete(key);
    this.usedBytes -= item.data.length;
    return true;
  }

  keys() {
    return [...this._items.keys()];
  }

  isPinned(key) {
    return this._pins.has(key);
  }

  /** Protect `key` from eviction until a matching unpin. */
  pin(key) {
    this._pins.set(key, (this._pins.get(key) || 0) + 1);
  }

  /** Returns the segments evicted now that `key` may go. */
  unpin(key) {
    const count = this._pins.get(key) || 0;
    if (count <= 1) this._pins.delete(key);
    else this._pins.set(key, count - 1);
    return this._evict();
  }

  _evict() {
    const evicted = [];
    if (this.usedBytes <= this.maxBytes) return evicted;
    // (deleting the entry being visited is safe in a Map iteration: no copy of the table)
    for (const [k, v] of this._items) {
      if (this.usedBytes <= this.maxBytes) break;
      if (this._pins.has(k)) continue;
      this._items.delete(k);
      this.usedBytes -= v.data.length;
      evicted.push(v.segment);
    }
    return evicted;
  }
}

export class GrowBuffer {
  constructor(capacity = 256 * 1024) {
    this.bytes = new Uint8Array(capacity);
    this.length = 0;
  }

  append(chunk) {
    const need = this.length + chunk.length;
    if (need > this.bytes.length) {
      const next = new Uint8Array(Math.max(need, this.bytes.length * 2));
      next.set(this.bytes.subarray(0, this.length));
      this.bytes = next;
    }
    this.bytes.set(chunk, this.length);
    this.length = need;
  }

  truncate(length) {
    this.length = Math.min(this.length, length);
  }

  view(start = 0, end = this.length) {
    return this.bytes.subarray(start, Math.min(end, this.length));
  }

  /** A copy of the bytes held, owning its own ArrayBuffer. */
  copy() {
    return this.bytes.slice(0, this.length);
  }
}

export class ThroughputEstimator {
  constructor(halfLifeS = 3.0) {
    this._alphaPerS = 0.5 ** (1 / halfLifeS);
    this._estimate = 0;
    this._totalWeight = 0;
    this.samples = 0;
  }

  addSample(numBytes, durationS) {
    if (!(durationS > 0)) return;
    const rate = numBytes / durationS;
    const alpha = this._alphaPerS ** durationS;
    this._estimate = alpha * this._estimate + (1 - alpha) * rate;
    this._totalWeight = alpha * this._totalWeight + (1 - alpha);
    this.samples += 1;
  }

  get estimate() {
    return this._totalWeight > 0 ? this._estimate / this._totalWeight : null;
  }
}

// A tail of one path's fetch times (as peer_agent/core/throughput.py's FetchTimeEstimator): the
// smoothed value of its recent samples plus `deviations` times their smoothed deviation, as TCP
// estimates its retransmission timeout (RFC 6298: gains 1/8 and 1/4, 4 deviations, the first
// sample's deviation half of it). null until the first sample. The exchange feeds it each CDN
// fetch's excess over its bytes at the mean rate (docs/scheduling.md, "The CDN's tail").
export class FetchTimeEstimator {
  constructor(gain = 0.125, deviationGain = 0.25, deviations = 4.0) {
    if (!(gain > 0 && gain <= 1 && deviationGain > 0 && deviationGain <= 1)) throw new Error("gains must be in (0, 1]");
    if (!(deviations >= 0)) throw new Error("deviations must be >= 0");
    this._gain = gain;
    this._deviationGain = deviationGain;
    this._deviations = deviations;
    this._smoothed = null;
    this._deviation = 0;
  }

  addSample(durationS) {
    if (!(durationS >= 0)) return; // negative or NaN: a clock that went backwards teaches nothing
    if (this._smoothed === null) {
      this._smoothed = durationS;
      this._deviation = durationS / 2;
      return;
    }
    const dg = this._deviationGain;
    this._deviation = (1 - dg) * this._deviation + dg * Math.abs(this._smoothed - durationS);
    this._smoothed = (1 - this._gain) * this._smoothed + this._gain * durationS;
  }

  get tail() {
    return this._smoothed === null ? null : this._smoothed + this._deviations * this._deviation;
  }
}

// Round trip to one peer: the smallest of its last `window` request -> RESPONSE delays (as
// peer_agent/core/throughput.py's RttEstimator). null until the first sample.
export class RttEstimator {
  constructor(window = 8) {
    if (!(window >= 1)) throw new Error("window must be >= 1");
    this._window = window;
    this._samples = [];
  }

  addSample(rttS) {
    if (!(rttS >= 0)) return;
    this._samples.push(rttS);
    if (this._samples.length > this._window) this._samples.shift();
  }

  get rtt() {
    return this._samples.length ? Math.min(...this._samples) : null;
  }
}
