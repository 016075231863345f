// The JS PeerSession behaves like peer_agent/core/session.py: the key cases of
// tests/core/test_session.py, driven by hand (bytes moved between two sessions, time jumped).
import assert from "node:assert/strict";
import { test } from "node:test";

import { PeerSession, SessionState, sessionConfig } from "../../web_demo/session.js";
import { CloseCode, UsageError, encode } from "../../web_demo/wire.js";

const ascii = (s) => new TextEncoder().encode(s);
const SWARM = ascii("eee9c7aa1c39e94f9cd3");
const A_ID = ascii("-PH0001-aaaaaaaaaaaa");
const B_ID = ascii("-PH0001-bbbbbbbbbbbb");
const S = (sequence, rendition = 0) => ({ rendition, sequence });

function pair(configA = {}, configB = {}, { now = 0 } = {}) {
  const a = new PeerSession(sessionConfig(configA), SWARM, A_ID, now);
  const b = new PeerSession(sessionConfig(configB), SWARM, B_ID, now);
  a.start({ now });
  b.start({ now });
  return [a, b];
}

/** Move every queued message from `src` to `dst`; returns how many moved. */
function transfer(src, dst, now = 0, maxBytes = null) {
  const messages = src.dataToSend(maxBytes);
  for (const m of messages) dst.receiveData(m, now);
  return messages.length;
}

function roundtrip(a, b, now = 0) {
  while (transfer(a, b, now) + transfer(b, a, now) > 0);
}

function events(s) {
  const out = [];
  for (let e = s.nextEvent(); e !== null; e = s.nextEvent()) out.push(e);
  return out;
}

const types = (evs) => evs.map((e) => e.type);

function openPair(configA = {}, configB = {}) {
  const [a, b] = pair(configA, configB);
  roundtrip(a, b);
  events(a);
  events(b);
  return [a, b];
}

function segmentBytes(n) {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + 7) & 0xff;
  return out;
}

test("hello exchange opens both sides", () => {
  const a = new PeerSession(sessionConfig(), SWARM, A_ID, 0);
  const b = new PeerSession(sessionConfig(), SWARM, B_ID, 0);
  a.start({ now: 0, have: [S(3), S(4), S(5), S(9, 1)], fetching: [{ segment: S(6), expected_bytes: 1000 }] });
  b.start({ now: 0 });
  assert.equal(a.state, SessionState.AWAIT_HELLO);
  roundtrip(a, b);
  assert.equal(a.state, SessionState.OPEN);
  assert.equal(b.state, SessionState.OPEN);
  const [hello] = events(b);
  assert.equal(hello.type, "HelloReceived");
  assert.deepEqual(hello.peer_id, A_ID);
  assert.deepEqual(hello.have, [S(3), S(4), S(5), S(9, 1)]);
  assert.deepEqual(hello.fetching, [{ segment: S(6), expected_bytes: 1000 }]);
  assert.equal(hello.leech_only, false);
  assert.equal(a.getTimer(), null);
});

test("announcements become events", () => {
  const [a, b] = openPair();
  a.announceHave([S(1)]);
  a.announceFetching([{ segment: S(2), expected_bytes: 0 }]);
  a.announceLost([S(1)]);
  transfer(a, b);
  assert.deepEqual(types(events(b)), ["PeerHave", "PeerFetching", "PeerLost"]);
  const many = Array.from({ length: 1500 }, (_, i) => S(i));
  a.announceHave(many);
  assert.equal(transfer(a, b), 2); // split at 1024 ids per message
  assert.equal(events(b).reduce((n, e) => n + e.segments.length, 0), 1500);
});

