// P2PEngine without a tracker (CDN only), against a fake hls.js, a fake <video> and a fetch stub:
// the scheduler loop fetches what the player needs, every segment is hash-checked before it is
// handed over, and a segment that keeps failing its hash is given up (the loader then falls back).
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { test } from "node:test";

import { P2PEngine } from "../../web_demo/engine.js";

const ORIGIN = "http://origin.test/hls/live-ts";
const MASTER = `${ORIGIN}/master.m3u8`;
const PLAYLIST = `${ORIGIN}/lo/index.m3u8`;
const Events = {
  MANIFEST_LOADING: "manifestLoading",
  MANIFEST_LOADED: "manifestLoaded",
  LEVEL_LOADED: "levelLoaded",
  LEVEL_UPDATED: "levelUpdated",
  MEDIA_ATTACHED: "mediaAttached",
  MEDIA_DETACHED: "mediaDetached",
  DESTROYING: "destroying",
};

class FakeHls {
  static Events = Events;
  static DefaultConfig = { abrController: class {}, loader: class {} };
  constructor() {
    this.handlers = new Map();
    this.levels = [{ url: [PLAYLIST], bitrate: 100_000 }];
    this.latency = 6;
  }
  on(name, fn) {
    this.handlers.set(name, [...(this.handlers.get(name) || []), fn]);
  }
  trigger(name, data) {
    for (const fn of this.handlers.get(name) || []) fn(name, data);
  }
}

const media = {
  currentTime: 0,
  readyState: 0,
  playbackRate: 1,
  buffered: { length: 0, start: () => 0, end: () => 0 },
  addEventListener() {},
};

function segment(n, corrupt = false) {
  const bytes = new Uint8Array(40_000).map((_, i) => (i * 7 + n) & 0xff);
  if (corrupt) bytes[0] ^= 0xff;
  return bytes;
}

const sha = (b) => createHash("sha256").update(b).digest("hex");

function frag(n) {
  return { sn: n, start: n * 2, duration: 2, relurl: `seg-${n}.ts`, url: `${ORIGIN}/lo/seg-${n}.ts`, baseurl: PLAYLIST, byteRange: [] };
}

async function setUp({ corrupt = new Set() } = {}) {
  const requests = [];
  globalThis.fetch = async (url) => {
    requests.push(String(url));
    if (String(url).endsWith("manifest.json")) {
      const doc = Object.fromEntries([0, 1, 2, 3].map((n) => [`seg-${n}.ts`, sha(segment(n))]));
      return new Response(JSON.stringify(doc));
    }
    const n = Number(/seg-(\d+)/.exec(url)[1]);
    const body = segment(n, corrupt.has(n));
    return new Response(body, { headers: { "Content-Length": String(body.length) } });
  };
  const engine = new P2PEngine({ Hls: FakeHls, connectGraceS: 0 });
  const hls = new FakeHls();
  engine.attach(hls);
  hls.trigger(Events.MEDIA_ATTACHED, { media });
  hls.trigger(Events.MANIFEST_LOADING, { url: MASTER });
  hls.trigger(Events.MANIFEST_LOADED, { url: MASTER, levels: [{ url: PLAYLIST }] });
  hls.trigger(Events.LEVEL_LOADED, {
    level: 0,
    details: { url: PLAYLIST, live: true, fragments: [0, 1, 2, 3].map(frag) },
  });
  while (engine.infoHash === null) await new Promise((r) => setTimeout(r, 1));
  return { engine, hls, requests };
}

test("a fragment the player asks for comes from the CDN, verified, with its timing", async () => {
  const { engine, requests } = await setUp();
  try {
    const pending = engine.requestFragment(frag(1));
    const result = await pending.promise;
    assert.deepEqual(result.data, segment(1));
    assert.equal(result.source, "cdn");
    assert.ok(result.timing.startedAt <= result.timing.firstAt && result.timing.firstAt <= result.timing.doneAt);
    const s = engine.stats();
    assert.equal(s.integrity, "sha256");
    assert.equal(s.hashFailures, 0);
    assert.ok(s.bytesFromCdn >= 40_000 && s.bytesFromPeers === 0);
    assert.ok(requests.includes(`${ORIGIN}/lo/manifest.json`));
    assert.equal(engine.infoHash.length, 20);
    // Held now: a second ask is served from the store, as a fresh copy.
    const again = await engine.requestFragment(frag(1)).promise;
    assert.equal(again.source, "store");
    assert.notEqual(again.data.buffer, result.data.buffer);
  } finally {
    engine.destroy();
  }
});

test("a segment whose bytes never match is given up, so the loader falls back", async () => {
  const { engine } = await setUp({ corrupt: new Set([2]) });
  try {
    const pending = engine.requestFragment(frag(2));
    await assert.rejects(pending.promise, /hash/);
    const s = engine.stats();
    assert.equal(s.hashFailures, 4); // the first fetch and maxHashRetries (3) refetches
    assert.equal(engine.requestFragment(frag(2)), null); // given up: hls.js's own loader
    assert.ok(!engine.store.has("0/2"));
  } finally {
    engine.destroy();
  }
});

test("hlsConfig hands hls.js our loader and the hook that attaches the engine", () => {
  const engine = new P2PEngine({ Hls: FakeHls });
  const config = engine.hlsConfig({ maxBufferLength: 10 });
  assert.equal(typeof config.fLoader, "function");
  assert.equal(config.maxBufferLength, 10);
  const hls = new FakeHls();
  new config.abrController(hls);
  assert.equal(engine.hls, hls);
  assert.throws(() => new P2PEngine({ nope: 1 }), /unknown P2PEngine option/);
  engine.destroy();
});
