// The page-facing surface of the engine: the event emitter, how tracker closes and failure
// replies become `warning` / `error` events with the server's reason (and which stop the client),
// the swarm's peer and byte events, runtime upload switch, the loader's segment events, and the
// engine's controls (option checks, swarm key, manifest URL, isSupported, P2P on/off).
import assert from "node:assert/strict";
import { test } from "node:test";

import { checkEngineOptions, hashServiceManifestUrl, isSupported, manifestUrlFor, stripQuery, supportReport, swarmKeyFor } from "../../web_demo/controls.js";
import { DEFAULT_ENGINE_OPTIONS, P2PEngine } from "../../web_demo/engine.js";
import { ENGINE_EVENTS, Emitter } from "../../web_demo/events.js";
import { makeFragmentLoader } from "../../web_demo/loader.js";
import { Swarm } from "../../web_demo/swarm.js";
import { TrackerClient, classifyClose } from "../../web_demo/tracker.js";
import { CloseCode } from "../../web_demo/wire.js";

const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));
async function until(cond) {
  for (let waited = 0; !cond(); waited += 5) {
    if (waited > 5000) throw new Error(`condition never held: ${cond}`);
    await tick();
  }
}

function recorder(emitter = new Emitter()) {
  const seen = [];
  for (const name of ENGINE_EVENTS) emitter.on(name, (e) => seen.push(e));
  return { emitter, seen, of: (type) => seen.filter((e) => e.type === type) };
}

// --- emitter ---------------------------------------------------------------------------------

test("emitter: on/off/once, frozen details, unknown names refused, a throwing listener is contained", () => {
  const em = new Emitter();
  const got = [];
  const off = em.on("peer-banned", (e) => got.push(["on", e.peerId]));
  em.once("peer-banned", (e) => got.push(["once", e.peerId]));
  em.on("peer-banned", () => {
    throw new Error("listener bug");
  });
  const errors = [];
  const original = console.error;
  console.error = (...args) => errors.push(args.join(" "));
  try {
    em.emit("peer-banned", { peerId: "a", reason: "r" });
    off();
    em.emit("peer-banned", { peerId: "b", reason: "r" });
  } finally {
    console.error = original;
  }
  assert.deepEqual(got, [["on", "a"], ["once", "a"]]);
  assert.equal(errors.length, 2);
  assert.match(errors[0], /listener of "peer-banned" threw/);
  assert.throws(() => em.on("segment-lodaed", () => {}), /unknown event "segment-lodaed"/);
  assert.throws(() => em.emit("nope"), /unknown event/);
  assert.throws(() => em.on("error", "not a function"), TypeError);
  let detail = null;
  em.on("warning", (e) => (detail = e));
  em.emit("warning", { reason: "x" });
  assert.equal(detail.type, "warning");
  assert.ok(Object.isFrozen(detail));
});

// --- tracker: close codes and failure replies ---------------------------------------------------

test("classifyClose: every refusal of docs/signaling.md has a reason the page can act on", () => {
  const c = (code, opts) => classifyClose(code, "", opts);
  assert.deepEqual(
    [c(4003).reason, c(4003).level, c(4003).fatal],
    ["origin_forbidden", "error", true],
  );
  assert.equal(c(4001, { hadToken: false }).reason, "token_missing");
  assert.equal(c(4001, { hadToken: true }).reason, "token_invalid");
  assert.equal(c(4002, { hadToken: true }).reason, "token_expired");
  for (const [code, reason] of [[4029, "rate_limited"], [1013, "too_many_connections"], [4000, "idle_timeout"], [4008, "send_queue_full"], [4009, "write_timeout"], [1001, "server_going_away"]]) {
    assert.deepEqual([c(code).reason, c(code).level, c(code).fatal], [reason, "warning", false]);
  }
  assert.equal(c(1006, { opened: false }).reason, "tracker_unreachable");
  assert.match(classifyClose(4029, "too many messages").message, /too many messages$/);
});

class ClosingSocket {
  // Accepts, then (like the signaling server refusing after accept) closes with `code`.
  static plan = [];
  static all = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    ClosingSocket.all.push(this);
    const step = ClosingSocket.plan.shift() || { code: null };
    setTimeout(() => {
      this.readyState = 1;
      this.onopen?.();
      if (step.code !== null) {
        this.readyState = 3;
        this.onclose?.({ code: step.code, reason: step.reason || "" });
      }
    }, 0);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close(code = 1000) {
    if (this.readyState === 3) return;
    this.readyState = 3;
    setTimeout(() => this.onclose?.({ code }), 0);
  }
  receive(msg) {
    this.onmessage?.({ data: JSON.stringify(msg) });
  }
}