for (const frameBytes of [65536, 16384]) {
  test(`2 MiB segment arrives identical (frames of ${frameBytes} bytes)`, () => {
    const [a, b] = openPair({ data_frame_bytes: frameBytes }, { data_frame_bytes: frameBytes });
    const data = segmentBytes(2 * 1024 * 1024);
    const id = a.request(S(7), 0, 0);
    transfer(a, b);
    const [req] = events(b);
    assert.deepEqual(req, { type: "SegmentRequested", request_id: id, segment: S(7), offset: 0 });
    assert.ok(b.respond(id, data.length));
    for (let at = 0; at < data.length; at += 100_000) b.sendData(id, at, data.subarray(at, at + 100_000));
    let frames = 0;
    for (;;) {
      const batch = b.dataToSend(256 * 1024);
      if (batch.length === 0) break;
      for (const m of batch) {
        assert.ok(m.length <= frameBytes);
        a.receiveData(m, 0.1);
        frames++;
      }
    }
    assert.ok(frames >= data.length / frameBytes);
    const evs = events(a);
    assert.equal(evs[0].type, "ResponseStarted");
    const done = evs.at(-1);
    assert.equal(done.type, "RequestCompleted");
    assert.equal(done.total_bytes, data.length);
    assert.deepEqual(done.data, data);
    assert.equal(b.inboundRequests, 0);
    assert.equal(b.stats.payload_bytes_sent, data.length);
    assert.equal(a.stats.payload_bytes_received, data.length);
  });
}

test("resume from an offset", () => {
  const [a, b] = openPair();
  const data = segmentBytes(10_000);
  const id = a.request(S(1), 4000, 0);
  transfer(a, b);
  assert.equal(events(b)[0].offset, 4000);
  b.respond(id, data.length);
  b.sendData(id, 4000, data.subarray(4000));
  transfer(b, a);
  const done = events(a).at(-1);
  assert.equal(done.type, "RequestCompleted");
  assert.equal(done.offset, 4000);
  assert.deepEqual(done.data, data.subarray(4000));
});

test("cut-through: data flows before the segment is complete", () => {
  const [a, b] = openPair();
  const id = a.request(S(1), 0, 0);
  transfer(a, b);
  events(b);
  b.respond(id, 3000);
  b.sendData(id, 0, segmentBytes(1000));
  transfer(b, a);
  assert.deepEqual(types(events(a)), ["ResponseStarted", "DataReceived"]);
  b.sendData(id, 1000, segmentBytes(2000).subarray(0, 2000));
  transfer(b, a);
  assert.deepEqual(types(events(a)), ["DataReceived", "RequestCompleted"]);
});

test("cancel mid-transfer drops late frames silently", () => {
  const [a, b] = openPair();
  const id = a.request(S(1), 0, 0);
  transfer(a, b);
  events(b);
  b.respond(id, 100_000);
  b.sendData(id, 0, segmentBytes(50_000));
  const inFlight = b.dataToSend(); // crossed our CANCEL
  assert.ok(a.cancel(id, 0.1));
  assert.equal(a.cancel(id, 0.1), false);
  for (const m of inFlight) a.receiveData(m, 0.1);
  assert.equal(a.state, SessionState.OPEN);
  assert.deepEqual(events(a), []);
  assert.equal(a.stats.late_frames_dropped, inFlight.length);
  transfer(a, b);
  assert.deepEqual(events(b), [{ type: "RequestCancelled", request_id: id }]);
  assert.equal(b.inboundRequests, 0);
  assert.equal(b.sendData(id, 50_000, segmentBytes(10)), false);
});

test("absent", () => {
  const [a, b] = openPair();
  const id = a.request(S(1), 0, 0);
  transfer(a, b);
  events(b);
  assert.ok(b.rejectAbsent(id));
  transfer(b, a);
  assert.deepEqual(events(a), [{ type: "RequestFailed", request_id: id, segment: S(1), reason: "absent", retry_after_s: null }]);
});

test("busy: explicit with a retry hint, and automatic over max_inbound_requests", () => {
  const [a, b] = openPair({}, { max_inbound_requests: 1 });
  const first = a.request(S(1), 0, 0);
  const second = a.request(S(2), 0, 0);
  transfer(a, b);
  assert.deepEqual(types(events(b)), ["SegmentRequested"]);
  b.rejectBusy(first, 1500);
  transfer(b, a);
  const evs = events(a);
  assert.deepEqual(evs.map((e) => [e.request_id, e.reason, e.retry_after_s]), [
    [second, "busy", 0.5],
    [first, "busy", 1.5],
  ]);
  assert.equal(b.stats.busy_sent, 2);
});

test("leech-only answers every request BUSY 65535", () => {
  const [a, b] = openPair({}, { leech_only: true });
  a.request(S(1), 0, 0);
  transfer(a, b);
  assert.deepEqual(events(b), []);
  transfer(b, a);
  assert.equal(events(a)[0].retry_after_s, 65.535);
});

