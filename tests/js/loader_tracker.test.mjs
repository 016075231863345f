// The hls.js fragment loader against a fake engine and a fake default loader, and the tracker
// client against a fake WebSocket (the browser tests run both for real).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { makeFragmentLoader } from "../../web_demo/loader.js";
import { TrackerClient, parseIceReply, tokenExpiryUnixS } from "../../web_demo/tracker.js";
import { FakeSocket } from "./fake_socket.mjs";

const frag = { sn: 7, baseurl: "http://o/hls/s/lo/index.m3u8", relurl: "seg-7.ts", url: "http://o/hls/s/lo/seg-7.ts" };
const context = () => ({ url: frag.url, frag, responseType: "arraybuffer" });
const loaderConfig = { loadPolicy: { maxLoadTimeMs: 60_000 } };

class FakeDefaultLoader {
  static instances = [];
  constructor(config) {
    this.config = config;
    this.stats = { loaded: 0, total: 0, chunkCount: 0, retry: 0, aborted: false, loading: { start: 0, first: 0, end: 0 } };
    FakeDefaultLoader.instances.push(this);
  }
  load(ctx, cfg, callbacks) {
    this.stats.loading = { start: 1, first: 2, end: 3 };
    this.stats.loaded = this.stats.total = 4;
    callbacks.onSuccess({ url: ctx.url, data: Uint8Array.of(9, 8, 7, 6).buffer }, this.stats, ctx, null);
  }
  abort() {}
  destroy() {}
}

function fakeEngine(result, { playerFallbackS = 8 } = {}) {
  return {
    options: { playerFallbackS },
    released: 0,
    ingested: [],
    audited: [],
    requestFragment() {
      if (result === null) return null;
      return { promise: result, release: () => this.released++ };
    },
    ingestFromCdn(f, data) {
      this.ingested.push([f, data]);
    },
    auditDelivery(f, data, source) {
      this.audited.push(source);
    },
  };
}

function callbacks() {
  const calls = [];
  let done;
  const finished = new Promise((resolve) => (done = resolve));
  const cb = {
    onSuccess: (response, stats, ctx) => (calls.push(["success", response, { ...stats, loading: { ...stats.loading } }, ctx]), done()),
    onError: (e) => (calls.push(["error", e]), done()),
    onTimeout: () => (calls.push(["timeout"]), done()),
    onAbort: (stats) => (calls.push(["abort", stats]), done()),
  };
  return { cb, calls, finished };
}

test("a peer-delivered fragment: a fresh buffer and the transfer's real timing", async () => {
  const owned = Uint8Array.of(1, 2, 3, 4, 5);
  const now = performance.now() / 1000;
  const timing = { startedAt: now - 0.5, firstAt: now - 0.45, doneAt: now - 0.05 };
  const engine = fakeEngine(Promise.resolve({ data: owned, timing, source: "peer" }));
  const Loader = makeFragmentLoader(engine, FakeDefaultLoader);
  const loader = new Loader({});
  const { cb, calls, finished } = callbacks();
  loader.load(context(), loaderConfig, cb);
  await finished;
  const [kind, response, stats] = calls[0];
  assert.equal(kind, "success");
  assert.equal(response.data, owned.buffer);
  assert.equal(response.data.byteLength, 5);
  assert.equal(stats.loaded, 5);
  const { start, first, end } = stats.loading;
  assert.ok(start <= first && first <= end, JSON.stringify(stats.loading));
  assert.ok(Math.abs(end - start - 450) < 50, `${end - start} ms, the transfer took 450 ms`);
  assert.ok(Math.abs(first - start - 50) < 5);
  assert.deepEqual(engine.audited, ["peer"]);
  assert.equal(loader.stats.loaded, 5); // hls.js reads frag.stats = loader.stats
});

test("a fragment the engine cannot serve goes to hls.js's own loader, and is shared", async () => {
  const engine = fakeEngine(null);
  const Loader = makeFragmentLoader(engine, FakeDefaultLoader);
  const loader = new Loader({});
  const { cb, calls, finished } = callbacks();
  loader.load(context(), loaderConfig, cb);
  await finished;
  assert.equal(calls[0][0], "success");
  assert.deepEqual([...new Uint8Array(calls[0][1].data)], [9, 8, 7, 6]);
  assert.equal(engine.ingested.length, 1);
  assert.notEqual(engine.ingested[0][1].buffer, calls[0][1].data); // the engine keeps a copy
  assert.deepEqual(calls[0][2].loading, { start: 1, first: 2, end: 3 });
  assert.deepEqual(engine.audited, ["fallback"]);
});

