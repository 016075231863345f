// Identity (docs/vectors/wire/identity.json), WebCrypto SHA-256 against manifests, the store.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { asciiBytes, bytesToAscii, makePeerId, swarmIdFor } from "../../web_demo/ids.js";
import { Penalties } from "../../web_demo/exchange_state.js";
import {
  MAX_MANIFEST_BYTES,
  MAX_MANIFEST_ENTRIES,
  Manifest,
  ManifestRejected,
  Manifests,
  Verdict,
  incrementalManifestUrl,
  manifestKey,
  parseManifest,
  readBounded,
  sha256Hex,
} from "../../web_demo/integrity.js";
import { GrowBuffer, SegmentStore, ThroughputEstimator } from "../../web_demo/store.js";

const IDENTITY = JSON.parse(readFileSync(new URL("../../docs/vectors/wire/identity.json", import.meta.url), "utf8"));

test("swarm ids match docs/vectors/wire/identity.json", async () => {
  assert.ok(IDENTITY.swarm_ids.length >= 1);
  for (const { url, swarm_id } of IDENTITY.swarm_ids) assert.equal(await swarmIdFor(url), swarm_id);
});

test("peer ids are -PH0001- and 12 of [0-9A-Za-z]", () => {
  let i = 0;
  const draws = [0, 0.999, 0.5, 0.25];
  const id = makePeerId(() => draws[i++ % draws.length]);
  assert.match(id, /^-PH0001-[0-9A-Za-z]{12}$/);
  assert.equal(id.slice(8, 10), "0Z");
  assert.equal(bytesToAscii(asciiBytes(id)), id);
  assert.throws(() => asciiBytes("\u0100"));
});

const bytes = new TextEncoder().encode("segment bytes");
const digest = createHash("sha256").update(bytes).digest("hex");

test("sha256Hex is SHA-256", async () => {
  assert.equal(await sha256Hex(bytes), digest);
});

test("manifest keys: the URI as written, #first-last for a byte range, nothing else", () => {
  // The cases of docs/vectors/manifest/keys.json, with hls.js's [start, end) byte ranges.
  assert.equal(manifestKey("seg-0.ts"), "seg-0.ts");
  assert.equal(manifestKey("sub/seg-1.ts?x=1"), "sub/seg-1.ts?x=1");
  assert.equal(manifestKey("http://cdn.example/a/seg-2.ts", []), "http://cdn.example/a/seg-2.ts");
  assert.equal(manifestKey("stream.ts", [1000, 1500]), "stream.ts#1000-1499");
  assert.equal(manifestKey("all.mp4", [0, 720]), "all.mp4#0-719");
  assert.throws(() => manifestKey("stream.ts", [10, 10]), /bad byte range/);
  const m = new Manifest("http://h/hls/s/lo/manifest.json");
  m.update({ "stream.ts#1000-1499": digest, "seg-1.ts": digest });
  assert.equal(m.expectedFor("stream.ts", [1000, 1500]), digest);
  assert.equal(m.expectedFor("stream.ts"), null);
  assert.equal(m.expectedFor("http://h/hls/s/lo/seg-1.ts"), null); // only as written
});

test("manifest verdicts: ok, mismatch, unknown; size-only without a manifest", async () => {
  const m = new Manifest("http://h/hls/s/lo/manifest.json");
  m.update(JSON.stringify({ "seg-1.ts": digest.toUpperCase(), "seg-2.ts": "not a hash", n: 3 }));
  assert.equal(m.hashes.get("seg-2.ts"), undefined);
  const seg1 = { key: "seg-1.ts", uri: "http://h/hls/s/lo/seg-1.ts" };
  assert.equal(await m.verify(seg1, bytes), Verdict.OK);
  const bad = Uint8Array.from(bytes);
  bad[0] ^= 0xff;
  assert.equal(await m.verify(seg1, bad), Verdict.MISMATCH);
  assert.equal(await m.verify({ key: "seg-9.ts", uri: "http://h/hls/s/lo/seg-9.ts" }, bytes), Verdict.UNKNOWN);
  assert.equal(m.mode, "sha256");
  const sizeOnly = new Manifest(null);
  assert.equal(sizeOnly.mode, "size-only");
  assert.equal(await sizeOnly.verify(seg1, bytes, bytes.length), Verdict.OK);
  assert.equal(await sizeOnly.verify(seg1, bytes, 3), Verdict.MISMATCH);
  assert.equal(await sizeOnly.verify(seg1, bytes), Verdict.UNKNOWN);
  assert.throws(() => parseManifest("[]"));
});

