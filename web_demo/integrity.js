// Segment integrity with WebCrypto: SHA-256 against the rendition's trusted manifest
// (docs/origin.md: a JSON object {segment uri: sha256 hex}), as peer_agent/agent/integrity.py.
//
// A segment's key is the canonical one of docs/exchange.md §11: its URI exactly as the media
// playlist writes it, with "#first-last" for a byte range; no other form is tried.
// Without a manifest only sizes can be checked: mode "size-only".

import { Verdict } from "./exchange_state.js";
import { toHex } from "./ids.js";

export { Verdict };

export async function sha256Hex(bytes) {
  const digest = await globalThis.crypto.subtle.digest("SHA-256", bytes);
  return toHex(digest);
}

const HEX64 = /^[0-9a-f]{64}$/;

/** Defaults of the incremental manifest fetch (docs/exchange.md §12). */
export const MAX_MANIFEST_BYTES = 1 << 20;
export const MAX_MANIFEST_ENTRIES = 4096;

/** A manifest answer refused whole; `reason` is "manifest_too_large" or "manifest_invalid". */
export class ManifestRejected extends Error {
  constructor(reason, message) {
    super(message);
    this.name = "ManifestRejected";
    this.reason = reason;
  }
}

/** The URL asking `url` for the entries from MSN `msn` on (docs/exchange.md §12): any #fragment
 * and from_msn= parameter dropped, from_msn=<msn> appended (string operations, as the agent). */
export function incrementalManifestUrl(url, msn) {
  if (!Number.isSafeInteger(msn) || msn < 0) throw new Error(`bad MSN ${msn}`);
  const noFragment = url.split("#", 1)[0];
  const q = noFragment.indexOf("?");
  const base = q < 0 ? noFragment : noFragment.slice(0, q);
  const query = q < 0 ? "" : noFragment.slice(q + 1);
  const params = query.split("&").filter((p) => p && !p.startsWith("from_msn="));
  params.push(`from_msn=${msn}`);
  return `${base}?${params.join("&")}`;
}

/** {key: digest} of a manifest document (an object, or {segments: {...}}); bad entries dropped.
 * Throws ManifestRejected for a document that is not an object or lists over `maxEntries`. */
export function parseManifest(doc, maxEntries = MAX_MANIFEST_ENTRIES) {
  let raw = doc;
  if (typeof doc === "string") {
    try {
      raw = JSON.parse(doc);
    } catch (exc) {
      throw new ManifestRejected("manifest_invalid", `a manifest is JSON: ${exc.message}`);
    }
  }
  if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new ManifestRejected("manifest_invalid", "a manifest is a JSON object");
  const entries = raw.segments && typeof raw.segments === "object" ? raw.segments : raw;
  const count = Object.keys(entries).length;
  if (count > maxEntries) throw new ManifestRejected("manifest_too_large", `manifest lists ${count} entries, over ${maxEntries}`);
  const out = new Map();
  for (const [key, value] of Object.entries(entries)) {
    if (typeof value !== "string") continue;
    const digest = value.toLowerCase();
    if (HEX64.test(digest)) out.set(key, digest);
  }
  return out;
}

/** The manifest key of a resource (docs/exchange.md §11): its URI exactly as the media playlist
 * writes it (hls.js: frag.relurl), and for a byte range [start, end) (hls.js: frag.byteRange)
 * "#first-last", the inclusive positions of its first and last byte. No other form is tried. */
export function manifestKey(uri, byteRange = null) {
  if (!byteRange?.length) return uri;
  const [start, end] = byteRange;
  if (!(Number.isInteger(start) && Number.isInteger(end) && 0 <= start && start < end)) {
    throw new Error(`bad byte range [${start}, ${end})`);
  }
  return `${uri}#${start}-${end - 1}`;
}

/** A rendition's hashes, merged across refreshes (a live manifest grows): at most `maxEntries`
 * keys, the oldest-inserted dropped first. */
export class Manifest {
  constructor(url, { maxEntries = MAX_MANIFEST_ENTRIES, maxBytes = MAX_MANIFEST_BYTES } = {}) {
    this.url = url;
    this.maxEntries = maxEntries;
    this.maxBytes = maxBytes;
    this.hashes = new Map();
    this.loaded = false;
  }

  /** What to fetch when segment `msn` is not listed: the whole manifest until one was loaded
   * (or without an MSN), then only the entries from `msn` on. */
  urlFor(msn = null) {
    if (!this.url || !this.loaded || msn === null || msn === undefined) return this.url;
    return incrementalManifestUrl(this.url, msn);
  }

