// The shared vectors of docs/vectors/wire/ are the contract of the browser codec too.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import {
  CloseCode,
  MAX_DATA_PAYLOAD_BYTES,
  MAX_MESSAGE_BYTES,
  UsageError,
  WireError,
  WireErrorCode,
  decode,
  encode,
  encodeData,
} from "../../web_demo/wire.js";

const VECTORS = new URL("../../docs/vectors/wire/", import.meta.url);
const load = (name) => JSON.parse(readFileSync(new URL(name, VECTORS), "utf8"));
const VALID = load("valid.json");
const INVALID = load("invalid.json");

function fromHex(hex) {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function repeat(spec) {
  return new Uint8Array(spec.count).fill(parseInt(spec.byte, 16));
}

function vectorBytes(vector) {
  const head = fromHex(vector.hex);
  if (!vector.hex_repeat) return head;
  const tail = repeat(vector.hex_repeat);
  const out = new Uint8Array(head.length + tail.length);
  out.set(head);
  out.set(tail, head.length);
  return out;
}

// The JSON form of docs/protocol.md §11 -> the codec's message objects (hex -> Uint8Array).
function messageFromJson(obj) {
  switch (obj.type) {
    case "hello":
      return { ...obj, swarm_id: fromHex(obj.swarm_id), peer_id: fromHex(obj.peer_id) };
    case "data": {
      const { payload_repeat: rep, payload, ...rest } = obj;
      return { ...rest, payload: rep ? repeat(rep) : fromHex(payload) };
    }
    default:
      return obj;
  }
}

const expectWireError = (fn, code) =>
  assert.throws(fn, (err) => {
    assert.ok(err instanceof WireError, `expected WireError, got ${err}`);
    if (code !== undefined) assert.equal(err.code, code);
    return true;
  });

test("vector names are unique and cover every type and error code", () => {
  const names = [...VALID, ...INVALID].map((v) => v.name);
  assert.equal(new Set(names).size, names.length);
  const types = new Set(VALID.map((v) => v.message.type));
  assert.deepEqual(
    [...types].sort(),
    ["abort", "absent", "busy", "cancel", "close", "data", "fetching", "have", "hello", "lost",
      "request", "response"],
  );
  assert.deepEqual(
    [...new Set(INVALID.map((v) => v.error))].sort(),
    Object.values(WireErrorCode).sort(),
  );
});

for (const vector of VALID) {
  test(`valid ${vector.name}: decodes to its fields`, () => {
    assert.deepEqual(decode(vectorBytes(vector)), messageFromJson(vector.message));
  });

  test(`valid ${vector.name}: encodes to its bytes`, () => {
    assert.equal(toHex(encode(messageFromJson(vector.message))), toHex(vectorBytes(vector)));
  });

  test(`valid ${vector.name}: every truncated prefix throws WireError`, () => {
    const raw = vectorBytes(vector);
    // A DATA prefix that keeps >= 1 payload byte is itself a valid, shorter DATA message.
    const stop = raw[0] === 0x12 ? 10 : raw.length;
    for (let cut = 0; cut < stop; cut++) expectWireError(() => decode(raw.subarray(0, cut)));
  });
}

for (const vector of INVALID) {
  test(`invalid ${vector.name}: throws ${vector.error}`, () => {
    expectWireError(() => decode(vectorBytes(vector)), vector.error);
  });
}

test("decode accepts an ArrayBuffer and a Uint8Array view at an offset", () => {
  const raw = encode({ type: "busy", request_id: 7, retry_after_ms: 300 });
  const padded = new Uint8Array(raw.length + 3);
  padded.set(raw, 3);
  const expected = { type: "busy", request_id: 7, retry_after_ms: 300 };
  assert.deepEqual(decode(padded.subarray(3)), expected);
  assert.deepEqual(decode(raw.buffer), expected);
});

test("random bytes only ever throw WireError", () => {
  let seed = 12345;
  const next = () => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed;
  };
  const types = [0x01, 0x02, 0x03, 0x04, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x20, 0x00, 0xff];
  for (let i = 0; i < 5000; i++) {
    const bytes = new Uint8Array(next() % 64);
    for (let j = 0; j < bytes.length; j++) bytes[j] = next() & 0xff;
    if (bytes.length) bytes[0] = types[next() % types.length];
    try {
      const message = decode(bytes);
      assert.equal(toHex(encode(message)), toHex(bytes));
    } catch (err) {
      assert.ok(err instanceof WireError, `${toHex(bytes)}: ${err}`);
    }
  }
});

test("encode rejects invalid messages with UsageError", () => {
  const peer = new Uint8Array(20);
  const bad = [
    { type: "have", segments: [] },
    { type: "have", segments: [{ rendition: 0x10000, sequence: 0 }] },
    { type: "response", request_id: 1, total_bytes: 0 },
    { type: "data", request_id: 1, offset: 0, payload: new Uint8Array(0) },
    { type: "data", request_id: 1, offset: 0, payload: new Uint8Array(MAX_DATA_PAYLOAD_BYTES + 1) },
    { type: "abort", request_id: 1, reason: 5 },
    { type: "close", code: 0, reason: "x".repeat(124) },
    { type: "hello", swarm_id: new Uint8Array(3), peer_id: peer },
    { type: "hello", swarm_id: peer, peer_id: peer, flags: 2 },
    { type: "nope" },
  ];
  for (const message of bad) assert.throws(() => encode(message), UsageError, JSON.stringify(message));
});

test("a max-size DATA fills a max-size message; oversize maps to LIMIT_EXCEEDED", () => {
  const frame = encodeData(1, 0, new Uint8Array(MAX_DATA_PAYLOAD_BYTES));
  assert.equal(frame.length, MAX_MESSAGE_BYTES);
  try {
    decode(new Uint8Array(MAX_MESSAGE_BYTES + 1).fill(0x12));
    assert.fail("no error");
  } catch (err) {
    assert.equal(err.closeCode, CloseCode.LIMIT_EXCEEDED);
  }
});