test("penalties: a penalty window, then a ban at the second failure", () => {
  const p = new Penalties({ ban_after_failures: 2, penalty_s: 5 });
  assert.equal(p.record("x", 10), false);
  assert.equal(p.blockedUntil("x"), 15);
  assert.equal(p.record("x", 11), true);
  assert.equal(p.isBanned("x"), true);
  assert.equal(p.blockedUntil("x"), Infinity);
  assert.equal(p.record("x", 12), false); // banned once
});

test("store evicts the oldest beyond its byte budget", () => {
  const store = new SegmentStore(10);
  assert.deepEqual(store.put("0/1", [0, 1], new Uint8Array(4)), []);
  assert.deepEqual(store.put("0/2", [0, 2], new Uint8Array(4)), []);
  assert.deepEqual(store.put("0/3", [0, 3], new Uint8Array(4)), [[0, 1]]);
  assert.equal(store.usedBytes, 8);
  assert.deepEqual(store.segments(), [
    [0, 2],
    [0, 3],
  ]);
  assert.deepEqual(store.put("0/4", [0, 4], new Uint8Array(20)), [
    [0, 2],
    [0, 3],
    [0, 4],
  ]);
  assert.throws(() => store.put("0/5", [0, 5], new Uint8Array(0)));
});

test("grow buffer and throughput estimator", () => {
  const b = new GrowBuffer(2);
  b.append(Uint8Array.of(1, 2, 3));
  b.append(Uint8Array.of(4));
  assert.deepEqual([...b.copy()], [1, 2, 3, 4]);
  b.truncate(2);
  assert.deepEqual([...b.view()], [1, 2]);
  const t = new ThroughputEstimator(3);
  assert.equal(t.estimate, null);
  t.addSample(1000, 1);
  assert.ok(Math.abs(t.estimate - 1000) < 1e-9); // zero-factor corrected: the first sample is exact
  t.addSample(3000, 1);
  assert.ok(t.estimate > 1000 && t.estimate < 3000);
});

test("manifests per rendition: fetched at once, again for an unlisted segment, a 404 means size-only", async () => {
  const served = new Map([["http://h/lo/manifest.json", [{}, { "seg-2.ts": digest }]]]);
  const fetched = [];
  const saved = globalThis.fetch;
  globalThis.fetch = async (url) => {
    fetched.push(url);
    const docs = served.get(url);
    if (!docs) return new Response("no", { status: 404 });
    return new Response(JSON.stringify(docs.length > 1 ? docs.shift() : docs[0]));
  };
  try {
    const warnings = [];
    let changes = 0;
    const m = new Manifests({ onWarning: (reason) => warnings.push(reason), onChange: () => changes++ });
    await m.refresh(m.add(0, "http://h/lo/manifest.json"));
    await m.refresh(m.add(1, "http://h/hi/manifest.json"));
    assert.deepEqual(warnings, ["no_manifest"]);
    assert.equal(m.sha256(0), true);
    assert.equal(m.sha256(1), false); // 404: size-only
    assert.equal(m.mode, "sha256");
    await new Promise((r) => setTimeout(r, 300)); // past the refresh spacing
    // seg-2.ts is not listed yet: one more fetch finds it.
    assert.equal(await m.verify(0, { key: "seg-2.ts" }, bytes), Verdict.OK);
    assert.equal(fetched.filter((u) => u.includes("/lo/")).length, 2);
    assert.equal(await m.verify(1, { key: "seg-2.ts" }, bytes, bytes.length), Verdict.OK); // by size
    assert.equal(await m.verify(1, { key: "seg-2.ts" }, bytes, 3), Verdict.MISMATCH);
    assert.ok(changes >= 3);
  } finally {
    globalThis.fetch = saved;
  }
});