  get mode() {
    return this.url ? "sha256" : "size-only";
  }

  /** Merge an answer (throws ManifestRejected, holding nothing of it). */
  update(doc) {
    for (const [key, digest] of parseManifest(doc, this.maxEntries)) this.hashes.set(key, digest);
    for (const key of this.hashes.keys()) {
      if (this.hashes.size <= this.maxEntries) break;
      this.hashes.delete(key);
    }
    this.loaded = true;
  }

  /** The hash listed for a resource (`key`: its URI as the playlist writes it), or null. */
  expectedFor(key, byteRange = null) {
    return this.hashes.get(manifestKey(key, byteRange)) ?? null;
  }

  /** Verdict for the whole segment's bytes. */
  async verify({ key, byteRange = null }, bytes, expectedSize = null) {
    if (!this.url) {
      const size = byteRange ? byteRange[1] - byteRange[0] : expectedSize;
      if (size === null || size === undefined) return bytes.length ? Verdict.UNKNOWN : Verdict.MISMATCH;
      return bytes.length === size ? Verdict.OK : Verdict.MISMATCH;
    }
    const digest = this.expectedFor(key, byteRange);
    if (digest === null) return Verdict.UNKNOWN;
    return (await sha256Hex(bytes)) === digest ? Verdict.OK : Verdict.MISMATCH;
  }
}