const IH = "eee9c7aa1c39e94f9cd3";
const ME = "-PH0001-aaaaaaaaaaaa";

function quietly(fn) {
  const saved = [console.warn, console.error];
  console.warn = console.error = () => {};
  return Promise.resolve(fn()).finally(() => ([console.warn, console.error] = saved));
}

test("tracker: origin_forbidden is an error event once, and the client stops reconnecting", () =>
  quietly(async () => {
    const { emitter, of } = recorder();
    ClosingSocket.plan = [{ code: 4003, reason: "origin not allowed" }];
    ClosingSocket.all = [];
    const client = new TrackerClient({
      url: "ws://t/announce",
      infoHash: IH,
      peerId: ME,
      WebSocket: ClosingSocket,
      emit: (t, d) => emitter.emit(t, d),
      config: { reconnect_initial_s: 0.005, reconnect_max_s: 0.01 },
    });
    client.start();
    await until(() => of("error").length > 0);
    await tick(60);
    const [err] = of("error");
    assert.deepEqual([err.source, err.reason, err.code, err.fatal], ["tracker", "origin_forbidden", 4003, true]);
    assert.match(err.message, /Origin is not allowed.*origin not allowed/);
    assert.equal(of("error").length, 1);
    assert.equal(ClosingSocket.all.length, 1, "no reconnect after a fatal refusal");
    assert.equal(client.refused, "origin_forbidden");
    client.stop();
  }));

test("tracker: token refusals name missing/invalid/expired; setToken reconnects; transient closes are warnings and retried", () =>
  quietly(async () => {
    const { emitter, of } = recorder();
    ClosingSocket.all = [];
    ClosingSocket.plan = [{ code: 4001, reason: "a join token is required" }];
    const make = (token) =>
      new TrackerClient({
        url: "ws://t/announce",
        infoHash: IH,
        peerId: ME,
        token,
        WebSocket: ClosingSocket,
        emit: (t, d) => emitter.emit(t, d),
        config: { reconnect_initial_s: 0.005, reconnect_max_s: 0.01 },
      });
    const client = make(null);
    client.start();
    await until(() => of("error").length === 1);
    assert.equal(of("error")[0].reason, "token_missing");
    ClosingSocket.plan = [{ code: 4002, reason: "token expired" }];
    client.setToken("v1.old.token");
    await until(() => of("error").length === 2);
    assert.equal(of("error")[1].reason, "token_expired");
    assert.match(ClosingSocket.all.at(-1).url, /token=v1\.old\.token$/);
    // A good token: accepted; rate limited once (warning, retried), then connected again.
    ClosingSocket.plan = [{ code: null }];
    client.setToken("v1.new.token");
    await until(() => ClosingSocket.all.at(-1).sent.length > 0);
    let ws = ClosingSocket.all.at(-1);
    ws.receive({ action: "announce", info_hash: IH, interval: 60, complete: 1, incomplete: 1 });
    assert.deepEqual(of("tracker-connected").map((e) => e.swarmSize), [2]);
    ws.receive({ "failure reason": "swarm full", reason: "swarm_full", action: "announce", info_hash: IH });
    assert.equal(of("warning").at(-1).reason, "swarm_full");
    ClosingSocket.plan = [{ code: null }];
    ws.readyState = 3;
    ws.onclose({ code: 4029, reason: "too many messages" });
    assert.equal(of("tracker-disconnected").at(-1).reason, "rate_limited");
    assert.equal(of("warning").at(-1).reason, "rate_limited");
    await until(() => ClosingSocket.all.at(-1) !== ws && ClosingSocket.all.at(-1).sent.length > 0);
    ws = ClosingSocket.all.at(-1);
    ws.receive({ action: "announce", info_hash: IH, interval: 60, complete: 0, incomplete: 1 });
    assert.equal(of("tracker-connected").length, 2);
    // A token that does not cover the swarm: an error, and the client stops.
    ws.receive({ "failure reason": "not covered", reason: "token_swarm_mismatch", action: "announce", info_hash: IH });
    assert.deepEqual([of("error").at(-1).reason, of("error").at(-1).fatal], ["token_swarm_mismatch", true]);
    await tick(40);
    assert.equal(ClosingSocket.all.at(-1), ws);
    assert.equal(client.refused, "token_swarm_mismatch");
    client.stop();
  }));

