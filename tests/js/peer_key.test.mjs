// Keyed peer_ids in the browser (web_demo/ids.js, web_demo/tracker.js) against the shared vectors
// docs/vectors/signaling/peer_key.json (the server and the agent read the same file).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { isKeyedPeerId, keyedPeerId, makeKeyedIdentity, validPeerKey } from "../../web_demo/ids.js";
import { TrackerClient } from "../../web_demo/tracker.js";
import { FakeSocket } from "./fake_socket.mjs";

const VECTORS = JSON.parse(readFileSync(new URL("../../docs/vectors/signaling/peer_key.json", import.meta.url), "utf8"));

test("keyed peer_id derivation matches the vectors", async () => {
  for (const { peer_key, peer_id } of VECTORS.derive) {
    assert.equal(await keyedPeerId(peer_key), peer_id);
    assert.ok(isKeyedPeerId(peer_id) && peer_id.startsWith(VECTORS.prefix));
  }
  for (const bad of VECTORS.invalid_keys) {
    assert.equal(validPeerKey(bad), false, bad);
    await assert.rejects(keyedPeerId(bad), /peer_key is 16\.\.64/);
  }
});

test("a fresh identity: a 32-character key from the CSPRNG and its peer_id", async () => {
  const a = await makeKeyedIdentity();
  const b = await makeKeyedIdentity();
  assert.match(a.peerKey, /^[0-9A-Za-z]{32}$/);
  assert.equal(a.peerId.length, 20);
  assert.equal(await keyedPeerId(a.peerKey), a.peerId);
  assert.notEqual(a.peerKey, b.peerKey);
});

async function until(cond) {
  for (let waited = 0; !cond(); waited += 5) {
    if (waited > 5000) throw new Error(`condition never held: ${cond}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

test("tracker: every announce of a keyed peer_id carries its peer_key, also after a reconnect", async () => {
  const { peerId, peerKey } = await makeKeyedIdentity();
  assert.throws(() => new TrackerClient({ url: "ws://t/announce", infoHash: "i".repeat(20), peerId }), /needs its peerKey/);
  const client = new TrackerClient({
    url: "ws://t/announce",
    infoHash: "i".repeat(20),
    peerId,
    peerKey,
    WebSocket: FakeSocket,
    random: () => 0.5,
    config: { reconnect_initial_s: 0.01, reconnect_max_s: 0.02 },
    makeOffers: async () => [],
  });
  FakeSocket.last = null;
  client.start();
  try {
    await until(() => FakeSocket.last?.sent.length > 0);
    const first = FakeSocket.last;
    assert.equal(first.sent[0].peer_id, peerId);
    assert.equal(first.sent[0].peer_key, peerKey);
    first.close(1006); // the connection drops (or the tracker restarts)
    await until(() => FakeSocket.last !== first && FakeSocket.last.sent.length > 0);
    assert.equal(FakeSocket.last.sent[0].event, "started");
    assert.equal(FakeSocket.last.sent[0].peer_key, peerKey);
  } finally {
    client.stop();
  }
});