/** The body of `response` as text, refusing (unread past the limit) one over `maxBytes`. */
export async function readBounded(response, maxBytes) {
  const declared = Number(response.headers?.get?.("content-length"));
  if (Number.isFinite(declared) && declared > maxBytes) {
    response.body?.cancel?.().catch(() => {});
    throw new ManifestRejected("manifest_too_large", `manifest of ${declared} bytes, over ${maxBytes}`);
  }
  if (!response.body?.getReader) {
    const text = await response.text();
    if (text.length > maxBytes) throw new ManifestRejected("manifest_too_large", `manifest over ${maxBytes} bytes`);
    return { text, bytes: text.length };
  }
  const reader = response.body.getReader();
  const chunks = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > maxBytes) {
      reader.cancel().catch(() => {});
      throw new ManifestRejected("manifest_too_large", `manifest body over ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  const all = new Uint8Array(bytes);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.byteLength;
  }
  return { text: new TextDecoder().decode(all), bytes };
}

/**
 * Every rendition's manifest: fetched whole when the rendition is first seen, then, when a
 * segment is not listed yet, only the entries from its MSN on (docs/exchange.md §12; one fetch at
 * a time per manifest, at most one per 250 ms); a 404 before any answer switches that rendition
 * to size-only. Reports through onWarning(reason, message) and, after every fetch, onChange()
 * (the mode may have changed). `fetches`, `bytesFetched` and `rejected` (by reason) count.
 */
export class Manifests {
  constructor({ onWarning = () => {}, onChange = () => {}, fetchFn = null } = {}) {
    this._onWarning = onWarning;
    this._onChange = onChange;
    this._fetch = fetchFn || ((...args) => globalThis.fetch(...args));
    this._byRendition = new Map(); // rendition -> Manifest
    this._refreshing = new Map(); // Manifest -> its latest fetch, until 250 ms after its answer
    this._sent = 0; // fetches sent so far (each fetch's `serial`)
    this.fetches = 0;
    this.bytesFetched = 0;
    this.rejected = {};
  }

  has(rendition) {
    return this._byRendition.has(rendition);
  }

  /** Start following `rendition`'s manifest at `url` (null: none, size-only). */
  add(rendition, url) {
    const manifest = new Manifest(url);
    this._byRendition.set(rendition, manifest);
    this.refresh(manifest);
    return manifest;
  }

  /** Whether `rendition` is checked by SHA-256 (else by size only). */
  sha256(rendition) {
    return Boolean(this._byRendition.get(rendition)?.url);
  }

  /** "sha256" when any rendition has a manifest, else "size-only". */
  get mode() {
    return this.firstUrl !== null ? "sha256" : "size-only";
  }

  get firstUrl() {
    for (const m of this._byRendition.values()) if (m.url) return m.url;
    return null;
  }

  /** Fetch `manifest` (from `msn` on once it is loaded); resolves to whether this call sent the
   * fetch it waited for. A fetch in progress, or one answered less than 250 ms ago, serves a
   * caller whose `msn` it covers; one from a later MSN does not list `msn`, so this caller's own
   * fetch follows it at once. `fresh`: only a fetch sent after this call will do, still at most
   * one per 250 ms: a shared answer may have been asked for before the origin published the
   * segment (docs/exchange.md, section 12; as peer_agent/agent/agent.py). */
  async refresh(manifest, msn = null, { fresh = false } = {}) {
    if (!manifest.url) return this._unfollowed();
    const covers = (entry) => entry.from === null || msn === null || entry.from <= msn;
    if (fresh) {
      const sent = this._sent;
      for (let running; (running = this._refreshing.get(manifest)); ) {
        await running.promise;
        if (running.serial > sent && covers(running)) return false; // sent after this call
        await running.released;
      }
      if (!manifest.url) return this._unfollowed();
      await this._send(manifest, msn);
      return true;
    }
    const running = this._refreshing.get(manifest);
    if (running) {
      await running.promise;
      if (covers(running)) return false;
      const next = this._refreshing.get(manifest);
      if (next && next !== running) {
        await next.promise;
        if (covers(next)) return false;
      }
      if (!manifest.url) return this._unfollowed();
    }
    await this._send(manifest, msn);
    return true;
  }

  _unfollowed() {
    this._onChange();
    return false;
  }

  /** One fetch of `manifest` from `msn` on; it stays the latest until 250 ms after its answer. */
  _send(manifest, msn) {
    const url = manifest.urlFor(msn);
    this._sent += 1;
    let release;
    const entry = {
      from: manifest.loaded ? msn : null,
      serial: this._sent,
      promise: null,
      released: new Promise((resolve) => (release = resolve)),
    };
    entry.promise = (async () => {
      try {
        // A from_msn answer may come from a CDN's cache (its URL names one segment's entry);
        // the whole manifest is fetched past any cache.
        const r = await this._fetch(url, { cache: url === manifest.url ? "no-store" : "default" });
        if (r.ok) {
          this.fetches += 1;
          const { text, bytes } = await readBounded(r, manifest.maxBytes);
          this.bytesFetched += bytes;
          manifest.update(text);
        } else if (r.status === 404 && !manifest.loaded) {
          this._onWarning("no_manifest", `no integrity manifest at ${url} (404): peers' segments are checked by size only`);
          manifest.url = null; // size-only mode
        } else this._onWarning(`manifest_http_${r.status}`, `integrity manifest ${url}: HTTP ${r.status}`);
      } catch (exc) {
        if (exc instanceof ManifestRejected) {
          this.rejected[exc.reason] = (this.rejected[exc.reason] || 0) + 1;
          this._onWarning(exc.reason, `integrity manifest ${url} refused: ${exc.message}`);
        } else this._onWarning("manifest_unavailable", `integrity manifest ${url}: ${exc?.message || exc}`);
      } finally {
        this._onChange();
        setTimeout(() => { // at most one fetch per 250 ms for the MSNs this one covers
          if (this._refreshing.get(manifest) === entry) this._refreshing.delete(manifest);
          release();
        }, 250);
      }
    })();
    this._refreshing.set(manifest, entry);
    return entry.promise;
  }

  /** Verdict for a whole segment of `rendition` ({key: URI as written, byteRange, msn}): its
   * SHA-256 (the entries from its MSN on fetched once when it is not listed), or its size.
   * With `wait` false (bytes the caller trusts unlisted: the CDN's alone, docs/exchange.md §6)
   * an unlisted segment's verdict, unknown, comes at once and that fetch runs in the background,
   * so the next peer-assisted segment finds its entry (as peer_agent/agent/agent.py's _check). */
  async verify(rendition, target, bytes, expectedSize = null, { wait = true } = {}) {
    const manifest = this._byRendition.get(rendition) || new Manifest(null);
    let verdict = await manifest.verify(target, bytes, expectedSize);
    if (verdict === Verdict.UNKNOWN && manifest.url) {
      const msn = target.msn ?? null;
      const refreshing = this.refresh(manifest, msn);
      if (!wait) {
        refreshing.catch(() => {}); // it reports through onWarning; nobody waits for it
        return verdict;
      }
      const own = await refreshing;
      verdict = await manifest.verify(target, bytes, expectedSize);
      if (verdict === Verdict.UNKNOWN && manifest.url && !own) {
        await this.refresh(manifest, msn, { fresh: true }); // the shared answer may predate it
        verdict = await manifest.verify(target, bytes, expectedSize);
      }
    }
    return verdict;
  }
}