test("tracker: an unreachable server is one warning per streak, not one per retry", () =>
  quietly(async () => {
    const { emitter, of } = recorder();
    class Unreachable {
      static count = 0;
      constructor() {
        Unreachable.count++;
        setTimeout(() => this.onclose?.({ code: 1006 }), 0);
      }
      close() {}
    }
    const client = new TrackerClient({
      url: "ws://t/announce",
      infoHash: IH,
      peerId: ME,
      WebSocket: Unreachable,
      emit: (t, d) => emitter.emit(t, d),
      config: { reconnect_initial_s: 0.002, reconnect_max_s: 0.004 },
    });
    client.start();
    await until(() => Unreachable.count >= 4);
    client.stop();
    assert.deepEqual(of("warning").map((e) => e.reason), ["tracker_unreachable"]);
    assert.equal(client.refused, null);
  }));

// --- swarm: peer and byte events, uploads off ----------------------------------------------------

function fakeLink(peerId) {
  return {
    remotePeerId: peerId,
    role: "answerer",
    busy: [],
    rejectBusy(id, ms) {
      this.busy.push([id, ms]);
    },
    close() {},
  };
}

test("swarm: peer-connected, bytes-downloaded, peer-closed and peer-banned; uploads off answers BUSY 65535", () => {
  const { emitter, of } = recorder();
  const toEngine = [];
  const swarm = new Swarm({
    trackerUrl: "ws://t/announce",
    infoHash: IH,
    peerId: ME,
    onEvent: (link, e) => toEngine.push(e.type),
    hello: () => ({ have: [], fetching: [] }),
    emit: (t, d) => emitter.emit(t, d),
    upload: false,
  });
  const link = fakeLink("-PH0001-evilevilevil");
  swarm._expose(link.remotePeerId, link);
  swarm._onLinkEvent(link, { type: "HelloReceived", leech_only: false, have: [], fetching: [] });
  swarm._onLinkEvent(link, { type: "DataReceived", request_id: 1, offset: 0, data: new Uint8Array(1000) });
  swarm._onLinkEvent(link, { type: "SegmentRequested", request_id: 5, segment: { rendition: 0, sequence: 1 }, offset: 0 });
  assert.deepEqual(link.busy, [[5, 0xffff]]);
  swarm.setUploadEnabled(true);
  swarm._onLinkEvent(link, { type: "SegmentRequested", request_id: 6, segment: { rendition: 0, sequence: 1 }, offset: 0 });
  assert.deepEqual(link.busy, [[5, 0xffff]]);
  swarm._onLinkEvent(link, { type: "SessionClosed", code: CloseCode.BANNED, reason: "repeated integrity failures", by_remote: false });
  assert.deepEqual(toEngine, ["HelloReceived", "DataReceived", "SegmentRequested", "SessionClosed"]);
  assert.deepEqual(of("peer-connected").map((e) => [e.peerId, e.role, e.leechOnly]), [[link.remotePeerId, "answerer", false]]);
  assert.deepEqual(of("bytes-downloaded").map((e) => [e.source, e.peerId, e.bytes]), [["peer", link.remotePeerId, 1000]]);
  assert.deepEqual(of("peer-closed").map((e) => [e.code, e.byRemote]), [[CloseCode.BANNED, false]]);
  assert.deepEqual(of("peer-banned").map((e) => [e.peerId, e.reason]), [[link.remotePeerId, "repeated integrity failures"]]);
  swarm._onLinkEvent(link, { type: "SessionClosed", code: CloseCode.NORMAL, reason: "", by_remote: true });
  assert.equal(of("peer-closed").length, 1, "one peer-closed per connection");
});

// --- loader: segment events ------------------------------------------------------------------------

