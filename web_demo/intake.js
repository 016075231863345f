// Where bytes become segments (P2PEngine methods, installed on its prototype; the same split as
// peer_agent/agent/intake.py): CDN fetches, relayed cut-through as they arrive; then the hash
// check against the manifest; then store, announce, hand to the player; or, on a mismatch,
// discard, penalise every contributing peer, ban repeat offenders and refetch from the CDN.

import { segmentKey } from "./scheduler.js";
import { Manifest, Verdict } from "./integrity.js";
import { wireSeg } from "./store.js";

const nowS = () => performance.now() / 1000;

export const intakeMethods = {
  // --- CDN ------------------------------------------------------------------------------------

  _startCdn(key, offset) {
    const info = this.timeline.get(key);
    if (this.transfers.has(key) || !info) return;
    const held = this._heldFor(key, offset);
    const now = nowS();
    const t = {
      key,
      segment: info.segment,
      peer_id: null,
      started_at: now,
      offset: held.buf.length,
      received: 0,
      last_data_at: null,
      first_at: null,
      verifying: false,
      abort: new AbortController(),
    };
    this.transfers.set(key, t);
    this._cdnFetch(t, info, held);
    if (this.swarm) this.swarm.broadcastFetching([{ segment: wireSeg(info.segment), expected_bytes: this.sizes.get(key) || 0 }]);
  },

  async _cdnFetch(t, info, held) {
    const headers = {};
    const base = info.byteRange ? info.byteRange[0] : 0;
    if (info.byteRange) headers.Range = `bytes=${base + t.offset}-${info.byteRange[1] - 1}`;
    else if (t.offset > 0) headers.Range = `bytes=${t.offset}-`;
    const alive = () => this.transfers.get(t.key) === t && !this.destroyed;
    try {
      const r = await fetch(info.url, { headers, signal: t.abort.signal });
      if (!r.ok) throw new Error(`HTTP ${r.status}`);
      const length = Number(r.headers.get("Content-Length"));
      if (length > 0 && alive()) {
        held.total = t.offset + length;
        this.sizes.set(t.key, held.total);
        this._pumpSegment(t.key);
      }
      const reader = r.body.getReader();
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (!alive()) {
          reader.cancel().catch(() => {});
          return;
        }
        const now = nowS();
        if (t.first_at === null) t.first_at = now;
        held.buf.append(value);
        held.contributors.add(null);
        t.received += value.length;
        t.last_data_at = now;
        this.counters.bytesFromCdn += value.length;
        this.events.emit("bytes-downloaded", { source: "cdn", peerId: null, bytes: value.length });
        this._pumpSegment(t.key);
      }
      if (!alive()) return;
      const elapsed = Math.max(1e-6, nowS() - t.started_at);
      this.cdnRate.addSample(t.received, elapsed);
      held.total = held.buf.length;
      this.sizes.set(t.key, held.total);
      this._complete(info, held, { startedAt: t.started_at, firstAt: t.first_at ?? nowS(), doneAt: nowS(), peer_id: null }, true, t);
    } catch (exc) {
      if (t.abort.signal.aborted) return;
      console.warn(`p2p: CDN fetch of ${t.key} failed`, exc);
      this.events.emit("warning", { source: "cdn", reason: "cdn_fetch_failed", message: `CDN fetch of ${info.url} failed: ${exc?.message || exc}`, code: null });
      if (this.transfers.get(t.key) === t) this.transfers.delete(t.key);
      this.wake();
    }
  },

  // --- completing a segment -------------------------------------------------------------------

  async _complete(info, held, timing, fromTransfer, transfer = null) {
    const key = info.key;
    if (transfer) transfer.verifying = true;
    const data = held.buf.copy();
    const manifest = this.manifests.get(info.segment[0]) || new Manifest(null);
    const target = { key: info.relurl, uri: info.url, byteRange: info.byteRange };
    let verdict = await manifest.verify(target, data, held.total);
    if (verdict === Verdict.UNKNOWN && manifest.url) {
      await this._refreshManifest(manifest);
      verdict = await manifest.verify(target, data, held.total);
    }
    if (fromTransfer && this.transfers.get(key) === transfer) this.transfers.delete(key);
    if (this.destroyed) return;
    const peers = [...held.contributors].filter((p) => p !== null);
    if (verdict === Verdict.UNKNOWN) {
      if (!manifest.url || peers.length === 0) verdict = Verdict.OK;
      else {
        this.counters.unverifiable += 1;
        this._discardAndRefetch(key);
        return;
      }
    }
    if (verdict === Verdict.MISMATCH) {
      this.counters.hashFailures += 1;
      this.counters.bytesRejected += data.length;
      console.warn(`p2p: ${key} failed its hash (sources: ${peers.join(", ") || "CDN"})`);
      for (const pid of peers) {
        if (this.penalties.record(pid, nowS())) this._ban(pid);
        this._addAvoid(key, pid);
      }
      this._discardAndRefetch(key);
      return;
    }
    this._accept(info, data, timing, peers.length > 0);
  },

  _discardAndRefetch(key) {
    this.held.delete(key);
    this._abortRelays(key);
    const count = (this.hashRetries.get(key) || 0) + 1;
    this.hashRetries.set(key, count);
    if (count <= this.options.maxHashRetries) this._startCdn(key, 0);
    else {
      this.givenUp.add(key);
      for (const w of this.waiters.get(key) || []) w.reject(new Error("segment failed its hash"));
      this.waiters.delete(key);
    }
    this.wake();
  },

  _accept(info, data, timing, fromPeers) {
    const key = info.key;
    this.counters.segmentsVerified += 1;
    if (fromPeers) this.counters.segmentsFromPeers += 1;
    else this.counters.segmentsFromCdn += 1;
    this.avoid.delete(key);
    this.held.delete(key);
    this.sizes.set(key, data.length);
    info.timing = timing;
    const evicted = this.store.put(key, info.segment, data);
    if (this.swarm) {
      if (this.store.has(key)) this.swarm.broadcastHave([wireSeg(info.segment)]);
      const lost = evicted.filter((s) => segmentKey(s) !== key).map(wireSeg);
      if (lost.length) this.swarm.broadcastLost(lost);
    }
    const waiters = this.waiters.get(key) || [];
    this.waiters.delete(key);
    for (const w of waiters) w.resolve({ data: data.slice(), timing, source: fromPeers ? "peer" : "cdn" });
    this._pumpSegment(key);
    this.wake();
  },

};
