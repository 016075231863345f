// The shared vectors of docs/vectors/exchange/ and docs/vectors/session/ are the contract of the
// browser's SegmentExchange (segment_exchange.js) and PeerSession (session.js) too: the same
// files tests/core/test_exchange_vectors.py and test_session_vectors.py run (formats: their
// READMEs).
import assert from "node:assert/strict";
import { readFileSync, readdirSync } from "node:fs";
import { test } from "node:test";

import { SegmentExchange, exchangeConfig } from "../../web_demo/segment_exchange.js";
import { PeerSession, sessionConfig } from "../../web_demo/session.js";
import { UsageError, decode } from "../../web_demo/wire.js";

const VECTORS = new URL("../../docs/vectors/", import.meta.url);

function vectorFiles(folder) {
  const dir = new URL(`${folder}/`, VECTORS);
  return readdirSync(dir)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((name) => ({ name: name.slice(0, -5), vector: JSON.parse(readFileSync(new URL(name, dir), "utf8")) }));
}

// --- bytes --------------------------------------------------------------------------------------

function fromHex(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

const toHex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");

/** A bytes descriptor: {hex}, {length, fill} (the hex pattern repeated and cut) or {of, offset, length}. */
function pattern(spec, blobs) {
  if ("hex" in spec) return fromHex(spec.hex);
  if ("of" in spec) {
    const blob = blobs.get(spec.of);
    assert.ok(blob, `unknown blob ${spec.of}`);
    const start = spec.offset ?? 0;
    const length = spec.length ?? blob.length - start;
    assert.ok(start + length <= blob.length, `slice past the end of blob ${spec.of}`);
    return blob.slice(start, start + length);
  }
  const fill = fromHex(spec.fill);
  assert.ok(fill.length, "an empty fill pattern");
  const out = new Uint8Array(spec.length);
  for (let i = 0; i < out.length; i++) out[i] = fill[i % fill.length];
  return out;
}

function makeBlobs(spec = {}) {
  const blobs = new Map();
  for (const [name, desc] of Object.entries(spec)) blobs.set(name, pattern(desc, blobs));
  return blobs;
}

const wseg = ([rendition, sequence]) => ({ rendition, sequence });
const aseg = (s) => [s.rendition, s.sequence];
const cmpSeg = (a, b) => a[0] - b[0] || a[1] - b[1];
const keySeg = (key) => key.split("/").map(Number);
const entries = (list) => list.map((e) => ({ segment: wseg(e.segment), expected_bytes: e.expected_bytes }));

/** Bytes shown by length and first bytes in failure messages. */
function describe(obj) {
  const out = { ...obj };
  if (out.data instanceof Uint8Array) out.data = `<${out.data.length} bytes ${toHex(out.data.subarray(0, 8))}..>`;
  return out;
}

// --- exchange vectors -----------------------------------------------------------------------------

/** A vector's event -> the session.js event the exchange gets. */
function peerEvent(obj, blobs) {
  switch (obj.type) {
    case "hello":
      return {
        type: "HelloReceived",
        peer_id: new Uint8Array(0),
        flags: obj.leech_only ? 1 : 0,
        leech_only: Boolean(obj.leech_only),
        have: (obj.have || []).map(wseg),
        fetching: entries(obj.fetching || []),
      };
    case "have":
      return { type: "PeerHave", segments: obj.segments.map(wseg) };
    case "lost":
      return { type: "PeerLost", segments: obj.segments.map(wseg) };
    case "fetching":
      return { type: "PeerFetching", entries: entries(obj.entries) };
    case "requested":
      return { type: "SegmentRequested", request_id: obj.request_id, segment: wseg(obj.segment), offset: obj.offset };
    case "cancelled":
      return { type: "RequestCancelled", request_id: obj.request_id };
    case "late_frames":
      return { type: "LateFrames", count: obj.count ?? 1 };
    case "response":
      return {
        type: "ResponseStarted",
        request_id: obj.request_id,
        segment: wseg(obj.segment),
        total_bytes: obj.total_bytes,
        offset: obj.offset ?? 0,
      };
    case "data":
      return {
        type: "DataReceived",
        request_id: obj.request_id,
        segment: wseg(obj.segment),
        offset: obj.offset,
        data: pattern(obj.data, blobs),
      };
    case "completed": // the exchange assembles the segment from DATA events; no copy here
      return {
        type: "RequestCompleted",
        request_id: obj.request_id,
        segment: wseg(obj.segment),
        offset: obj.offset ?? 0,
        total_bytes: obj.total_bytes,
        data: new Uint8Array(0),
      };
    case "failed":
      return {
        type: "RequestFailed",
        request_id: obj.request_id,
        segment: wseg(obj.segment),
        reason: obj.reason,
        retry_after_s: obj.retry_after_s ?? null,
      };
    case "closed":
      return { type: "SessionClosed", code: obj.code ?? 0, reason: "", by_remote: obj.by_remote ?? true };
    default:
      throw new Error(`unknown event type ${obj.type}`);
  }
}

function applyStep(ex, step, blobs) {
  const now = step.now;
  switch (step.do) {
    case "timeline":
      ex.setTimeline(
        step.segments.map((e) => ({
          segment: e.segment,
          start_s: e.start_s,
          duration_s: e.duration_s,
          known_since: e.known_since ?? 0,
          range_bytes: e.range_bytes ?? null,
        })),
        { bandwidthBitsPerS: step.bandwidth_bits_per_s ?? null },
      );
      if ("sha256" in step) ex.setSha256(step.sha256);
      return;
    case "peer_event":
      ex.onPeerEvent(step.link, step.peer ?? step.link, peerEvent(step.event, blobs), now);
      return;
    case "schedule":
      ex.apply(
        step.actions.map((a) => ({ reason: "vector", offset: 0, peer_id: null, ...a })),
        now,
      );
      return;
    case "request_sent":
      ex.requestSent(step.link, step.segment, step.request_id);
      return;
    case "request_not_sent":
      ex.requestNotSent(step.link, step.segment, now);
      return;
    case "cdn_total":
      ex.cdnTotal(step.fetch_id, step.total_bytes, now);
      return;
    case "cdn_data":
      ex.cdnData(step.fetch_id, step.offset, pattern(step.data, blobs), now);
      return;
    case "cdn_done":
      ex.cdnDone(step.fetch_id, step.total_bytes, step.elapsed_s, now);
      return;
    case "cdn_failed":
      ex.cdnFailed(step.fetch_id, now);
      return;
    case "verdict":
      ex.verdict(step.segment, step.verdict, now);
      return;
    case "timer":
      ex.handleTimer(now);
      return;
    case "forget":
      ex.forgetBefore(step.playhead_s, now);
      return;
    case "identity":
      ex.setLinkKeys(step.link, step.keys);
      return;
    case "view":
      return; // checked by the runner
    default:
      throw new Error(`unknown step ${step.do}`);
  }
}

/** An action in its vector form: close_link's reason text is not part of it. */
function actionJson(action) {
  const out = { ...action };
  if (out.action === "close_link") delete out.reason;
  return out;
}

function expectedAction(obj, blobs) {
  const out = { ...obj };
  if ("data" in out) out.data = pattern(out.data, blobs);
  return out;
}

function statsJson(ex) {
  return {
    bytes_cdn: ex.bytesCdn,
    bytes_p2p: ex.bytesP2p,
    bytes_uploaded: ex.bytesUploaded,
    hash_failures: ex.hashFailures,
    unverifiable: ex.unverifiable,
    cdn_failures: ex.cdnFailures,
    cdn_resumes: ex.cdnResumes,
    busy_sent: ex.server.busySent,
    unfair_refusals: ex.server.unfairRefusals,
    relays_aborted: ex.server.relaysAborted,
    uploads: ex.server.uploads.size,
    verified: [...ex.verified.values()].sort(cmpSeg),
    given_up: [...ex.givenUp.values()].sort(cmpSeg),
    sized: [...ex.sizes.keys()].map((k) => k.split("/").map(Number)).sort(cmpSeg),
    retried: [...ex.hashRetries.keys()].map((k) => k.split("/").map(Number)).sort(cmpSeg),
    stored: ex.store.segments(),
    banned: [...ex.penalties.banned].sort(),
    banned_subjects: [...ex.reputation.banned].sort(),
    refusals: ex.reputation.refusals,
  };
}

const round6 = (x) => Math.round(x * 1e6) / 1e6;

function viewJson(ex, now, playheadS) {
  const view = ex.schedulerView(now, playheadS);
  return {
    segments: view.segments.map((s) => ({
      segment: s.segment,
      size_bytes: s.size_bytes,
      partial_bytes: s.partial_bytes,
      avoid: [...s.avoid].sort(),
    })),
    peers: view.peers.map((p) => ({
      peer_id: p.peer_id,
      have: [...p.have].map(keySeg).sort(cmpSeg),
      fetching: [...p.fetching].map(keySeg).sort(cmpSeg),
      choked_until: p.choked_until === Infinity ? null : round6(p.choked_until),
      uploads: p.uploads,
    })),
    transfers: view.transfers.map((t) => ({
      segment: t.segment,
      peer_id: t.peer_id,
      offset: t.offset,
      received_bytes: t.received_bytes,
      total_bytes: t.total_bytes,
    })),
    have: [...view.have].map(keySeg).sort(cmpSeg),
  };
}

const pick = (obj, keys) => Object.fromEntries(keys.map((k) => [k, obj[k]]));

function runExchange(vector) {
  assert.deepEqual(
    Object.keys(vector).filter((k) => !["description", "config", "blobs", "steps"].includes(k)),
    [],
  );
  const blobs = makeBlobs(vector.blobs);
  const ex = new SegmentExchange(exchangeConfig(vector.config || {}));
  vector.steps.forEach((step, index) => {
    const where = `step ${index} (${step.do} at ${step.now})`;
    applyStep(ex, step, blobs);
    const got = [];
    for (let a = ex.nextAction(); a !== null; a = ex.nextAction()) got.push(actionJson(a));
    const want = step.expect.map((a) => expectedAction(a, blobs));
    assert.deepEqual(got, want, `${where}: actions differ\n got: ${JSON.stringify(got.map(describe))}\n want: ${JSON.stringify(want.map(describe))}`);
    if ("timer" in step) {
      const timer = ex.getTimer();
      const value = timer === null ? null : round6(timer);
      if (step.timer === null || value === null) assert.equal(value, step.timer, `${where}: timer`);
      else assert.ok(Math.abs(value - step.timer) < 1e-9, `${where}: timer ${timer} != ${step.timer}`);
    }
    if ("stats" in step) {
      assert.deepEqual(pick(statsJson(ex), Object.keys(step.stats)), step.stats, `${where}: stats`);
    }
    if ("view" in step) {
      const view = viewJson(ex, step.now, step.playhead_s ?? 0);
      assert.deepEqual(pick(view, Object.keys(step.view)), step.view, `${where}: view`);
    }
  });
}

const EXCHANGE = vectorFiles("exchange");

test("the exchange modules are pure: no clock, no randomness, no timers, no I/O", () => {
  const banned = /performance\.now|Date\.now|Math\.random|setTimeout|setInterval|queueMicrotask|\bfetch\(|crypto|WebSocket|RTCPeerConnection|prototype/;
  for (const name of ["segment_exchange.js", "exchange_serve.js", "exchange_state.js", "exchange_view.js", "store.js", "scheduler.js"]) {
    const source = readFileSync(new URL(`../../web_demo/${name}`, import.meta.url), "utf8");
    const code = source.replace(/\/\/.*$/gm, "").replace(/\/\*[\s\S]*?\*\//g, "");
    assert.doesNotMatch(code, banned, name);
  }
});

test("there are exchange vectors", () => {
  assert.ok(EXCHANGE.length >= 12, `${EXCHANGE.length} files`);
});

for (const { name, vector } of EXCHANGE) {
  test(`exchange vector ${name}`, () => runExchange(vector));
}

// --- session vectors -----------------------------------------------------------------------------

/** The JSON form of docs/vectors/wire/ (a DATA payload may be a bytes descriptor) -> decode()'s. */
function messageFromJson(obj, blobs) {
  switch (obj.type) {
    case "hello":
      return { ...obj, swarm_id: fromHex(obj.swarm_id), peer_id: fromHex(obj.peer_id) };
    case "data": {
      const { payload_repeat: rep, payload, ...rest } = obj;
      let bytes;
      if (rep) bytes = new Uint8Array(rep.count).fill(parseInt(rep.byte, 16));
      else if (typeof payload === "object") bytes = pattern(payload, blobs);
      else bytes = fromHex(payload);
      return { ...rest, payload: bytes };
    }
    default:
      return obj;
  }
}

function brief(messages) {
  return messages.map((m) => (m.type === "data" ? `data(${m.request_id}, ${m.offset}, <${m.payload.length} bytes>)` : JSON.stringify(m)));
}

function eventJson(e) {
  switch (e.type) {
    case "HelloReceived":
      return {
        type: "hello",
        peer_id: toHex(e.peer_id),
        leech_only: e.leech_only,
        have: e.have.map(aseg),
        fetching: e.fetching.map((f) => ({ segment: aseg(f.segment), expected_bytes: f.expected_bytes })),
      };
    case "PeerHave":
    case "PeerLost":
      return { type: e.type === "PeerHave" ? "have" : "lost", segments: e.segments.map(aseg) };
    case "PeerFetching":
      return { type: "fetching", entries: e.entries.map((f) => ({ segment: aseg(f.segment), expected_bytes: f.expected_bytes })) };
    case "SegmentRequested":
      return { type: "requested", request_id: e.request_id, segment: aseg(e.segment), offset: e.offset };
    case "RequestCancelled":
      return { type: "cancelled", request_id: e.request_id };
    case "ResponseStarted":
      return { type: "response", request_id: e.request_id, segment: aseg(e.segment), total_bytes: e.total_bytes, offset: e.offset };
    case "DataReceived":
      return { type: "data", request_id: e.request_id, segment: aseg(e.segment), offset: e.offset, data: Uint8Array.from(e.data) };
    case "RequestCompleted":
      return {
        type: "completed",
        request_id: e.request_id,
        segment: aseg(e.segment),
        offset: e.offset,
        total_bytes: e.total_bytes,
        data: Uint8Array.from(e.data),
      };
    case "RequestFailed":
      return { type: "failed", request_id: e.request_id, segment: aseg(e.segment), reason: e.reason, retry_after_s: e.retry_after_s };
    case "SessionClosed":
      return { type: "closed", code: e.code, by_remote: e.by_remote };
    default:
      throw new Error(`unknown event ${e.type}`);
  }
}

function expectedEvent(obj, blobs) {
  const out = { ...obj };
  if ("data" in out) out.data = pattern(out.data, blobs);
  return out;
}

function callSession(session, name, args, now, blobs) {
  switch (name) {
    case "start":
      return session.start({ now, have: (args.have || []).map(wseg), fetching: entries(args.fetching || []) });
    case "request":
      return session.request(wseg(args.segment), args.offset ?? 0, now);
    case "cancel":
      return session.cancel(args.request_id, now);
    case "respond":
      return session.respond(args.request_id, args.total_bytes);
    case "send_data":
      return session.sendData(args.request_id, args.offset, pattern(args.data, blobs));
    case "reject_absent":
      return session.rejectAbsent(args.request_id);
    case "reject_busy":
      return session.rejectBusy(args.request_id, args.retry_after_ms ?? 0);
    case "abort":
      return session.abort(args.request_id, args.reason);
    case "close":
      return session.close(args.code ?? 0, args.reason ?? "");
    case "transport_closed":
      return session.transportClosed();
    case "handle_timer":
      return session.handleTimer(now);
    case "announce_have":
      return session.announceHave(args.segments.map(wseg));
    case "announce_lost":
      return session.announceLost(args.segments.map(wseg));
    case "announce_fetching":
      return session.announceFetching(entries(args.entries));
    default:
      throw new Error(`unknown call ${name}`);
  }
}

function runSession(vector) {
  const blobs = makeBlobs(vector.blobs);
  const swarmId = fromHex(vector.swarm_id);
  const sessions = new Map();
  for (const [name, spec] of Object.entries(vector.sessions)) {
    const expected = spec.expected_peer_id;
    sessions.set(
      name,
      new PeerSession(
        sessionConfig(spec.config || {}),
        swarmId,
        fromHex(spec.peer_id),
        spec.created_at ?? 0,
        expected === undefined ? null : fromHex(expected),
      ),
    );
  }
  vector.steps.forEach((step, index) => {
    const now = step.now;
    const where = `step ${index} at ${now}`;
    if ("call" in step) {
      const session = sessions.get(step.on);
      if ("raises" in step) {
        assert.equal(step.raises, "UsageError");
        assert.throws(() => callSession(session, step.call, step.args || {}, now, blobs), UsageError, `${where}: ${step.call}`);
      } else {
        const result = callSession(session, step.call, step.args || {}, now, blobs);
        if ("returns" in step) assert.deepEqual(result, step.returns, `${where}: ${step.call} returned ${result}`);
      }
    } else if ("send" in step) {
      const frames = sessions.get(step.send).dataToSend(step.max_bytes ?? null);
      const got = frames.map((f) => decode(f));
      const want = step.messages.map((m) => messageFromJson(m, blobs));
      assert.deepEqual(got, want, `${where}: messages differ\n got: ${brief(got)}\n want: ${brief(want)}`);
      if (step.to !== null && step.to !== undefined) {
        for (const frame of frames) sessions.get(step.to).receiveData(frame, now);
      }
    } else if ("receive" in step) {
      sessions.get(step.on).receiveData(pattern(step.receive, blobs), now);
    } else {
      throw new Error(`${where}: a step needs call, send or receive`);
    }
    const expectedEvents = step.events || {};
    for (const name of Object.keys(expectedEvents)) assert.ok(sessions.has(name), `${where}: unknown session ${name}`);
    for (const [name, session] of sessions) {
      const got = [];
      for (let e = session.nextEvent(); e !== null; e = session.nextEvent()) got.push(eventJson(e));
      const want = (expectedEvents[name] || []).map((e) => expectedEvent(e, blobs));
      assert.deepEqual(got, want, `${where}: events of ${name} differ\n got: ${JSON.stringify(got.map(describe))}\n want: ${JSON.stringify(want.map(describe))}`);
    }
    for (const [name, state] of Object.entries(step.state || {})) {
      assert.equal(sessions.get(name).state, state, `${where}: ${name} state`);
    }
    for (const [name, timer] of Object.entries(step.timer || {})) {
      assert.equal(sessions.get(name).getTimer(), timer, `${where}: ${name} timer`);
    }
  });
}

const SESSION = vectorFiles("session");

test("there are session vectors", () => {
  assert.ok(SESSION.length >= 8, `${SESSION.length} files`);
});

for (const { name, vector } of SESSION) {
  test(`session vector ${name}`, () => runSession(vector));
}