const frag = { sn: 7, level: 0, baseurl: "http://o/hls/s/lo/index.m3u8", relurl: "seg-7.ts", url: "http://o/hls/s/lo/seg-7.ts" };
const context = () => ({ url: frag.url, frag, responseType: "arraybuffer" });
class OkLoader {
  constructor() {
    this.stats = { loaded: 4, total: 4, chunkCount: 1, retry: 0, aborted: false, loading: { start: 10, first: 12, end: 30 } };
  }
  load(ctx, cfg, cb) {
    cb.onSuccess({ url: ctx.url, data: Uint8Array.of(1, 2, 3, 4).buffer }, this.stats, ctx, null);
  }
  abort() {}
  destroy() {}
}
class FailingLoader extends OkLoader {
  load(ctx, cfg, cb) {
    cb.onError({ code: 404, text: "Not Found" }, ctx, null, this.stats);
  }
}

function engineFor(result, events) {
  return {
    options: { playerFallbackS: 8 },
    events,
    requestFragment: () => (result === null ? null : { promise: result, release() {} }),
    ingestFromCdn() {},
    auditDelivery() {},
  };
}

function load(engine, Default) {
  return new Promise((resolve) => {
    const loader = new (makeFragmentLoader(engine, Default))({});
    const done = (kind) => () => resolve(kind);
    loader.load(context(), { loadPolicy: { maxLoadTimeMs: 60_000 } }, { onSuccess: done("success"), onError: done("error"), onTimeout: done("timeout"), onAbort: done("abort") });
  });
}

test("loader: segment-loaded from a peer names it; a failure falls back (segment-error, then loaded via hls.js); abort", async () => {
  const { emitter, of } = recorder();
  const timing = { startedAt: 1, firstAt: 1.1, doneAt: 1.5, peer_id: "-PH0001-cccccccccccc" };
  const data = new Uint8Array(500);
  assert.equal(await load(engineFor(Promise.resolve({ data, timing, source: "peer" }), emitter), OkLoader), "success");
  const [peer] = of("segment-loaded");
  assert.deepEqual([peer.source, peer.fallback, peer.bytes, peer.peerId, peer.sn, peer.level, peer.durationMs], ["peer", false, 500, timing.peer_id, 7, 0, 500]);

  assert.equal(await load(engineFor(Promise.reject(new Error("segment failed its hash")), emitter), OkLoader), "success");
  assert.match(of("segment-error")[0].message, /failed its hash/);
  assert.equal(of("segment-error")[0].fallback, true);
  const fallback = of("segment-loaded")[1];
  assert.deepEqual([fallback.source, fallback.fallback, fallback.bytes, fallback.peerId, fallback.durationMs], ["cdn", true, 4, null, 20]);

  assert.equal(await load(engineFor(null, emitter), FailingLoader), "error");
  assert.match(of("segment-error")[1].message, /Not Found/);

  const loader = new (makeFragmentLoader(engineFor(new Promise(() => {}), emitter), OkLoader))({});
  loader.load(context(), { loadPolicy: {} }, { onAbort() {} });
  loader.abort();
  assert.deepEqual(of("segment-abort").map((e) => e.sn), [7]);
});

// --- controls ----------------------------------------------------------------------------------------

test("options are checked with a message naming the option", () => {
  const opts = (o) => ({ ...DEFAULT_ENGINE_OPTIONS, ...o });
  assert.throws(() => checkEngineOptions(opts({ tracker: "http://t:8000/announce" })), /option tracker: a ws:\/\/ or wss:\/\/ URL/);
  assert.throws(() => checkEngineOptions(opts({ tracker: "no url" })), /option tracker/);
  assert.throws(() => checkEngineOptions(opts({ hashService: "ftp://h" })), /option hashService/);
  assert.throws(() => checkEngineOptions(opts({ manifestUrl: 5 })), /option manifestUrl/);
  assert.throws(() => checkEngineOptions(opts({ swarmId: "" })), /option swarmId/);
  assert.throws(() => checkEngineOptions(opts({ p2p: "yes" })), /option p2p/);
  assert.throws(() => new P2PEngine({ tracker: "http://x/announce" }), TypeError);
  checkEngineOptions(opts({ tracker: "wss://t.example/announce", hashService: "https://h.example", swarmId: "live-1" }));
});

test("swarm key: swarmId wins; signed URLs share one swarm through stripQuery", () => {
  const a = "https://cdn.example/live/master.m3u8?Expires=1&Signature=aaa";
  const b = "https://cdn.example/live/master.m3u8?Expires=2&Signature=bbb";
  const o = { ...DEFAULT_ENGINE_OPTIONS };
  assert.notEqual(swarmKeyFor(o, a), swarmKeyFor(o, b));
  assert.equal(swarmKeyFor({ ...o, swarmId: stripQuery(a) }, a), swarmKeyFor({ ...o, swarmId: stripQuery(b) }, b));
  assert.equal(stripQuery(a), "https://cdn.example/live/master.m3u8");
  assert.equal(swarmKeyFor({ ...o, swarmUrl: "old" }, a), "old");
});

