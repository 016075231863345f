// The hls.js fragment loader (config.fLoader) of P2PEngine.
//
// For a media fragment the engine knows, the bytes come from the engine (the store, a peer or
// the engine's own CDN fetch, always hash-checked); anything else (init segments, unknown
// renditions, an engine that gives up or takes longer than playerFallbackS) goes to hls.js's
// own loader, whose bytes are then handed to the engine to be verified, stored and shared.
//
// hls.js reads stats.loading.{start, first, end} for its bandwidth estimate (ABR): we report the
// timing of the transfer that produced the bytes (or hls.js's whole wait, when it asked before
// the transfer began), ending now, so a segment prefetched from a peer counts at the speed it
// really came, not as an instant download; for bytes a peer sent, never slower than the
// viewer's measured CDN throughput would have fetched them (abrDurationMs: the best of the two),
// so one slow neighbour cannot pull hls.js's estimate, and the rendition, down while the CDN
// could deliver; bytes the CDN alone sent count at that transfer's own pace, never floored, so a
// real cap shows at once (abrReportMs). hls.js hands the ArrayBuffer to its transmux worker,
// which detaches it: it always gets a copy.
//
// Page events (events.js, through engine.events): segment-loaded for every fragment handed to
// hls.js (source peer, cdn or store; fallback: true when hls.js's own loader fetched it),
// segment-error when the engine gave up on a fragment or hls.js's loader failed, segment-abort.

/** The transfer time hls.js ABR is told for `bytes` that really took `realMs` (README, "ABR"):
 * the time at the better of the transfer's own rate and `cdnBytesPerS`, the viewer's recent
 * measured CDN throughput (null: none measured, the real time stands). */
export function abrDurationMs(bytes, realMs, cdnBytesPerS) {
  if (!(cdnBytesPerS > 0) || !(bytes > 0)) return realMs;
  return Math.max(1, Math.min(realMs, (bytes / cdnBytesPerS) * 1000));
}

/** What hls.js is told for one delivery (README, "ABR"). Bytes only the CDN sent: that CDN
 * transfer's own time (the engine's waits before it are not the network's; flooring a CDN
 * transfer at a CDN estimate would hide a real cap). Bytes a peer sent (alone or resumed from
 * the CDN after it): what hls.js would measure, the transfer or its whole wait when it asked
 * earlier, but never slower than the viewer's measured CDN throughput (abrDurationMs). */
function abrReportMs(bytes, transferMs, waitedMs, from, engine) {
  if (from === "cdn") return transferMs;
  return abrDurationMs(bytes, Math.max(transferMs, waitedMs), engine.abrCdnBytesPerS?.() ?? null);
}

function fragInfo(frag) {
  return { url: frag.url, sn: frag.sn, level: typeof frag.level === "number" ? frag.level : null };
}

function emit(engine, type, detail) {
  engine.events?.emit(type, detail);
}

function newStats() {
  return {
    aborted: false,
    loaded: 0,
    retry: 0,
    total: 0,
    chunkCount: 0,
    bwEstimate: 0,
    loading: { start: 0, first: 0, end: 0 },
    parsing: { start: 0, end: 0 },
    buffering: { start: 0, first: 0, end: 0 },
  };
}

