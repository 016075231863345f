// The exchange's per-segment records stay bounded over a long live session (docs/exchange.md
// §3 "Bounds"), as tests/core/test_exchange_bounds.py: a scripted hour of a sliding live window.
import assert from "node:assert/strict";
import { test } from "node:test";

import { SegmentExchange, exchangeConfig } from "../../web_demo/segment_exchange.js";

const SEG_S = 2.0;
const WINDOW = 12;
const wseg = ([rendition, sequence]) => ({ rendition, sequence });
const window = (last) => {
  const out = [];
  for (let i = Math.max(0, last - WINDOW + 1); i <= last; i++) {
    out.push({ segment: [0, i], start_s: i * SEG_S, duration_s: SEG_S, known_since: i * SEG_S, range_bytes: null });
  }
  return out;
};
const drain = (ex) => {
  const out = [];
  for (let a = ex.nextAction(); a !== null; a = ex.nextAction()) out.push(a);
  return out;
};
const hello = (have) => ({ type: "HelloReceived", peer_id: new Uint8Array(0), flags: 0, leech_only: false, have: have.map(wseg), fetching: [] });

function fetchAndVerify(ex, segment, now) {
  ex.apply([{ action: "fetch_cdn", segment, offset: 0, reason: "urgent", peer_id: null }], now);
  const fetch = drain(ex).find((a) => a.action === "fetch_cdn");
  const data = new Uint8Array(1000).fill(segment[1] % 251);
  ex.cdnData(fetch.fetch_id, 0, data, now);
  ex.cdnDone(fetch.fetch_id, data.length, 0.1, now);
  assert.ok(drain(ex).some((a) => a.action === "verify"));
  ex.verdict(segment, "ok", now);
}

test("an hour of live keeps the store and every per-segment record to the window and margin", () => {
  const ex = new SegmentExchange(exchangeConfig({ retain_behind_s: 30 }));
  ex.onPeerEvent("L1", "alice", hello([]), 0);
  const bound = WINDOW + 30 / SEG_S + 2;
  let lost = 0;
  for (let last = 0; last < 1800; last++) {
    const now = last * SEG_S;
    ex.setTimeline(window(last));
    ex.onPeerEvent("L1", "alice", { type: "PeerHave", segments: [wseg([0, last]), wseg([1, last])] }, now);
    ex.onPeerEvent("L1", "alice", { type: "PeerFetching", entries: [{ segment: wseg([1, last + 1]), expected_bytes: 900 }] }, now);
    fetchAndVerify(ex, [0, last], now);
    ex.forgetBefore(Math.max(0, now - 3 * SEG_S), now);
    for (const a of drain(ex)) if (a.action === "announce_lost") lost += a.segments.length;
    assert.ok(ex.store.size <= bound, `store ${ex.store.size}`);
    assert.ok(ex.sizes.size <= 2 * bound, `sizes ${ex.sizes.size}`);
    assert.ok(ex.verified.size <= bound);
    const nb = ex.neighbours.get("alice");
    assert.ok(nb.have.size <= 2 * bound && nb.fetching.size <= 2);
  }
  assert.equal(ex.verifiedCount, 1800);
  assert.equal(lost, 1800 - ex.store.size);
  assert.equal(ex.verifiedForgotten, 1800 - ex.verified.size);
});

test("a pinned segment stays until its upload ends", () => {
  // a slow upload cap keeps the upload (and the store's pin) open
  const ex = new SegmentExchange(exchangeConfig({ retain_behind_s: 0, upload_cap_bytes_per_s: 100, upload_burst_bytes: 100 }));
  ex.setTimeline(window(3));
  ex.onPeerEvent("L1", "bob", hello([]), 0);
  fetchAndVerify(ex, [0, 0], 0);
  drain(ex);
  ex.onPeerEvent("L1", "bob", { type: "SegmentRequested", request_id: 1, segment: wseg([0, 0]), offset: 0 }, 0.1);
  assert.ok(ex.store.isPinned("0/0"));
  ex.forgetBefore(100, 1);
  assert.ok(ex.store.has("0/0"));
  assert.ok(!drain(ex).some((a) => a.action === "announce_lost"));
  ex.onPeerEvent("L1", "bob", { type: "RequestCancelled", request_id: 1 }, 0.2);
  ex.forgetBefore(100, 1);
  assert.ok(!ex.store.has("0/0"));
  assert.deepEqual(
    drain(ex).filter((a) => a.action === "announce_lost").map((a) => a.segments),
    [[[0, 0]]],
  );
});

test("the size estimate of a view walks the size table once, not once per unknown segment", () => {
  const ex = new SegmentExchange(exchangeConfig());
  ex.setTimeline(window(40));
  for (let i = 0; i < 30; i++) ex.sizes.set(`0/${i}`, 1000 + i);
  let walks = 0;
  const values = ex.sizes.values.bind(ex.sizes);
  ex.sizes.values = () => {
    walks += 1;
    return values();
  };
  const view = ex.schedulerView(0, 0);
  const unknown = view.segments.filter((s) => !ex.sizes.has(`${s.segment[0]}/${s.segment[1]}`));
  assert.equal(unknown.length, 11);
  // the mean of the newest 20 (1010..1029)
  for (const s of unknown) assert.equal(s.size_bytes, Math.trunc((1010 + 1029) / 2));
  assert.equal(walks, 1);
});