test("an engine that fails or is too slow falls back; abort releases the wait", async () => {
  const failing = fakeEngine(Promise.reject(new Error("given up")));
  const Loader = makeFragmentLoader(failing, FakeDefaultLoader);
  let run = callbacks();
  new Loader({}).load(context(), loaderConfig, run.cb);
  await run.finished;
  assert.equal(run.calls[0][0], "success");
  assert.equal(failing.ingested.length, 1);

  const slow = fakeEngine(new Promise(() => {}), { playerFallbackS: 0.05 });
  run = callbacks();
  new (makeFragmentLoader(slow, FakeDefaultLoader))({}).load(context(), loaderConfig, run.cb);
  await run.finished;
  assert.equal(run.calls[0][0], "success");
  assert.equal(slow.released, 1);

  const waiting = fakeEngine(new Promise(() => {}));
  run = callbacks();
  const loader = new (makeFragmentLoader(waiting, FakeDefaultLoader))({});
  loader.load(context(), loaderConfig, run.cb);
  loader.abort();
  await run.finished;
  assert.equal(run.calls[0][0], "abort");
  assert.equal(run.calls[0][1].aborted, true);
  assert.equal(waiting.released, 1);
});

// --- tracker ---------------------------------------------------------------------------------

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

/** Wait (up to 5 s) until `cond()` holds: the client's timers run on the real clock. */
async function until(cond) {
  for (let waited = 0; !cond(); waited += 5) {
    if (waited > 5000) throw new Error(`condition never held: ${cond}`);
    await tick();
  }
}
const IH = "eee9c7aa1c39e94f9cd3";
const ME = "-PH0001-aaaaaaaaaaaa";
const THEM = "-PH0001-bbbbbbbbbbbb";

test("tracker: token in the URL, started announce with offers and hints, answers, stats, stopped", async () => {
  const answers = [];
  const client = new TrackerClient({
    url: "ws://t/announce",
    infoHash: IH,
    peerId: ME,
    token: "v1.a+b.c",
    WebSocket: FakeSocket,
    random: () => 0.5,
    makeOffers: async () => [["o1", "sdp-offer"]],
    onOffer: async (offer) => `answer-to-${offer.sdp}`,
    onAnswer: (a) => answers.push(a),
  });
  client.hints.position_s = 12.5;
  client.hints.connected = [THEM];
  FakeSocket.last = null;
  client.start();
  try {
    await trackerConversation(client, answers);
  } finally {
    client.stop();
  }
});