// --- incremental live manifests (docs/exchange.md §12, docs/vectors/manifest/incremental.json) --

const INCREMENTAL = JSON.parse(readFileSync(new URL("../../docs/vectors/manifest/incremental.json", import.meta.url), "utf8"));

test("incremental manifest defaults match the vectors", () => {
  assert.equal(MAX_MANIFEST_BYTES, INCREMENTAL.max_manifest_bytes);
  assert.equal(MAX_MANIFEST_ENTRIES, INCREMENTAL.max_manifest_entries);
});

test("incremental manifest URLs match the vectors", () => {
  assert.ok(INCREMENTAL.urls.length >= 3);
  for (const { name, url, msn, expected } of INCREMENTAL.urls) assert.equal(incrementalManifestUrl(url, msn), expected, name);
  assert.throws(() => incrementalManifestUrl("http://o/m.json", -1));
});

test("manifest merges match the vectors (bounded, oldest evicted, refused answers hold nothing)", () => {
  assert.ok(INCREMENTAL.merges.length >= 4);
  for (const { name, max_entries, held, answer, expected, error } of INCREMENTAL.merges) {
    const m = new Manifest("http://o/m.json", { maxEntries: max_entries });
    m.hashes = new Map(held);
    if (error) {
      assert.throws(() => m.update(JSON.stringify(answer)), (exc) => exc instanceof ManifestRejected && exc.reason === error, name);
      assert.deepEqual([...m.hashes], held, name);
    } else {
      m.update(JSON.stringify(answer));
      assert.deepEqual([...m.hashes], expected, name);
    }
  }
});

test("readBounded refuses a body over the limit, declared or streamed", async () => {
  const big = "x".repeat(100);
  await assert.rejects(readBounded(new Response(big, { headers: { "content-length": "100" } }), 50), (e) => e.reason === "manifest_too_large");
  // No Content-Length: a streamed body is cut at the limit.
  const stream = new ReadableStream({
    pull(controller) {
      controller.enqueue(new TextEncoder().encode(big));
    },
  });
  await assert.rejects(readBounded(new Response(stream), 250), (e) => e.reason === "manifest_too_large");
  assert.deepEqual(await readBounded(new Response("{}"), 50), { text: "{}", bytes: 2 });
});

test("live manifests: whole once, then only from the unlisted segment's MSN on; refusals warn and count", async () => {
  const answers = new Map([
    ["http://o/lo/manifest.json", JSON.stringify({ "seg-1.ts": digest })],
    ["http://o/lo/manifest.json?from_msn=2", JSON.stringify({ "seg-2.ts": digest })],
    ["http://o/lo/manifest.json?from_msn=3", "y".repeat(200)],
  ]);
  const fetched = [];
  const fetchFn = async (url, init) => {
    fetched.push([url, init.cache]);
    return new Response(answers.get(url) ?? "no", { status: answers.has(url) ? 200 : 404 });
  };
  const warnings = [];
  const m = new Manifests({ fetchFn, onWarning: (reason) => warnings.push(reason) });
  const manifest = m.add(0, "http://o/lo/manifest.json");
  manifest.maxBytes = 100;
  await m.refresh(manifest);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await m.verify(0, { key: "seg-2.ts", msn: 2 }, bytes), Verdict.OK);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal(await m.verify(0, { key: "seg-3.ts", msn: 3 }, new TextEncoder().encode("three")), Verdict.UNKNOWN);
  assert.deepEqual(fetched, [
    ["http://o/lo/manifest.json", "no-store"],
    ["http://o/lo/manifest.json?from_msn=2", "default"],
    ["http://o/lo/manifest.json?from_msn=3", "default"],
  ]);
  assert.deepEqual(warnings, ["manifest_too_large"]);
  assert.deepEqual(m.rejected, { manifest_too_large: 1 });
  assert.equal(m.fetches, 3);
  assert.equal(m.bytesFetched, answers.get("http://o/lo/manifest.json").length * 2);
  assert.equal(manifest.expectedFor("seg-3.ts"), null);
});