test("manifest URL: manifestUrl, then the hash service (as the agent builds it), then manifest.json", () => {
  const playlist = "https://cdn.example/live/360p/index.m3u8";
  const o = { ...DEFAULT_ENGINE_OPTIONS };
  assert.equal(manifestUrlFor(o, playlist, 0), "https://cdn.example/live/360p/manifest.json");
  const svc = { ...o, hashService: "http://127.0.0.1:8090/" };
  // peer_agent/agent/integrity.py: f"{service}/manifest?playlist={quote(url, safe='')}"
  const expected = "http://127.0.0.1:8090/manifest?playlist=https%3A%2F%2Fcdn.example%2Flive%2F360p%2Findex.m3u8";
  assert.equal(manifestUrlFor(svc, playlist, 0), expected);
  assert.equal(hashServiceManifestUrl("http://127.0.0.1:8090", playlist), expected);
  const fn = { ...svc, manifestUrl: (url, r) => (r === 0 ? "hashes.json" : null) };
  assert.equal(manifestUrlFor(fn, playlist, 0), "https://cdn.example/live/360p/hashes.json");
  assert.equal(manifestUrlFor(fn, playlist, 1), null);
});

test("isSupported: WebRTC, WebCrypto in a secure context, WebSocket and MediaSource", () => {
  const full = { RTCPeerConnection: function () {}, crypto: { subtle: {} }, isSecureContext: true, WebSocket: function () {}, MediaSource: function () {} };
  assert.equal(isSupported(full), true);
  assert.deepEqual(supportReport({ ...full, RTCPeerConnection: undefined }), { webrtc: false, webcrypto: true, websocket: true, mediaSource: true });
  assert.equal(isSupported({ ...full, isSecureContext: false }), false);
  assert.equal(isSupported({ ...full, MediaSource: undefined, ManagedMediaSource: function () {} }), true);
  assert.equal(P2PEngine.isSupported(), false); // node has no RTCPeerConnection / MediaSource
});

test("engine: P2P and uploads switch at runtime (p2p-state events); a hash service sets the manifest URL; integrity-mode", async () => {
  const requests = [];
  globalThis.fetch = async (url) => {
    requests.push(String(url));
    return new Response('{"error":"outside the prefixes","reason":"not_allowed"}', { status: 403 });
  };
  const Events = { MANIFEST_LOADING: "a", MANIFEST_LOADED: "b", LEVEL_LOADED: "c", LEVEL_UPDATED: "d", MEDIA_ATTACHED: "e", MEDIA_DETACHED: "f", DESTROYING: "g" };
  class FakeHls {
    static Events = Events;
    static DefaultConfig = { abrController: class {}, loader: class {} };
    handlers = new Map();
    levels = [{ url: ["http://o/live/lo/index.m3u8"] }];
    on(n, fn) {
      this.handlers.set(n, [...(this.handlers.get(n) || []), fn]);
    }
    trigger(n, d) {
      for (const fn of this.handlers.get(n) || []) fn(n, d);
    }
  }
  const engine = new P2PEngine({ Hls: FakeHls, hashService: "http://hashes.test:8090", swarmId: "my-stream", p2p: false });
  const { emitter, of } = recorder(engine.events);
  assert.equal(emitter, engine.events);
  const hls = new FakeHls();
  engine.attach(hls);
  hls.trigger(Events.MANIFEST_LOADING, { url: "http://o/live/master.m3u8?sig=viewer1" });
  hls.trigger(Events.MANIFEST_LOADED, { url: "http://o/live/master.m3u8?sig=viewer1", levels: [{ url: "http://o/live/lo/index.m3u8" }] });
  await quietly(async () => {
    hls.trigger(Events.LEVEL_UPDATED, { level: 0, details: { url: "http://o/live/lo/index.m3u8", live: true, fragments: [] } });
    await until(() => of("integrity-mode").length > 0);
  });
  assert.deepEqual(requests, ["http://hashes.test:8090/manifest?playlist=http%3A%2F%2Fo%2Flive%2Flo%2Findex.m3u8"]);
  assert.deepEqual(of("warning").map((e) => [e.source, e.reason]), [["manifest", "manifest_http_403"]]);
  assert.equal(of("integrity-mode")[0].mode, "sha256"); // still expected: peers' bytes are refused until it answers
  await until(() => engine.infoHash !== null);
  const { swarmIdFor } = await import("../../web_demo/ids.js");
  assert.equal(engine.infoHash, await swarmIdFor("my-stream"));
  assert.equal(engine.stats().p2pEnabled, false);
  const firstId = engine.peerId;
  engine.setP2PEnabled(true); // no tracker configured: nothing to join, but the state and a fresh id
  engine.setUploadEnabled(false);
  assert.deepEqual(of("p2p-state").map((e) => [e.p2p, e.upload]), [[true, true], [true, false]]);
  assert.notEqual(engine.peerId, firstId);
  assert.equal(engine.stats().uploadEnabled, false);
  engine.destroy();
});

