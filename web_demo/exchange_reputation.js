// Penalty points for lies and misbehaviour, refusals that grow, and bans that outlive a peer id,
// for SegmentExchange (segment_exchange.js), as peer_agent/core/exchange_reputation.py
// (docs/exchange.md §8b). Every offence adds points to each subject of the offender (its peer id
// and the identity keys the caller gave for its link); points decay linearly (time is an
// argument). At refuse_points the offender is disconnected and refused for a period that doubles
// with each refusal; at ban_points every subject is banned.

/** Subjects tracked at most; beyond, entries with nothing left go first. */
export const MAX_SUBJECTS = 4096;

export const Offence = Object.freeze({
  ABSENT_AFTER_HAVE: "absent_after_have",
  REQUEST_AFTER_HAVE: "request_after_have",
  ABSENT_AFTER_FETCHING: "absent_after_fetching",
  STALL: "stall",
  ABANDONED: "abandoned",
  PROTOCOL_ERROR: "protocol_error",
  UNKNOWN_REQUEST: "unknown_request",
  HASH_FAILURE: "hash_failure",
  BROKEN_PROMISE: "broken_promise",
});

export const Outcome = Object.freeze({ NONE: "none", REFUSE: "refuse", BAN: "ban" });

/** The subject naming a peer id (identity keys are the caller's own strings). */
export const peerSubject = (peerId) => "id:" + peerId;

/** The reputation rules of an exchange config (snake_case names of docs/exchange.md §2). */
export function reputationRules(cfg) {
  return {
    points: {
      [Offence.ABSENT_AFTER_HAVE]: cfg.points_absent_after_have,
      [Offence.REQUEST_AFTER_HAVE]: cfg.points_request_after_have,
      [Offence.ABSENT_AFTER_FETCHING]: cfg.points_absent_after_fetching,
      [Offence.STALL]: cfg.points_stall,
      [Offence.ABANDONED]: cfg.points_abandoned,
      [Offence.PROTOCOL_ERROR]: cfg.points_protocol_error,
      [Offence.UNKNOWN_REQUEST]: cfg.points_unknown_request,
      [Offence.HASH_FAILURE]: cfg.points_hash_failure,
      [Offence.BROKEN_PROMISE]: cfg.points_broken_promise,
    },
    decayPointsPerS: cfg.decay_points_per_s,
    refusePoints: cfg.refuse_points,
    refuseS: cfg.refuse_s,
    maxRefuseS: cfg.max_refuse_s,
    banPoints: cfg.ban_points,
  };
}

export class Reputation {
  constructor(rules) {
    this.rules = rules;
    this._subjects = new Map(); // name -> {points, at, refusals, refusedUntil, failures}
    this.banned = new Set();
    this.refusals = 0; // refusals decided (each one disconnects the offender)
    this.offences = new Map(); // offence -> times recorded
  }

  _points(entry, now) {
    const decayed = entry.points - this.rules.decayPointsPerS * Math.max(0, now - entry.at);
    return Math.max(0, decayed);
  }

  _entry(name, now) {
    let entry = this._subjects.get(name);
    if (entry === undefined) {
      this._prune(now);
      entry = { points: 0, at: now, refusals: 0, refusedUntil: 0, failures: 0 };
      this._subjects.set(name, entry);
    }
    return entry;
  }

  /** Add the points of `offence` to every subject; what to do with the offender (Outcome). */
  record(subjects, offence, now) {
    this.offences.set(offence, (this.offences.get(offence) || 0) + 1);
    const names = [...new Set(subjects)];
    if (names.some((n) => this.banned.has(n))) return Outcome.BAN;
    const add = this.rules.points[offence];
    let score = 0;
    const entries = [];
    for (const name of names) {
      const entry = this._entry(name, now);
      entry.points = this._points(entry, now) + add;
      entry.at = now;
      score = Math.max(score, entry.points);
      entries.push(entry);
    }
    if (score >= this.rules.banPoints) {
      this.ban(names);
      return Outcome.BAN;
    }
    if (score < this.rules.refusePoints || entries.some((e) => e.refusedUntil > now)) return Outcome.NONE;
    const count = Math.max(...entries.map((e) => e.refusals)) + 1;
    const until = now + Math.min(this.rules.maxRefuseS, this.rules.refuseS * 2 ** (count - 1));
    for (const entry of entries) {
      entry.refusals = count;
      entry.refusedUntil = until;
    }
    this.refusals += 1;
    return Outcome.REFUSE;
  }

  /** A hash failure of every subject; true: one of them reached banAfter failures. */
  recordFailure(subjects, banAfter, now) {
    let worst = 0;
    for (const name of new Set(subjects)) {
      const entry = this._entry(name, now);
      entry.failures += 1;
      worst = Math.max(worst, entry.failures);
    }
    return worst >= banAfter;
  }

  /** The decayed penalty points of one subject now (0 if unknown). */
  pointsOf(subject, now) {
    const entry = this._subjects.get(subject);
    return entry === undefined ? 0 : this._points(entry, now);
  }

  ban(subjects) {
    for (const name of subjects) this.banned.add(name);
  }

  isBanned(subjects) {
    return subjects.some((n) => this.banned.has(n));
  }

  /** Until when any of `subjects` is refused (Infinity: banned; 0: not refused). */
  refusedUntil(subjects) {
    let until = 0;
    for (const name of subjects) {
      if (this.banned.has(name)) return Infinity;
      const entry = this._subjects.get(name);
      if (entry !== undefined) until = Math.max(until, entry.refusedUntil);
    }
    return until;
  }

  _prune(now) {
    if (this._subjects.size < MAX_SUBJECTS) return;
    for (const [name, entry] of [...this._subjects]) {
      if (this._points(entry, now) === 0 && !entry.failures && entry.refusedUntil <= now) this._subjects.delete(name);
    }
    while (this._subjects.size >= MAX_SUBJECTS) this._subjects.delete(this._subjects.keys().next().value);
  }
}
