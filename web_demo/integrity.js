// Segment integrity with WebCrypto: SHA-256 against the rendition's trusted manifest
// (docs/origin.md: a JSON object {segment uri: sha256 hex}), as peer_agent/agent/integrity.py.
//
// Keys are matched against the URI as written in the playlist, its absolute URL, its path and
// its last path component; a byte-range segment also under "<key>#<first>-<last>".
// Without a manifest only sizes can be checked: mode "size-only".

import { toHex } from "./ids.js";

export const Verdict = Object.freeze({ OK: "ok", MISMATCH: "mismatch", UNKNOWN: "unknown" });

export async function sha256Hex(bytes) {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", bytes);
  return toHex(digest);
}

const HEX64 = /^[0-9a-f]{64}$/;

/** {key: digest} of a manifest document (an object, or {segments: {...}}); bad entries dropped. */
export function parseManifest(doc) {
  const raw = typeof doc === "string" ? JSON.parse(doc) : doc;
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new Error("a manifest is a JSON object");
  const entries = raw.segments && typeof raw.segments === "object" ? raw.segments : raw;
  const out = new Map();
  for (const [key, value] of Object.entries(entries)) {
    if (typeof value !== "string") continue;
    const digest = value.toLowerCase();
    if (HEX64.test(digest)) out.set(key, digest);
  }
  return out;
}

export function manifestKeys(key, uri, byteRange = null) {
  let path = uri;
  try {
    path = new URL(uri).pathname;
  } catch {
    // a relative URI: use it as it is
  }
  const name = path.split("/").pop();
  let keys = [...new Set([key, uri, path, path.replace(/^\/+/, ""), name].filter(Boolean))];
  if (byteRange) {
    const [start, end] = byteRange; // [first, last + 1), as hls.js gives it
    const suffixes = [`${start}-${end - 1}`, `${end - start}@${start}`];
    keys = [...keys.flatMap((k) => suffixes.flatMap((s) => [`${k}#${s}`, `${k}@${s}`])), ...keys];
  }
  return keys;
}

/** A rendition's hashes, merged across refreshes (a live manifest grows). */
export class Manifest {
  constructor(url) {
    this.url = url;
    this.hashes = new Map();
    this.loaded = false;
  }

  get mode() {
    return this.url ? "sha256" : "size-only";
  }

  update(doc) {
    for (const [key, digest] of parseManifest(doc)) {
      this.hashes.set(key, digest);
      if (this.url && !/^https?:\/\//.test(key)) this.hashes.set(new URL(key, this.url).href, digest);
    }
    this.loaded = true;
  }

  expectedFor(key, uri, byteRange = null) {
    for (const k of manifestKeys(key, uri, byteRange)) {
      const digest = this.hashes.get(k);
      if (digest !== undefined) return digest;
    }
    return null;
  }

  /** Verdict for the whole segment's bytes. */
  async verify({ key, uri, byteRange = null }, bytes, expectedSize = null) {
    if (!this.url) {
      const size = byteRange ? byteRange[1] - byteRange[0] : expectedSize;
      if (size === null || size === undefined) return bytes.length ? Verdict.UNKNOWN : Verdict.MISMATCH;
      return bytes.length === size ? Verdict.OK : Verdict.MISMATCH;
    }
    const digest = this.expectedFor(key, uri, byteRange);
    if (digest === null) return Verdict.UNKNOWN;
    return (await sha256Hex(bytes)) === digest ? Verdict.OK : Verdict.MISMATCH;
  }
}

/** Per-peer hash-failure counts, penalty windows and bans (IntegrityConfig defaults). */
export class Penalties {
  constructor({ ban_after_failures = 2, penalty_s = 10.0 } = {}) {
    this.banAfterFailures = ban_after_failures;
    this.penaltyS = penalty_s;
    this.failures = new Map();
    this.banned = new Set();
    this.penalisedUntil = new Map();
  }

  /** `peerId` contributed to a bad segment; true: ban it now. */
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
