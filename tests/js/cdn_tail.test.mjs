// The CDN's tail: the fetch-time estimator, the exchange feeding it each finished CDN fetch's excess
// over its bytes at the mean rate (the view's cdn_tail_s), and the urgent window that follows it (docs/scheduling.md,
// "The CDN's tail"); the same figures as tests/core/test_cdn_tail.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { decide, schedulerConfig } from "../../web_demo/scheduler.js";
import { SegmentExchange, exchangeConfig } from "../../web_demo/segment_exchange.js";
import { FetchTimeEstimator } from "../../web_demo/store.js";

const near = (a, b) => assert.ok(Math.abs(a - b) < 1e-9, `${a} != ${b}`);

test("fetch time: smoothed duration plus four deviations (as the Python FetchTimeEstimator)", () => {
  const est = new FetchTimeEstimator();
  assert.equal(est.tail, null);
  est.addSample(0.4);
  near(est.tail, 1.2);
  est.addSample(0.4);
  near(est.tail, 1.0);
  est.addSample(2.0);
  near(est.tail, 0.6 + 4 * 0.5125);
  est.addSample(-1);
  est.addSample(NaN);
  near(est.tail, 2.65);
  assert.throws(() => new FetchTimeEstimator(0));
  assert.throws(() => new FetchTimeEstimator(0.125, 0.25, -1));
});

function fetchOnce(ex, segment, at, elapsedS) {
  ex.apply([{ action: "fetch_cdn", segment, offset: 0, reason: "elected" }], at);
  const fetches = [];
  for (let a = ex.nextAction(); a !== null && a !== undefined; a = ex.nextAction()) if (a.action === "fetch_cdn") fetches.push(a);
  assert.equal(fetches.length, 1);
  ex.cdnData(fetches[0].fetch_id, 0, new Uint8Array(1000), at + elapsedS / 2);
  ex.cdnDone(fetches[0].fetch_id, 1000, elapsedS, at + elapsedS);
}

test("the exchange feeds each CDN fetch's excess over the mean rate into the view", () => {
  const ex = new SegmentExchange(exchangeConfig());
  ex.setTimeline([1, 2].map((n) => ({ segment: [0, n], start_s: 2 * n, duration_s: 2, known_since: 0, range_bytes: null })));
  assert.equal(ex.schedulerView(0, 0).cdn_tail_s, null); // only finished fetches count
  fetchOnce(ex, [0, 1], 0, 0.4); // the first fetch is the mean rate: no excess
  near(ex.schedulerView(0.5, 0).cdn_tail_s, 0);
  fetchOnce(ex, [0, 2], 1, 1.6); // four times slower
  const rate = ex.cdnRate.estimate;
  assert.ok(1000 / 1.6 < rate && rate < 1000 / 0.4);
  const expected = new FetchTimeEstimator();
  expected.addSample(0);
  expected.addSample(1.6 - 1000 / rate);
  near(ex.schedulerView(3, 0).cdn_tail_s, expected.tail);
  assert.ok(expected.tail > 0);
});

test("the urgent window grows by the tail beyond the margin only", () => {
  const view = (tail) => ({
    now: 100,
    self_id: "peer-ddddddddddddddd",
    playhead_s: 40,
    rate: 1,
    segments: [{ segment: [0, 10], start_s: 41.6, duration_s: 2, size_bytes: 100000, known_since: 90, partial_bytes: 0, avoid: new Set() }],
    have: new Set(),
    transfers: [],
    peers: [],
    cdn_throughput_bytes_per_s: 1e6,
    cdn_tail_s: tail,
    connecting_until: 200, // no neighbour yet: the election waits, so only urgency fetches
  });
  const reasons = (tail) => decide(view(tail), schedulerConfig(), () => 0.5).actions.map((a) => a.reason);
  // 1.6 s ahead; mean-rate window max(1.5, 0.1 + 0.1 + 1.0) = 1.5: not urgent yet
  assert.deepEqual(reasons(null), ["connecting"]);
  assert.deepEqual(reasons(0.9), ["connecting"]); // within the 1 s margin: covered
  assert.deepEqual(reasons(1.3), ["connecting"]); // 0.1 + 0.3 + 0.1 + 1.0 = 1.5
  // a 1.5 s tail: window 0.1 + 0.5 + 0.1 + 1.0 = 1.7 s
  assert.deepEqual(reasons(1.5), ["urgent"]);
});