async function trackerConversation(client, answers) {
  await until(() => FakeSocket.last?.sent.length > 0);
  const ws = FakeSocket.last;
  assert.equal(ws.url, "ws://t/announce?token=v1.a%2Bb.c");
  const first = ws.sent[0];
  assert.equal(first.event, "started");
  assert.equal(first.numwant, 1);
  assert.deepEqual(first.offers, [{ offer_id: "o1", offer: { type: "offer", sdp: "sdp-offer" } }]);
  assert.equal(first.position_s, 12.5);
  assert.deepEqual(first.connected, [THEM]);

  client.sendStats(10, 20, 30); // not announced yet: held back
  assert.equal(ws.sent.length, 1);
  ws.receive({ action: "announce", info_hash: IH, interval: 60, complete: 1, incomplete: 2 });
  assert.equal(client.intervalS, 60);
  assert.equal(client.swarmSize, 3);
  assert.deepEqual(ws.sent[1], { action: "stats", info_hash: IH, peer_id: ME, bytes_p2p_down: 10, bytes_p2p_up: 20, bytes_cdn: 30 });

  ws.receive({ action: "announce", info_hash: IH, peer_id: THEM, offer_id: "x", offer: { type: "offer", sdp: "S" } });
  await until(() => ws.sent.length >= 3);
  assert.deepEqual(ws.sent[2], {
    action: "announce",
    info_hash: IH,
    peer_id: ME,
    to_peer_id: THEM,
    offer_id: "x",
    answer: { type: "answer", sdp: "answer-to-S" },
  });
  ws.receive({ action: "announce", info_hash: IH, peer_id: THEM, offer_id: "o1", answer: { type: "answer", sdp: "A" } });
  await until(() => answers.length > 0);
  assert.deepEqual(answers, [{ peer_id: THEM, offer_id: "o1", sdp: "A" }]);

  // A report of a peer we banned (docs/signaling.md "Reports"); an unknown reason throws.
  assert.equal(client.report(THEM, "hash_failure"), true);
  assert.deepEqual(ws.sent.at(-1), { action: "report", info_hash: IH, peer_id: ME, reported_peer_id: THEM, reason: "hash_failure" });
  assert.throws(() => client.report(THEM, "dislike"), /reason must be one of/);
  assert.equal(client.report(ME, "lies"), false); // never ourselves

  // CDN fetches by phase ride along when given (docs/signaling.md "stats"); unchanged: not resent.
  client.sendStats(10, 20, 30, [4, 2]);
  assert.deepEqual(ws.sent.at(-1), {
    action: "stats", info_hash: IH, peer_id: ME, bytes_p2p_down: 10, bytes_p2p_up: 20, bytes_cdn: 30,
    cdn_fetches_join_ramp: 4, cdn_fetches_steady: 2,
  });
  const sentBefore = ws.sent.length;
  client.sendStats(10, 20, 30, [4, 2]);
  assert.equal(ws.sent.length, sentBefore);

  ws.receive({ "failure reason": "nope", reason: "bad_offer_id", action: "announce", info_hash: IH });
  ws.receive({ action: "announce", info_hash: "another-swarm-00000", interval: 5 });
  ws.onmessage({ data: "not json" });
  assert.equal(client.stats.failures, 1);
  assert.equal(client.stats.failure_reasons.bad_offer_id, 1);
  assert.equal(client.stats.ignored_messages, 2);

  client.stop();
  assert.deepEqual(ws.sent.at(-1), { action: "announce", info_hash: IH, peer_id: ME, numwant: 0, event: "stopped" });
}

test("tracker: reconnects with backoff after the socket drops, announcing started again", async () => {
  const client = new TrackerClient({
    url: "ws://t/announce",
    infoHash: IH,
    peerId: ME,
    WebSocket: FakeSocket,
    random: () => 0.5,
    config: { reconnect_initial_s: 0.01, reconnect_max_s: 0.02 },
  });
  FakeSocket.last = null;
  client.start();
  try {
    await until(() => FakeSocket.last?.sent.length > 0);
    const first = FakeSocket.last;
    first.receive({ action: "announce", info_hash: IH, interval: 60, complete: 0, incomplete: 1 });
    first.close(1001);
    await until(() => FakeSocket.last !== first && FakeSocket.last.sent.length > 0);
    const second = FakeSocket.last;
    assert.equal(second.sent[0].event, "started");
    assert.equal(client.stats.connects, 2);
    assert.equal(client.stats.disconnects, 1);
    client.stop();
    await tick(50);
    assert.equal(FakeSocket.last, second); // no reconnect after stop
  } finally {
    client.stop();
  }
});

// --- ICE servers from the tracker (docs/signaling.md, docs/vectors/signaling/ice_servers.json) ---

const ICE_VECTORS = JSON.parse(
  readFileSync(new URL("../../docs/vectors/signaling/ice_servers.json", import.meta.url), "utf8"),
);

test("tracker: parseIceReply accepts every ice_servers vector reply", () => {
  for (const c of ICE_VECTORS.cases) {
    const grant = parseIceReply(c.reply, c.wall_s);
    assert.equal(grant.expires_unix_s, c.reply.expires, c.name);
    assert.deepEqual(grant.servers, c.reply.ice_servers, c.name);
  }
});

test("tracker: parseIceReply rejects malformed or expired replies", () => {
  const good = ICE_VECTORS.cases[0];
  const bad = [
    { ...good.reply, expires: good.wall_s - 1 },
    { ...good.reply, expires: "soon" },
    { ...good.reply, ice_servers: "stun:x" },
    { ...good.reply, ice_servers: [{ urls: ["http://x"] }] },
    { ...good.reply, ice_servers: [{ urls: ["turn:u:p@x:3478"] }] },
    { ...good.reply, ice_servers: [{ urls: ["turn:x:3478"], credential: 5 }] },
    { ...good.reply, ice_servers: new Array(9).fill({ urls: "stun:x:1" }) },
  ];
  for (const reply of bad) assert.throws(() => parseIceReply(reply, good.wall_s), Error, JSON.stringify(reply));
});