/** A live stream's manifests (segment 1 listed; MSN 3's answer lists 3, MSN 2's lists 2 and 3),
 * each fetch answering after `delayMs`, refreshed once and then left past the refresh spacing. */
async function laterMsnManifests(delayMs) {
  const answers = new Map([
    ["http://o/lo/manifest.json", JSON.stringify({ "seg-1.ts": digest })],
    ["http://o/lo/manifest.json?from_msn=3", JSON.stringify({ "seg-3.ts": digest })],
    ["http://o/lo/manifest.json?from_msn=2", JSON.stringify({ "seg-2.ts": digest, "seg-3.ts": digest })],
  ]);
  const fetched = [];
  const fetchFn = async (url) => {
    fetched.push(url);
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
    return new Response(answers.get(url) ?? "no", { status: answers.has(url) ? 200 : 404 });
  };
  const m = new Manifests({ fetchFn });
  const manifest = m.add(0, "http://o/lo/manifest.json");
  await m.refresh(manifest);
  await new Promise((r) => setTimeout(r, 300)); // past the refresh spacing
  return { m, manifest, fetched };
}

test("live manifests: a fetch in flight from a later MSN does not serve an earlier segment; its own fetch follows", async () => {
  const { m, fetched } = await laterMsnManifests(20);
  // segment 3 arrives first and starts a fetch from MSN 3; segment 2 arrives while it runs
  const [v3, v2] = await Promise.all([
    m.verify(0, { key: "seg-3.ts", msn: 3 }, bytes),
    m.verify(0, { key: "seg-2.ts", msn: 2 }, bytes),
  ]);
  assert.deepEqual([v3, v2], [Verdict.OK, Verdict.OK]);
  assert.deepEqual(fetched, [
    "http://o/lo/manifest.json",
    "http://o/lo/manifest.json?from_msn=3",
    "http://o/lo/manifest.json?from_msn=2",
  ]);
  // a caller whose MSN the fetch just done covers is served by it (at most one per 250 ms);
  // still unlisted there, it asks once more, 250 ms after that answer (the origin lists no
  // segment 4: unknown)
  assert.equal(await m.verify(0, { key: "seg-4.ts", msn: 4 }, bytes), Verdict.UNKNOWN);
  assert.deepEqual(fetched.slice(3), ["http://o/lo/manifest.json?from_msn=4"]);
});

test("live manifests: a fetch done less than 250 ms ago from a later MSN does not serve an earlier segment", async () => {
  // As the agent's test_a_refresh_just_done_from_a_later_msn_does_not_stand_for_an_earlier_one:
  // segment 3 was checked a moment ago (a fetch from MSN 3, done); segment 2, checked within the
  // quarter second, is not in that answer, so its own fetch from MSN 2 runs at once instead of
  // leaving it unverifiable; segment 4, checked within the quarter second, reuses that answer.
  const { m, manifest, fetched } = await laterMsnManifests(0);
  assert.equal(await m.verify(0, { key: "seg-3.ts", msn: 3 }, bytes), Verdict.OK); // its fetch is done
  assert.equal(manifest.expectedFor("seg-2.ts"), null);
  assert.equal(await m.verify(0, { key: "seg-2.ts", msn: 2 }, bytes), Verdict.OK); // well within 250 ms
  // segment 4 is covered by MSN 2's answer, then asked for once more (unlisted: unknown)
  assert.equal(await m.verify(0, { key: "seg-4.ts", msn: 4 }, bytes), Verdict.UNKNOWN);
  assert.deepEqual(fetched, [
    "http://o/lo/manifest.json",
    "http://o/lo/manifest.json?from_msn=3",
    "http://o/lo/manifest.json?from_msn=2",
    "http://o/lo/manifest.json?from_msn=4",
  ]);
  assert.equal(m.fetches, 3); // the last answer, a 404, is a warning
});