test("swarm: only a link that had opened restarts the refill backoff and re-announces at once", () => {
  const swarm = new Swarm({
    trackerUrl: "ws://t/announce",
    infoHash: IH,
    peerId: ME,
    onEvent: () => {},
    hello: () => ({ have: [], fetching: [] }),
  });
  let early = 0;
  swarm.tracker.announceNow = () => early++;
  const unopened = fakeLink("-PH0001-neveropened1");
  swarm._expose(unopened.remotePeerId, unopened);
  swarm._refill.streak = 3;
  swarm._onLinkEvent(unopened, { type: "SessionClosed", code: CloseCode.NORMAL, reason: "ice failed", by_remote: false });
  assert.equal(swarm.links.has(unopened.remotePeerId), false);
  assert.deepEqual([swarm._refill.streak, early], [3, 0]);
  const opened = fakeLink("-PH0001-wasopened001");
  swarm._expose(opened.remotePeerId, opened);
  swarm._onLinkEvent(opened, { type: "HelloReceived", leech_only: false, have: [], fetching: [] });
  swarm._onLinkEvent(opened, { type: "SessionClosed", code: CloseCode.NORMAL, reason: "bye", by_remote: true });
  assert.deepEqual([swarm._refill.streak, early], [0, 1]);
});

test("swarm: after a link closed BANNED, no announce at once and no pairing with that peer for the back-off", async () => {
  let now = 100;
  const swarm = new Swarm({
    trackerUrl: "ws://t/announce",
    infoHash: IH,
    peerId: ME,
    onEvent: () => {},
    hello: () => ({ have: [], fetching: [] }),
    clock: () => now,
  });
  let early = 0;
  swarm.tracker.announceNow = () => early++;
  const refused = fakeLink("-PH0002-refusedus0001");
  swarm._expose(refused.remotePeerId, refused);
  swarm._onLinkEvent(refused, { type: "HelloReceived", leech_only: false, have: [], fetching: [] });
  swarm._onLinkEvent(refused, { type: "SessionClosed", code: CloseCode.BANNED, reason: "refused for misbehaviour", by_remote: true });
  assert.equal(early, 0, "a refusal brings no announce at once");
  assert.equal(swarm.refusals.blocked(refused.remotePeerId, now), true);
  // its relayed offer is not answered (no link is even made)
  let made = 0;
  swarm._newLink = () => {
    made++;
    throw new Error("no link for a blocked peer");
  };
  assert.equal(await swarm._onOffer({ peer_id: refused.remotePeerId, offer_id: "x", sdp: "v=0" }), null);
  assert.deepEqual([made, swarm.pairingsRefused], [0, 1]);
  // an answer from it to one of our offers opens no link
  const pending = { ...fakeLink(null), isClosed: false, closes: [] };
  pending.close = (code, reason) => pending.closes.push([code, reason]);
  swarm._pending.set("o1", pending);
  await swarm._onAnswer({ peer_id: refused.remotePeerId, offer_id: "o1", sdp: "v=0" });
  assert.deepEqual(pending.closes, [[CloseCode.NORMAL, "refused pairing"]]);
  assert.deepEqual([swarm.links.has(refused.remotePeerId), swarm.pairingsRefused], [false, 2]);
  // the back-off ends after base_s (30 s); the next BANNED close doubles it
  now += swarm.config.refusals.base_s;
  assert.equal(swarm.refusals.blocked(refused.remotePeerId, now), false);
  assert.equal(swarm.refusals.closedBanned(refused.remotePeerId, now), now + 2 * swarm.config.refusals.base_s);
  // a close that is no refusal still re-announces at once
  const other = fakeLink("-PH0002-honestpeer01");
  swarm._expose(other.remotePeerId, other);
  swarm._onLinkEvent(other, { type: "HelloReceived", leech_only: false, have: [], fetching: [] });
  swarm._onLinkEvent(other, { type: "SessionClosed", code: CloseCode.NORMAL, reason: "bye", by_remote: true });
  assert.equal(early, 1);
  assert.equal(swarm.refusals.blocked(other.remotePeerId, now), false);
});