test("abort mid-transfer", () => {
  const [a, b] = openPair();
  const id = a.request(S(1), 0, 0);
  transfer(a, b);
  events(b);
  b.respond(id, 5000);
  b.sendData(id, 0, segmentBytes(1000));
  transfer(b, a);
  b.abort(id, 1);
  transfer(b, a);
  assert.deepEqual(types(events(a)), ["ResponseStarted", "DataReceived", "RequestFailed"]);
});

test("request timeout without a response, then idle timeout after one", () => {
  const [a, b] = openPair();
  const id = a.request(S(1), 0, 10);
  assert.equal(a.getTimer(), 14); // request_timeout_s: 4 s
  a.handleTimer(13.9);
  assert.deepEqual(events(a), []);
  a.handleTimer(14);
  assert.deepEqual(events(a), [{ type: "RequestFailed", request_id: id, segment: S(1), reason: "timeout", retry_after_s: null }]);
  transfer(a, b, 14); // REQUEST then CANCEL
  assert.deepEqual(types(events(b)), ["SegmentRequested", "RequestCancelled"]);

  const id2 = a.request(S(2), 0, 20);
  transfer(a, b, 20);
  events(b);
  b.respond(id2, 1000);
  transfer(b, a, 20.5);
  assert.equal(a.getTimer(), 24.5);
  a.handleTimer(a.getTimer());
  assert.deepEqual(types(events(a)), ["ResponseStarted", "RequestFailed"]);
  assert.equal(a.state, SessionState.OPEN);
});

test("no HELLO in time closes with TIMEOUT", () => {
  const a = new PeerSession(sessionConfig(), SWARM, A_ID, 100);
  a.start({ now: 100 });
  assert.equal(a.getTimer(), 110);
  a.handleTimer(110);
  const [closed] = events(a);
  assert.equal(closed.type, "SessionClosed");
  assert.equal(closed.code, CloseCode.TIMEOUT);
  assert.equal(closed.by_remote, false);
  assert.equal(a.getTimer(), null);
});

test("version and swarm mismatch close with their codes", () => {
  const [a, b] = pair();
  b.dataToSend();
  const hello = encode({ type: "hello", version: 2, swarm_id: SWARM, peer_id: B_ID });
  a.receiveData(hello, 0);
  assert.equal(events(a).at(-1).code, CloseCode.VERSION_MISMATCH);

  const [c] = pair();
  const other = encode({ type: "hello", swarm_id: ascii("00000000000000000000"), peer_id: B_ID });
  c.receiveData(other, 0);
  assert.equal(events(c).at(-1).code, CloseCode.SWARM_MISMATCH);
  const sent = c.dataToSend();
  assert.equal(sent.at(-1)[0], 0x20); // CLOSE went out
});

test("a HELLO from another peer than signaling paired closes IDENTITY_MISMATCH", () => {
  const a = new PeerSession(sessionConfig(), SWARM, A_ID, 0, ascii("-PH0001-cccccccccccc"));
  const b = new PeerSession(sessionConfig(), SWARM, B_ID, 0);
  a.start({ now: 0 });
  b.start({ now: 0 });
  for (const m of b.dataToSend()) a.receiveData(m, 0);
  const closed = events(a).at(-1);
  assert.equal(closed.type, "SessionClosed");
  assert.equal(closed.code, CloseCode.IDENTITY_MISMATCH);
  assert.equal(CloseCode.IDENTITY_MISMATCH, 10);
  const ok = new PeerSession(sessionConfig(), SWARM, A_ID, 0, B_ID);
  ok.start({ now: 0 });
  const b2 = new PeerSession(sessionConfig(), SWARM, B_ID, 0);
  b2.start({ now: 0 });
  for (const m of b2.dataToSend()) ok.receiveData(m, 0);
  assert.equal(events(ok)[0].type, "HelloReceived");
  assert.throws(() => new PeerSession(sessionConfig(), SWARM, A_ID, 0, ascii("short")), /expectedPeerId/);
});

