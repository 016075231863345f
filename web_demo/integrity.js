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
    for (const [key, digest] of parseManifest(doc)) this.hashes.set(key, digest);
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

/**
 * Every rendition's manifest: fetched when the rendition is first seen and again when a segment
 * is not listed yet (one fetch at a time per manifest); a 404 before any answer switches that
 * rendition to size-only. Reports through onWarning(reason, message) and, after every fetch,
 * onChange() (the mode may have changed).
 */
export class Manifests {
  constructor({ onWarning = () => {}, onChange = () => {} } = {}) {
    this._onWarning = onWarning;
    this._onChange = onChange;
    this._byRendition = new Map(); // rendition -> Manifest
    this._refreshing = new Map(); // Manifest -> promise of the fetch in progress
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

  async refresh(manifest) {
    if (!manifest.url) return this._onChange();
    const running = this._refreshing.get(manifest);
    if (running) return running;
    const url = manifest.url;
    const fetching = (async () => {
      try {
        const r = await fetch(url, { cache: "no-store" });
        if (r.ok) manifest.update(await r.text());
        else if (r.status === 404 && !manifest.loaded) {
          this._onWarning("no_manifest", `no integrity manifest at ${url} (404): peers' segments are checked by size only`);
          manifest.url = null; // size-only mode
        } else this._onWarning(`manifest_http_${r.status}`, `integrity manifest ${url}: HTTP ${r.status}`);
      } catch (exc) {
        this._onWarning("manifest_unavailable", `integrity manifest ${url}: ${exc?.message || exc}`);
      } finally {
        this._onChange();
        setTimeout(() => this._refreshing.delete(manifest), 250); // at most one fetch per 250 ms
      }
    })();
    this._refreshing.set(manifest, fetching);
    return fetching;
  }

  /** Verdict for a whole segment of `rendition` ({key: URI as written, byteRange}): its SHA-256
   * (the manifest fetched again once when the segment is not listed), or its size. */
  async verify(rendition, target, bytes, expectedSize = null) {
    const manifest = this._byRendition.get(rendition) || new Manifest(null);
    let verdict = await manifest.verify(target, bytes, expectedSize);
    if (verdict === Verdict.UNKNOWN && manifest.url) {
      await this.refresh(manifest);
      verdict = await manifest.verify(target, bytes, expectedSize);
    }
    return verdict;
  }
}