/** A loader class bound to `engine`, falling back to `DefaultLoader` (hls.js's). */
export function makeFragmentLoader(engine, DefaultLoader) {
  return class P2PFragmentLoader {
    constructor(config) {
      this.hlsConfig = config;
      this.stats = newStats();
      this.context = null;
      this._callbacks = null;
      this._loaderConfig = null;
      this._fallback = null;
      this._timer = null;
      this._release = () => {};
      this._done = false;
    }

    load(context, loaderConfig, callbacks) {
      this.context = context;
      this._loaderConfig = loaderConfig;
      this._callbacks = callbacks;
      this.stats.loading.start = performance.now();
      const frag = context.frag;
      // A partial load hls.js asks for on its own (a range of a fragment that is not a byte-range
      // segment) is not ours to serve.
      const partial = (context.rangeStart || context.rangeEnd) && !frag.byteRange?.length;
      const pending = partial ? null : engine.requestFragment(frag);
      if (pending === null) {
        this._useDefault();
        return;
      }
      const limitMs = Math.min(
        engine.options.playerFallbackS * 1000,
        loaderConfig?.loadPolicy?.maxLoadTimeMs || Infinity,
      );
      this._release = pending.release;
      this._timer = setTimeout(() => {
        pending.release();
        const message = `no bytes within ${Math.round(limitMs)} ms; hls.js's loader fetches it`;
        emit(engine, "segment-error", { ...fragInfo(frag), message, fallback: true });
        this._useDefault();
      }, limitMs);
      pending.promise.then(
        (result) => this._succeed(result),
        (exc) => {
          if (this._done || this._fallback !== null) return;
          const message = `the engine could not deliver the fragment (${exc?.message || exc}); hls.js's loader fetches it`;
          emit(engine, "segment-error", { ...fragInfo(frag), message, fallback: true });
          this._useDefault();
        },
      );
    }

    _succeed({ data, timing, source }) {
      if (this._done || this._fallback !== null) return;
      this._done = true;
      clearTimeout(this._timer);
      const now = performance.now();
      const stats = this.stats;
      const durationMs = Math.max(1, (timing.doneAt - timing.startedAt) * 1000);
      const abrMs = abrReportMs(data.byteLength, durationMs, now - stats.loading.start, timing.source ?? source, engine);
      const ttfbMs = Math.min(abrMs, Math.max(0, (timing.firstAt - timing.startedAt) * 1000));
      stats.loading.end = now;
      stats.loading.start = now - abrMs;
      stats.loading.first = stats.loading.start + ttfbMs;
      stats.loaded = stats.total = data.byteLength;
      stats.chunkCount = 1;
      const context = this.context;
      const callbacks = this._callbacks;
      // data is already a copy owned by this call (the engine keeps its own).
      engine.auditDelivery(context.frag, data, source);
      emit(engine, "segment-loaded", {
        ...fragInfo(context.frag),
        source,
        fallback: false,
        bytes: data.byteLength,
        peerId: source === "peer" ? (timing.peer_id ?? null) : null,
        durationMs,
      });
      callbacks.onSuccess({ url: context.url, data: data.buffer }, stats, context, null);
    }

    _useDefault() {
      if (this._done || this._fallback !== null) return;
      clearTimeout(this._timer);
      const loader = new DefaultLoader(this.hlsConfig);
      this._fallback = loader;
      const own = this.stats;
      const copyStats = (s) => {
        if (!s) return own;
        own.loaded = s.loaded;
        own.total = s.total;
        own.chunkCount = s.chunkCount;
        own.retry = s.retry;
        own.aborted = s.aborted;
        own.loading.start = s.loading.start;
        own.loading.first = s.loading.first;
        own.loading.end = s.loading.end;
        return own;
      };
      const cb = this._callbacks;
      const frag = this.context.frag;
      loader.load(this.context, this._loaderConfig, {
        onSuccess: (response, stats, context, details) => {
          this._done = true;
          const data = response.data;
          if (data instanceof ArrayBuffer && data.byteLength > 0) {
            const elapsedMs = stats ? stats.loading.end - stats.loading.start : NaN;
            engine.ingestFromCdn(frag, new Uint8Array(data.slice(0)), elapsedMs > 0 ? elapsedMs / 1000 : null);
            engine.auditDelivery(frag, data, "fallback");
          }
          const s = copyStats(stats);
          emit(engine, "segment-loaded", {
            ...fragInfo(frag),
            source: "cdn",
            fallback: true,
            bytes: data?.byteLength ?? 0,
            peerId: null,
            durationMs: Math.max(0, s.loading.end - s.loading.start),
          });
          cb.onSuccess(response, s, context, details);
        },
        onError: (error, context, details, stats) => {
          const message = `hls.js's loader failed: ${error?.text || error?.code || "error"}`;
          emit(engine, "segment-error", { ...fragInfo(frag), message, fallback: false });
          cb.onError(error, context, details, copyStats(stats));
        },
        onTimeout: (stats, context, details) => {
          emit(engine, "segment-error", { ...fragInfo(frag), message: "hls.js's loader timed out", fallback: false });
          cb.onTimeout(stats ? copyStats(stats) : own, context, details);
        },
        onAbort: cb.onAbort ? (stats, context, details) => cb.onAbort(copyStats(stats), context, details) : undefined,
        onProgress: cb.onProgress
          ? (stats, context, data, details) => cb.onProgress(copyStats(stats), context, data, details)
          : undefined,
      });
    }

    abort() {
      clearTimeout(this._timer);
      if (this._fallback !== null) {
        if (!this._done && this.context) emit(engine, "segment-abort", fragInfo(this.context.frag));
        this._fallback.abort();
        return;
      }
      if (this._done) return;
      this._done = true;
      this.stats.aborted = true;
      this._release();
      if (this.context) emit(engine, "segment-abort", fragInfo(this.context.frag));
      this._callbacks?.onAbort?.(this.stats, this.context, null);
    }

    destroy() {
      clearTimeout(this._timer);
      if (this._fallback !== null) this._fallback.destroy();
      else if (!this._done) this._release();
      this._done = true;
      this._callbacks = null;
    }
  };
}
