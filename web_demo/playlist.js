// What the engine knows of hls.js's playlists: renditions by media playlist URL, and every
// fragment it has seen ({segment, key, start_s, duration_s, known_since, url, relurl, byteRange}),
// from which the exchange's timeline of one rendition is built (docs/exchange.md §3).

import { segmentKey } from "./scheduler.js";

export class Playlists {
  constructor() {
    this.renditionByUrl = new Map(); // media playlist URL -> rendition (variant index in master)
    this.fragments = new Map(); // key -> fragment info
  }

  /** The master playlist's variants (hls.js MANIFEST_LOADED). */
  setVariants(masterUrl, levels = []) {
    levels.forEach((level, i) => this.renditionByUrl.set(level.url, i));
    if (!levels.length) this.renditionByUrl.set(masterUrl, 0);
  }

  renditionOf(url) {
    return this.renditionByUrl.has(url) ? this.renditionByUrl.get(url) : null;
  }

  get(key) {
    return this.fragments.get(key);
  }

  /** Record (or update) an hls.js fragment of `rendition`; null for one without a number. */
  learn(frag, rendition, now) {
    if (typeof frag.sn !== "number") return null;
    const segment = [rendition, frag.sn];
    const key = segmentKey(segment);
    let info = this.fragments.get(key);
    if (!info) {
      info = { segment, key, known_since: now };
      this.fragments.set(key, info);
    }
    info.start_s = frag.start;
    info.duration_s = frag.duration;
    info.url = frag.url;
    info.relurl = frag.relurl || frag.url; // the URI as the playlist writes it
    info.byteRange = frag.byteRange?.length ? [frag.byteRange[0], frag.byteRange[1]] : null;
    return info;
  }

  /** The exchange's timeline entries of `rendition`, in order. */
  timeline(rendition) {
    return [...this.fragments.values()]
      .filter((info) => info.segment[0] === rendition)
      .sort((a, b) => a.segment[1] - b.segment[1])
      .map((info) => ({
        segment: info.segment,
        start_s: info.start_s,
        duration_s: info.duration_s,
        known_since: info.known_since,
        range_bytes: info.byteRange ? info.byteRange[1] - info.byteRange[0] : null,
      }));
  }

  /** Forget fragments that end before `beforeS`, except those `keep(key)` holds on to;
   * returns their keys. */
  forget(beforeS, keep) {
    const gone = [];
    for (const [key, info] of this.fragments) {
      if (info.start_s + info.duration_s < beforeS && !keep(key)) {
        this.fragments.delete(key);
        gone.push(key);
      }
    }
    return gone;
  }
}