test("live manifests: a shared answer that predates a segment is followed by a fresh fetch, 250 ms on", async () => {
  // As the agent's test_a_shared_answer_that_predates_the_segment_is_followed_by_a_fresh_one:
  // segment 2's fetch from MSN 2 is answered before the origin publishes segment 3; a peer's
  // copy of segment 3, checked within the quarter second, reuses that answer, then asks from
  // MSN 3 once the quarter second has passed, and verifies.
  let published = false;
  const fetched = [];
  const fetchFn = async (url) => {
    fetched.push(url);
    const doc = { "seg-1.ts": digest, "seg-2.ts": digest, ...(published ? { "seg-3.ts": digest } : {}) };
    return new Response(JSON.stringify(doc), { status: 200 });
  };
  const m = new Manifests({ fetchFn });
  const manifest = m.add(0, "http://o/lo/manifest.json");
  await m.refresh(manifest);
  await new Promise((r) => setTimeout(r, 300)); // past the refresh spacing
  manifest.hashes.clear();
  assert.equal(await m.verify(0, { key: "seg-2.ts", msn: 2 }, bytes), Verdict.OK);
  const answered = Date.now();
  published = true;
  assert.equal(await m.verify(0, { key: "seg-3.ts", msn: 3 }, bytes), Verdict.OK);
  assert.ok(Date.now() - answered >= 240, "the fresh fetch waited out the spacing");
  assert.deepEqual(fetched, [
    "http://o/lo/manifest.json",
    "http://o/lo/manifest.json?from_msn=2",
    "http://o/lo/manifest.json?from_msn=3",
  ]);
});

test("a verify that does not wait (the CDN's bytes alone) answers at once; the fetch from its MSN runs in the background", async () => {
  // docs/exchange.md §6: the CDN's bytes are trusted unlisted, so their verdict waits for no
  // manifest fetch (as the agent's intake.check without a refresh); a peer's bytes still wait.
  const answers = new Map([
    ["http://o/lo/manifest.json", JSON.stringify({ "seg-1.ts": digest })],
    ["http://o/lo/manifest.json?from_msn=2", JSON.stringify({ "seg-2.ts": digest })],
  ]);
  const fetched = [];
  let release;
  const held = new Promise((r) => (release = r));
  const fetchFn = async (url) => {
    fetched.push(url);
    if (url.includes("from_msn=")) await held; // the incremental answer comes when we say
    return new Response(answers.get(url) ?? "no", { status: answers.has(url) ? 200 : 404 });
  };
  const m = new Manifests({ fetchFn });
  const manifest = m.add(0, "http://o/lo/manifest.json");
  await m.refresh(manifest);
  await new Promise((r) => setTimeout(r, 300)); // past the refresh spacing
  // unlisted: unknown at once, while the fetch from MSN 2 it started is still held
  assert.equal(await m.verify(0, { key: "seg-2.ts", msn: 2 }, bytes, null, { wait: false }), Verdict.UNKNOWN);
  assert.deepEqual(fetched, ["http://o/lo/manifest.json", "http://o/lo/manifest.json?from_msn=2"]);
  assert.equal(m.fetches, 1);
  // a peer's copy of the same segment waits for that fetch (no second one) and verifies
  const peerVerdict = m.verify(0, { key: "seg-2.ts", msn: 2 }, bytes);
  release();
  assert.equal(await peerVerdict, Verdict.OK);
  assert.equal(m.fetches, 2);
  assert.equal(manifest.expectedFor("seg-2.ts"), digest);
  // listed entries decide either way: a wrong copy is a mismatch without waiting too
  const wrong = new TextEncoder().encode("other bytes");
  assert.equal(await m.verify(0, { key: "seg-1.ts", msn: 1 }, wrong, null, { wait: false }), Verdict.MISMATCH);
  assert.equal(await m.verify(0, { key: "seg-1.ts", msn: 1 }, bytes, null, { wait: false }), Verdict.OK);
  assert.equal(fetched.length, 2);
});
