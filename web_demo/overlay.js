// Overlay rules of a swarm member (docs/signaling.md, "Making room" and "Filling neighbour
// slots"); the same rules as peer_agent/core/overlay.py, tested against the same vectors
// (docs/vectors/signaling/overlay.json). Pure: no timers, no clock, no randomness.
//
// - admitOffer: answer an offer the tracker relayed? A member with a free slot answers; a full
//   one answers only an offer whose `drop` names one of its links (the tracker splits that link
//   for a newcomer) and drains that link; otherwise it refuses.
// - drainDue: close a link drained that way now? Once no request is in flight on it in either
//   direction and its send buffer is empty, or at max_s at the latest.
// - Refill: after each announce, the next one is due in base_s * 2**streak seconds (at most
//   max_s), streak counting announces in a row after which no link was added; null when full
//   (the tracker's interval applies).

/** The capability (announce caps) of a member that answers `drop` offers when full. */
export const SPLIT_CAP = "split";

export const DEFAULT_REFILL_CONFIG = Object.freeze({
  base_s: 2.0, // first refill announce this long after an announce
  max_s: 30.0, // the backoff doubles per fruitless announce up to this
});

/**
 * @param links {Set<string>|Map<string,*>|string[]} peer_ids linked now
 * @returns {{accept: boolean, drop: string|null, reason: string}}
 */
export function admitOffer(links, maxPeers, fromPeer, drop) {
  const has = (id) => (Array.isArray(links) ? links.includes(id) : links.has(id));
  const size = Array.isArray(links) ? links.length : links.size;
  if (has(fromPeer)) return { accept: false, drop: null, reason: "already_linked" };
  if (size < maxPeers) return { accept: true, drop: null, reason: "" };
  if (typeof drop === "string" && drop !== fromPeer && has(drop)) return { accept: true, drop, reason: "" };
  return { accept: false, drop: null, reason: "full" };
}

/**
 * Whether to close now a link drained to make room (docs/signaling.md, "Making room"): `outbound`
 * of our requests and `inbound` of the peer's are in flight on it, its data channel holds
 * `bufferedBytes` unsent, and it has drained for `elapsedS` of at most `maxS` seconds (0: close
 * at once). True: close it now.
 */
export function drainDue(outbound, inbound, bufferedBytes, elapsedS, maxS) {
  if (!(outbound >= 0 && inbound >= 0 && bufferedBytes >= 0)) {
    throw new RangeError("drainDue: request counts and bufferedBytes must be >= 0");
  }
  if (elapsedS >= maxS) return true;
  return outbound === 0 && inbound === 0 && bufferedBytes === 0;
}

export class Refill {
  constructor(config = {}) {
    this.config = Object.freeze({ ...DEFAULT_REFILL_CONFIG, ...config });
    if (!(this.config.base_s > 0 && this.config.base_s <= this.config.max_s)) {
      throw new RangeError("refill: need 0 < base_s <= max_s");
    }
    this.streak = 0;
    this._linksBefore = null;
  }

  /** Seconds until the next announce given the links held just after this one; null: full. */
  afterAnnounce(links, maxPeers) {
    const before = this._linksBefore;
    this._linksBefore = links;
    if (links >= maxPeers) {
      this.streak = 0;
      return null;
    }
    if (before === null || links > before) this.streak = 0;
    else this.streak += 1;
    return Math.min(this.config.max_s, this.config.base_s * 2 ** Math.min(this.streak, 30));
  }

  /** A link was lost: start again from base_s. */
  reset() {
    this.streak = 0;
    this._linksBefore = null;
  }
}

export const DEFAULT_REFUSAL_CONFIG = Object.freeze({
  base_s: 30.0, // the first back-off after a link closed BANNED (the exchange's refuse_s)
  max_s: 3600.0, // it doubles per further BANNED close, up to this (max_refuse_s)
  max_peer_ids: 256, // peer ids remembered at most; beyond, the oldest entry goes
});

/**
 * Peer ids not paired with for now (docs/signaling.md, "Filling neighbour slots"): after a link
 * closed with code BANNED, by either side, the member neither answers that peer's relayed offers
 * nor opens the link an answer from it would bring, for base_s * 2**(n-1) seconds (at most
 * max_s) after its n-th such close. Pure: time (seconds) comes in as `now`.
 */
export class Refusals {
  constructor(config = {}) {
    this.config = Object.freeze({ ...DEFAULT_REFUSAL_CONFIG, ...config });
    const c = this.config;
    if (!(c.base_s > 0 && c.base_s <= c.max_s)) throw new RangeError("refusals: need 0 < base_s <= max_s");
    if (!(c.max_peer_ids >= 1)) throw new RangeError("refusals: need max_peer_ids >= 1");
    this._entries = new Map(); // peer id -> {count, until}
  }

  get size() {
    return this._entries.size;
  }

  /** A link to peerId closed BANNED at `now`: until when it is blocked. */
  closedBanned(peerId, now) {
    const entry = this._entries.get(peerId) ?? { count: 0, until: 0 };
    this._entries.delete(peerId);
    if (entry.until > now) {
      // a close of a link opened before the block: same period
      this._entries.set(peerId, entry);
      return entry.until;
    }
    const count = entry.count + 1;
    const until = now + Math.min(this.config.max_s, this.config.base_s * 2 ** Math.min(count - 1, 30));
    this._entries.set(peerId, { count, until });
    while (this._entries.size > this.config.max_peer_ids) this._entries.delete(this._entries.keys().next().value);
    return until;
  }

  /** Whether to leave peerId alone at `now` (no answer, no link). */
  blocked(peerId, now) {
    const entry = this._entries.get(peerId);
    return entry !== undefined && entry.until > now;
  }
}
