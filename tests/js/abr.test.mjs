// What hls.js ABR is told about a fragment the engine delivers (loader.js abrDurationMs, README
// "ABR"): the best of the transfer's own rate and the viewer's recent measured CDN throughput,
// so one slow neighbour cannot pull the bandwidth estimate down while the CDN could deliver.
import assert from "node:assert/strict";
import { test } from "node:test";

import { abrDurationMs, makeFragmentLoader } from "../../web_demo/loader.js";

const MB = 1_000_000;

test("abrDurationMs: the better of the transfer's rate and the CDN's; the real time without a CDN figure", () => {
  assert.equal(abrDurationMs(MB, 10_000, 10 * MB), 100); // a slow peer: counted at the CDN's pace
  assert.equal(abrDurationMs(MB, 50, 10 * MB), 50); // a peer faster than the CDN: its real pace
  assert.equal(abrDurationMs(MB, 10_000, null), 10_000); // nothing measured: the real time
  assert.equal(abrDurationMs(MB, 10_000, 0), 10_000);
  assert.equal(abrDurationMs(0, 10, 10 * MB), 10);
  // a real cap: the CDN itself is slow, so a slow transfer stays slow (hls.js still switches down)
  assert.equal(abrDurationMs(MB, 4_000, 0.5 * MB), 2_000);
  assert.equal(abrDurationMs(1, 5, 1e12), 1); // never below a millisecond
});

function engineWith(cdnBytesPerS, source = "peer") {
  return {
    options: { playerFallbackS: 8 },
    requestFragment() {
      const now = performance.now() / 1000;
      // a neighbour (or the CDN) took 10 s over these bytes (first byte after 1 s)
      const timing = { startedAt: now - 10, firstAt: now - 9, doneAt: now, source };
      return { promise: Promise.resolve({ data: new Uint8Array(MB), timing, source }), release() {} };
    },
    abrCdnBytesPerS: () => cdnBytesPerS,
    auditDelivery() {},
  };
}

async function loadedStats(engine, { waitedMs = 0 } = {}) {
  const frag = { sn: 3, baseurl: "http://o/hls/s/hi/index.m3u8", url: "http://o/hls/s/hi/seg-3.ts" };
  const Loader = makeFragmentLoader(engine, class {});
  const loader = new Loader({});
  const stats = new Promise((resolve, reject) => {
    loader.load({ url: frag.url, frag }, { loadPolicy: { maxLoadTimeMs: 60_000 } }, {
      onSuccess: (_response, s) => resolve({ ...s.loading }),
      onError: reject,
      onTimeout: reject,
    });
  });
  loader.stats.loading.start -= waitedMs; // hls.js asked this much earlier (the bytes come later)
  return await stats;
}

function engineDelivering(transferS, cdnBytesPerS) {
  const engine = engineWith(cdnBytesPerS);
  engine.requestFragment = () => {
    const now = performance.now() / 1000;
    const timing = { startedAt: now - transferS, firstAt: now - transferS, doneAt: now };
    return { promise: Promise.resolve({ data: new Uint8Array(MB), timing, source: "peer" }), release() {} };
  };
  return engine;
}

test("hls.js's whole wait counts (a resume after a slow peer), floored at the CDN's pace", async () => {
  // the last leg took 10 ms, but hls.js asked 8 s earlier: without a CDN figure it sees 8 s
  let { start, end } = await loadedStats(engineDelivering(0.01, null), { waitedMs: 8_000 });
  assert.ok(end - start >= 7_999, `${end - start} ms`);
  // with the CDN measured at 10 MB/s: 100 ms
  ({ start, end } = await loadedStats(engineDelivering(0.01, 10 * MB), { waitedMs: 8_000 }));
  assert.ok(end - start >= 99 && end - start <= 101, `${end - start} ms`);
  // prefetched long ago (no wait): the transfer's own 50 ms, faster than the CDN, stands
  ({ start, end } = await loadedStats(engineDelivering(0.05, 10 * MB)));
  assert.ok(end - start >= 49 && end - start <= 60, `${end - start} ms`);
});

test("the loader tells hls.js a slow peer's segment at the CDN's measured pace", async () => {
  const { start, first, end } = await loadedStats(engineWith(10 * MB));
  assert.ok(start <= first && first <= end);
  // 1 MB at 10 MB/s: ~100 ms, i.e. hls.js estimates ~80 Mbit/s, not 0.8
  assert.ok(end - start >= 99 && end - start <= 101, `${end - start} ms`);
});