const GARBAGE = [
  ["undecodable bytes", new Uint8Array([0x7f]), CloseCode.PROTOCOL_ERROR],
  ["empty message", new Uint8Array(0), CloseCode.PROTOCOL_ERROR],
  ["oversize", new Uint8Array(65537).fill(0x12), CloseCode.LIMIT_EXCEEDED],
  ["text message", "hello", CloseCode.PROTOCOL_ERROR],
  ["second HELLO", encode({ type: "hello", swarm_id: SWARM, peer_id: B_ID }), CloseCode.STATE_VIOLATION],
  ["DATA for an unknown id", encode({ type: "data", request_id: 99, offset: 0, payload: new Uint8Array(3) }), CloseCode.STATE_VIOLATION],
  ["RESPONSE for an unknown id", encode({ type: "response", request_id: 99, total_bytes: 5 }), CloseCode.STATE_VIOLATION],
];

for (const [name, bytes, code] of GARBAGE) {
  test(`garbage closes with a code: ${name}`, () => {
    const [a, b] = openPair();
    a.request(S(1), 0, 0);
    a.receiveData(bytes, 1);
    const evs = events(a);
    assert.deepEqual(types(evs), ["RequestFailed", "SessionClosed"]);
    assert.equal(evs[0].reason, "closed");
    assert.equal(evs[1].code, code);
    assert.equal(a.state, SessionState.CLOSED);
    transfer(a, b); // REQUEST then CLOSE
    const remote = events(b).at(-1);
    assert.equal(remote.type, "SessionClosed");
    assert.equal(remote.code, code);
    assert.equal(remote.by_remote, true);
    a.receiveData(new Uint8Array([0x7f]), 2); // ignored once closed
    assert.deepEqual(events(a), []);
  });
}

test("DATA not at the expected offset and past total are state violations", () => {
  const [a, b] = openPair();
  const id = a.request(S(1), 0, 0);
  transfer(a, b);
  b.respond(id, 10);
  transfer(b, a);
  a.receiveData(encode({ type: "data", request_id: id, offset: 5, payload: new Uint8Array(2) }), 0);
  assert.equal(events(a).at(-1).code, CloseCode.STATE_VIOLATION);
});

test("a lost transport is the remote going away and sends nothing", () => {
  const [a] = openPair();
  a.request(S(1), 0, 0);
  a.dataToSend();
  a.transportClosed();
  assert.deepEqual(
    events(a).map((e) => [e.type, e.reason]),
    [
      ["RequestFailed", "closed"],
      ["SessionClosed", "transport closed"],
    ],
  );
  assert.deepEqual(a.dataToSend(), []);
});

test("close reason is truncated at a character boundary", () => {
  const [a, b] = openPair();
  a.close(CloseCode.NORMAL, "é".repeat(100));
  transfer(a, b);
  const closed = events(b).at(-1);
  assert.equal(closed.reason, "é".repeat(61));
});

test("dataToSend sends control first and respects the budget", () => {
  const [a, b] = openPair();
  const id = a.request(S(1), 0, 0);
  transfer(a, b);
  b.respond(id, 200_000);
  b.sendData(id, 0, segmentBytes(200_000));
  b.announceHave([S(5)]);
  const first = b.dataToSend(30_000);
  assert.equal(first[0][0], 0x11); // RESPONSE
  assert.equal(first[1][0], 0x02); // HAVE
  assert.ok(first.reduce((n, m) => n + m.length, 0) <= 30_000);
  let total = 0;
  for (const m of first) a.receiveData(m, 0);
  while (transfer(b, a, 0, 50_000) > 0) total++;
  assert.ok(total >= 4);
  assert.equal(events(a).at(-1).type, "RequestCompleted");
});

test("usage errors", () => {
  const a = new PeerSession(sessionConfig(), SWARM, A_ID, 0);
  assert.throws(() => a.request(S(1), 0, 0), UsageError);
  a.start();
  assert.throws(() => a.start(), UsageError);
  assert.throws(() => a.request(S(1), 0, 0), UsageError); // before the peer's HELLO
  assert.throws(() => sessionConfig({ hello_timeout_s: 0 }), UsageError);
  assert.throws(() => sessionConfig({ nope: 1 }), UsageError);
  a.close();
  assert.throws(() => a.announceHave([S(1)]), UsageError);
});