test("tracker: asks for ICE servers before its first offers; a refusal is counted, then offers go out", async () => {
  const reply = { ...ICE_VECTORS.cases[0].reply, expires: Math.floor(Date.now() / 1000) + 600 };
  const client = new TrackerClient({
    url: "ws://t/announce",
    infoHash: IH,
    peerId: ME,
    WebSocket: FakeSocket,
    random: () => 0.5,
    config: { request_ice_servers: true },
    makeOffers: async () => [["o1", "sdp-offer"]],
  });
  FakeSocket.last = null;
  client.start();
  try {
    await until(() => FakeSocket.last?.sent.length > 0);
    const ws = FakeSocket.last;
    assert.deepEqual(ws.sent, [{ action: "ice_servers" }]); // no offers before the reply
    ws.receive(reply);
    await until(() => ws.sent.length >= 2);
    assert.equal(ws.sent[1].action, "announce");
    assert.deepEqual(client.ice.servers, reply.ice_servers);
    assert.equal(client.stats.ice_replies, 1);
  } finally {
    client.stop();
  }
  const refused = new TrackerClient({
    url: "ws://t/announce",
    infoHash: IH,
    peerId: ME,
    WebSocket: FakeSocket,
    random: () => 0.5,
    config: { request_ice_servers: true },
  });
  FakeSocket.last = null;
  refused.start();
  try {
    await until(() => FakeSocket.last?.sent.length > 0);
    const ws = FakeSocket.last;
    ws.receive({ "failure reason": "no ICE servers here", reason: "ice_unavailable", action: "ice_servers" });
    await until(() => ws.sent.length >= 2);
    assert.equal(ws.sent[1].action, "announce");
    assert.equal(refused.ice, null);
    assert.equal(refused.stats.ice_failures, 1);
  } finally {
    refused.stop();
  }
});

// --- join-token refresh (docs/signaling.md "Join tokens", docs/vectors/signaling/token_refresh.json) ---
const TOKEN_VECTORS = JSON.parse(
  readFileSync(new URL("../../docs/vectors/signaling/token_refresh.json", import.meta.url), "utf8"),
);

test("tracker: tokenExpiryUnixS reads every token_refresh vector", () => {
  for (const c of TOKEN_VECTORS.expiry_cases) assert.equal(tokenExpiryUnixS(c.token), c.exp, c.name);
});

function tokenWithExp(expUnixS) {
  const body = Buffer.from(JSON.stringify({ swarms: ["61".repeat(20)], exp: expUnixS })).toString("base64url");
  return `v1.${body}.sig`;
}

test("tracker: refreshes its token on the open socket; a refusal is retried; 4002 reconnects with a new one", async () => {
  const nowS = () => Math.floor(Date.now() / 1000);
  const first = tokenWithExp(nowS() + 2);
  const fresh = [];
  const client = new TrackerClient({
    url: "ws://t/announce",
    infoHash: IH,
    peerId: ME,
    token: first,
    WebSocket: FakeSocket,
    random: () => 0.5,
    config: { token_refresh_fraction: 0.9, token_retry_s: 0.05 },
    tokenProvider: async () => {
      fresh.push(tokenWithExp(nowS() + 3600));
      return fresh.at(-1);
    },
  });
  FakeSocket.last = null;
  client.start();
  try {
    await until(() => FakeSocket.last?.sent.some((m) => m.action === "token"));
    const ws = FakeSocket.last;
    const req = ws.sent.find((m) => m.action === "token");
    assert.equal(req.token, fresh[0]);
    ws.receive({ "failure reason": "bad token signature", reason: "token_invalid", action: "token" });
    assert.equal(client.stats.token_refresh_failures, 1);
    await until(() => ws.sent.filter((m) => m.action === "token").length >= 2); // retried
    ws.receive({ action: "token", expires_at: nowS() + 3600 });
    assert.equal(client.stats.token_refreshes, 1);
    assert.equal(client._token, fresh[1]); // what a reconnect would use
    ws.close(4002); // expired anyway: a new token from the provider, and a reconnect
    await until(() => FakeSocket.last !== ws);
    assert.equal(client.refused, null);
    assert.ok(FakeSocket.last.url.includes(encodeURIComponent(fresh.at(-1))));
  } finally {
    client.stop();
  }
});