test("bytes the CDN alone sent count at that transfer's own pace, never floored (a real cap shows at once)", async () => {
  // the CDN took 10 s: hls.js is told 10 s even with a (stale) CDN figure of 10 MB/s
  let { start, end } = await loadedStats(engineWith(10 * MB, "cdn"));
  assert.ok(end - start >= 9_999 && end - start <= 10_050, `${end - start} ms`);
  // the same from the store (prefetched from the CDN before hls.js asked): the transfer's 10 s
  const engine = engineWith(10 * MB, "cdn");
  const deliver = engine.requestFragment;
  engine.requestFragment = () => {
    const r = deliver();
    return { ...r, promise: r.promise.then((x) => ({ ...x, source: "store" })) };
  };
  ({ start, end } = await loadedStats(engine));
  assert.ok(end - start >= 9_999 && end - start <= 10_050, `${end - start} ms`);
  // the engine waited 5 s before a 1 s CDN transfer (an elected neighbour that never sent):
  // the engine's wait is not the network's, hls.js is told the transfer's 1 s
  const waited = engineDelivering(1.0, 10 * MB);
  const peerDeliver = waited.requestFragment;
  waited.requestFragment = () => {
    const r = peerDeliver();
    return {
      ...r,
      promise: r.promise.then((x) => ({ ...x, timing: { ...x.timing, source: "cdn" }, source: "cdn" })),
    };
  };
  ({ start, end } = await loadedStats(waited, { waitedMs: 5_000 }));
  assert.ok(end - start >= 999 && end - start <= 1_050, `${end - start} ms`);
});

test("without a recent CDN figure the slow transfer's real timing stands", async () => {
  const { start, end } = await loadedStats(engineWith(null));
  assert.ok(end - start >= 9_999, `${end - start} ms`);
});

test("the engine offers its CDN estimate to the loader only while it is recent", async () => {
  const { P2PEngine } = await import("../../web_demo/engine.js");
  class FakeHls {
    static DefaultConfig = { loader: class {}, abrController: class {} };
    static Events = {};
  }
  const engine = new P2PEngine({ Hls: FakeHls, p2p: false });
  try {
    assert.equal(engine.abrCdnBytesPerS(0), null); // nothing fetched yet
    engine.exchange.cdnRate.addSample(2 * MB, 1.0);
    engine._cdnSampledAt = 100;
    assert.ok(Math.abs(engine.abrCdnBytesPerS(130) - 2 * MB) < 1);
    assert.equal(engine.abrCdnBytesPerS(161), null); // stale: the network may have changed
  } finally {
    engine.destroy();
  }
});

test("the CDN figure is the lower of the EWMA and the last fetch: a cap counts at once", async () => {
  const { P2PEngine } = await import("../../web_demo/engine.js");
  class FakeHls {
    static DefaultConfig = { loader: class {}, abrController: class {} };
    static Events = {};
  }
  const engine = new P2PEngine({ Hls: FakeHls, p2p: false });
  try {
    // 200 fast fetches, then one at a capped 150 KB/s over 7 s: the EWMA (3 s half-life, decayed
    // by transfer time) still holds a sixth of the old 25 MB/s, the figure offered is the slow
    // fetch's own rate
    for (let i = 0; i < 200; i++) {
      engine.exchange.cdnRate.addSample(MB, 0.04);
      engine._noteCdnSample(MB, 0.04, 100 + i / 100);
    }
    assert.ok(Math.abs(engine.abrCdnBytesPerS(105) - 25 * MB) < 0.01 * MB);
    engine.exchange.cdnRate.addSample(1.05 * MB, 7);
    engine._noteCdnSample(1.05 * MB, 7, 112);
    assert.ok(engine.exchange.cdnRate.estimate > 2 * MB, `${engine.exchange.cdnRate.estimate}`);
    assert.ok(Math.abs(engine.abrCdnBytesPerS(112) - 0.15 * MB) < 1);
    // a fast fetch again: the EWMA, not the one fast sample, until it has caught up
    engine.exchange.cdnRate.addSample(MB, 0.04);
    engine._noteCdnSample(MB, 0.04, 113);
    assert.ok(engine.abrCdnBytesPerS(113) < 25 * MB);
    assert.equal(engine.abrCdnBytesPerS(113), engine.exchange.cdnRate.estimate);
    // a small fetch (a resume of 20 kB after a slow peer, round-trip bound) sets no figure
    engine._noteCdnSample(20_000, 0.2, 114);
    assert.equal(engine.abrCdnBytesPerS(114), engine.exchange.cdnRate.estimate);
  } finally {
    engine.destroy();
  }
});
