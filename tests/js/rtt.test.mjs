// Round trips to peers: the estimator, and the exchange measuring REQUEST -> RESPONSE for the
// scheduler's view (docs/scheduling.md, "rtt(peer)"), as tests/core/test_rtt.py.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SegmentExchange, exchangeConfig } from "../../web_demo/segment_exchange.js";
import { RttEstimator } from "../../web_demo/store.js";

test("round trip estimator: the smallest of the last samples (as the Python RttEstimator)", () => {
  const rtt = new RttEstimator(3);
  assert.equal(rtt.rtt, null);
  for (const s of [0.5, 0.2, 0.9]) rtt.addSample(s);
  assert.equal(rtt.rtt, 0.2);
  rtt.addSample(-1);
  rtt.addSample(0.4);
  rtt.addSample(0.6);
  assert.equal(rtt.rtt, 0.4);
  assert.throws(() => new RttEstimator(0));
});

test("the exchange measures REQUEST -> RESPONSE per peer for the scheduler's view", () => {
  const ex = new SegmentExchange(exchangeConfig());
  ex.setTimeline([{ segment: [0, 1], start_s: 2, duration_s: 2, known_since: 0, range_bytes: null }]);
  const hello = { type: "HelloReceived", peer_id: new Uint8Array(0), flags: 0, leech_only: false, have: [{ rendition: 0, sequence: 1 }], fetching: [] };
  ex.onPeerEvent("L1", "alice", hello, 0);
  ex.apply([{ action: "fetch_peer", segment: [0, 1], peer_id: "alice", offset: 0, reason: "have" }], 1.0);
  ex.requestSent("L1", [0, 1], 7);
  assert.equal(ex.schedulerView(1.0, 0).peers[0].rtt_s, null);
  ex.onPeerEvent("L1", "alice", { type: "ResponseStarted", request_id: 7, segment: { rendition: 0, sequence: 1 }, total_bytes: 1000, offset: 0 }, 1.25);
  assert.ok(Math.abs(ex.schedulerView(1.3, 0).peers[0].rtt_s - 0.25) < 1e-9);
  ex.onPeerEvent("L1", "alice", { type: "SessionClosed", code: 0, reason: "bye", by_remote: true }, 2.0);
  assert.equal(ex.peerRtts.has("alice"), false);
});