test("swarm: a link split to make room drains (transfers go on) and closes once idle, or at split_drain_s, counted", async () => {
  let now = 100;
  const swarm = new Swarm({
    trackerUrl: "ws://t/announce",
    infoHash: IH,
    peerId: ME,
    onEvent: () => {},
    hello: () => ({ have: [], fetching: [] }),
    config: { max_peers: 2, split_drain_s: 5 },
    clock: () => now,
  });
  swarm.tracker.announceNow = () => {};
  const waitMs = (ms) => new Promise((r) => setTimeout(r, ms));
  const busyLink = (peerId, outbound, inbound, buffered) => {
    const link = { ...fakeLink(peerId), isClosed: false, closes: [] };
    link.session = { outboundRequests: outbound, inboundRequests: inbound };
    link.channel = { readyState: "open", bufferedAmount: buffered };
    link.close = (code, reason) => {
      link.closes.push([code, reason]);
      link.isClosed = true;
    };
    swarm._all.add(link);
    swarm._expose(peerId, link);
    return link;
  };
  const split = async (newcomer, drop) => {
    const fresh = { ...fakeLink(newcomer), isClosed: false, acceptOffer: async () => "answer" };
    swarm._newLink = () => fresh;
    assert.equal(await swarm._onOffer({ peer_id: newcomer, offer_id: newcomer, sdp: "v=0", drop }), "answer");
  };
  // The peer's request in flight: out of the links at once, not closed.
  const a = busyLink("-PH0001-aaaaaaaaaaa1", 0, 1, 0);
  const b = busyLink("-PH0001-bbbbbbbbbbb1", 1, 0, 0);
  await split("-PH0001-newcomer0001", a.remotePeerId);
  assert.deepEqual([swarm.links.has(a.remotePeerId), swarm.linksSplit, a.closes], [false, 1, []]);
  // Its last bytes handed to the channel: still waits while the send buffer is not empty.
  a.session.inboundRequests = 0;
  a.channel.bufferedAmount = 4096;
  swarm._onLinkEvent(a, { type: "DataReceived", request_id: 1, offset: 0, data: new Uint8Array(1) });
  await waitMs(150);
  assert.deepEqual(a.closes, []);
  a.channel.bufferedAmount = 0; // the buffer empties (no event): the next check closes it
  for (let i = 0; i < 50 && a.closes.length === 0; i++) await waitMs(20);
  assert.deepEqual(a.closes, [[CloseCode.NORMAL, "making room"]]);
  assert.equal(swarm.linksDrainForced, 0);
  // Our own request never ends: closed at the bound, counted.
  await split("-PH0001-newcomer0002", b.remotePeerId);
  await waitMs(150);
  assert.deepEqual(b.closes, []);
  now += 5;
  for (let i = 0; i < 50 && b.closes.length === 0; i++) await waitMs(20);
  assert.deepEqual(b.closes, [[CloseCode.NORMAL, "making room"]]);
  assert.deepEqual([swarm.linksSplit, swarm.linksDrainForced, swarm._draining.size], [2, 1, 0]);
  // stop() closes a link still draining and ends its drain (no timer left behind).
  const c = busyLink("-PH0001-ccccccccccc1", 1, 1, 0);
  await split("-PH0001-newcomer0003", c.remotePeerId);
  assert.equal(swarm._draining.size, 1);
  swarm.tracker.stop = () => {};
  swarm.stop();
  assert.deepEqual([c.closes, swarm._draining.size], [[[CloseCode.GOING_AWAY, "leaving the swarm"]], 0]);
  assert.throws(() => new Swarm({ trackerUrl: "ws://t/announce", infoHash: IH, peerId: ME, onEvent() {}, config: { split_drain_s: -1 } }), /split_drain_s/);
});
