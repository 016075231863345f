// docs/vectors/signaling/overlay.json (the same file tests/core/test_overlay.py reads), and the
// tracker client's re-announce backoff while neighbour slots are free, on mocked timers.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Refill, Refusals, admitOffer, drainDue } from "../../web_demo/overlay.js";
import { TrackerClient } from "../../web_demo/tracker.js";
import { FakeSocket, fakeTracker } from "./fake_socket.mjs";

const VECTORS = JSON.parse(readFileSync(new URL("../../docs/vectors/signaling/overlay.json", import.meta.url), "utf8"));
const IH = "eee9c7aa1c39e94f9cd3";
const ME = "-PH0001-aaaaaaaaaaaa";

for (const c of VECTORS.admit) {
  test(`admitOffer: ${c.name}`, () => {
    const got = admitOffer(new Set(c.links), c.max_peers, c.from_peer, c.drop);
    assert.equal(got.accept, c.accept);
    assert.equal(got.drop, c.close);
    assert.deepEqual(admitOffer(c.links, c.max_peers, c.from_peer, c.drop), got); // arrays too
  });
}

for (const c of VECTORS.drain) {
  test(`drainDue: ${c.name}`, () => {
    assert.equal(drainDue(c.outbound, c.inbound, c.buffered_bytes, c.elapsed_s, c.max_s), c.close);
  });
}

test("drainDue: negative counts are refused", () => {
  for (const [o, i, b] of [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]) assert.throws(() => drainDue(o, i, b, 0, 5), /must be >= 0/);
});

for (const c of VECTORS.refill) {
  test(`Refill: ${c.name}`, () => {
    const refill = new Refill(VECTORS.refill_config);
    for (const step of c.steps) {
      if (step.reset_before) refill.reset();
      assert.equal(refill.afterAnnounce(step.links, c.max_peers), step.delay_s);
    }
  });
}

for (const c of VECTORS.refusals) {
  test(`Refusals: ${c.name}`, () => {
    const refusals = new Refusals(VECTORS.refusal_config);
    for (const step of c.steps) {
      if ("closed_banned" in step) assert.equal(refusals.closedBanned(step.closed_banned, step.at_s), step.until_s);
      for (const [peerId, blocked] of Object.entries(step.blocked ?? {})) {
        assert.equal(refusals.blocked(peerId, step.at_s), blocked, `${peerId} at ${step.at_s}`);
      }
    }
  });
}

test("Refusals: a bad config is refused, and the table is bounded", () => {
  assert.throws(() => new Refusals({ base_s: 0 }), /base_s/);
  assert.throws(() => new Refusals({ base_s: 60, max_s: 30 }), /base_s/);
  assert.throws(() => new Refusals({ max_peer_ids: 0 }), /max_peer_ids/);
  const refusals = new Refusals({ max_peer_ids: 16 });
  for (let i = 0; i < 1000; i++) refusals.closedBanned(`peer${i}`, i);
  assert.equal(refusals.size, 16);
  assert.equal(refusals.blocked("peer999", 999), true);
  assert.equal(refusals.blocked("peer0", 999), false);
});

test("Refill: a bad config is refused", () => {
  assert.throws(() => new Refill({ base_s: 0 }), /base_s/);
  assert.throws(() => new Refill({ base_s: 5, max_s: 1 }), /base_s/);
});

async function settle(t, ms) {
  // Let promise chains run, then move the mocked clock.
  for (let i = 0; i < 20; i++) await Promise.resolve();
  t.mock.timers.tick(ms);
  for (let i = 0; i < 20; i++) await Promise.resolve();
}

test("tracker: re-announces with fresh offers while slots are free, backing off, until full", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  let links = 0;
  let made = 0;
  const refill = new Refill(); // 2 s doubling to 30 s
  const client = fakeTracker(TrackerClient, {
    infoHash: IH,
    peerId: ME,
    config: { default_interval_s: 120 },
    makeOffers: async () => (links < 3 ? [[`o${++made}`, "sdp"]] : []),
    nextAnnounceS: () => refill.afterAnnounce(links, 3),
  });
  client.start();
  try {
    await settle(t, 0); // the socket opens, "started" goes out
    const ws = FakeSocket.last;
    const announces = () => ws.sent.filter((m) => m.action === "announce").length;
    assert.equal(announces(), 1);
    assert.equal(ws.sent[0].offers.length, 1);
    // No link forms: 2, then 4, then 8 s between announces, each with a fresh offer.
    for (const gapS of [2, 4, 8]) {
      await settle(t, gapS * 1000 - 1);
      const before = announces();
      await settle(t, 1);
      assert.equal(announces(), before + 1, `an announce ${gapS} s after the previous`);
    }
    assert.deepEqual(
      ws.sent.map((m) => m.offers[0].offer_id),
      ["o1", "o2", "o3", "o4"],
    );
    // A link forms: the backoff starts again at 2 s.
    links = 1;
    await settle(t, 16000);
    const afterProgress = announces();
    await settle(t, 2000);
    assert.equal(announces(), afterProgress + 1);
    // Full: no refill announce any more until the tracker's interval.
    links = 3;
    await settle(t, 4000); // the announce already due (4 s after the last) finds us full
    const full = announces();
    await settle(t, 60000);
    assert.equal(announces(), full);
    await settle(t, 60000);
    assert.equal(announces(), full + 1); // the 120 s interval
  } finally {
    client.stop();
  }
});

test("tracker: a relayed offer's drop reaches onOffer (20 characters, else absent)", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const seen = [];
  const client = fakeTracker(TrackerClient, {
    infoHash: IH,
    peerId: ME,
    onOffer: async (offer) => {
      seen.push(offer.drop ?? null);
      return null;
    },
  });
  client.start();
  try {
    await settle(t, 0);
    const ws = FakeSocket.last;
    const offer = { action: "announce", info_hash: IH, peer_id: "-PH0001-bbbbbbbbbbbb", offer_id: "x", offer: { type: "offer", sdp: "s" } };
    ws.receive({ ...offer, drop: "-PH0001-cccccccccccc" });
    ws.receive({ ...offer, drop: "short" });
    ws.receive(offer);
    await settle(t, 0);
    assert.deepEqual(seen, ["-PH0001-cccccccccccc", null, null]);
  } finally {
    client.stop();
  }
});

test("tracker: the reply's unused_offers reach onUnusedOffers (strings only, at most 5)", async (t) => {
  t.mock.timers.enable({ apis: ["setTimeout"] });
  const unused = [];
  const client = fakeTracker(TrackerClient, {
    infoHash: IH,
    peerId: ME,
    onUnusedOffers: (ids) => unused.push(ids),
  });
  client.start();
  try {
    await settle(t, 0);
    const ws = FakeSocket.last;
    const reply = { action: "announce", info_hash: IH, interval: 120, complete: 0, incomplete: 1 };
    ws.receive(reply);
    ws.receive({ ...reply, unused_offers: ["a", 7, "b", "c", "d", "e", "f"] });
    assert.deepEqual(unused, [["a", "b", "c", "d"]]);
    assert.equal(client.swarmSize, 1);
  } finally {
    client.stop();
  }
});
