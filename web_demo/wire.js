// Codec of the peer wire protocol v1 (docs/protocol.md) for browsers and Node 20. No deps.
//
//   encode(message) -> Uint8Array       throws UsageError for a message we should not build
//   decode(bytes)   -> message          throws WireError (with .code) for any invalid input
//
// Messages are plain objects whose `type` is the lowercase message name and whose fields carry
// the names of docs/protocol.md (snake_case, as in the JSON vectors): byte strings are
// Uint8Array, segment ids are {rendition, sequence}, HELLO `have` is a list of
// {rendition, first_sequence, count}, fetching entries are {segment, expected_bytes}.
// A decoded DATA payload is a view into the input bytes (no copy).
//
// Decoding order (same as peer_agent/core/wire.py, so both report the same code): empty ->
// truncated, > 65536 bytes -> oversize, unknown type byte -> unknown_type, then fields in order,
// each validated as it is read, then trailing_bytes.

export const PROTOCOL_VERSION = 1;
export const CHANNEL_LABEL = "p2p-hls/1";
export const SWARM_ID_BYTES = 20;
export const PEER_ID_BYTES = 20;
export const MAX_MESSAGE_BYTES = 65536;
export const DATA_HEADER_BYTES = 9;
export const MAX_DATA_PAYLOAD_BYTES = MAX_MESSAGE_BYTES - DATA_HEADER_BYTES;
// Our DATA messages by default (session data_frame_bytes): a relay forwards a frame only once it
// has arrived whole, so small frames let a segment flow through relays (docs/protocol.md §8).
export const DEFAULT_DATA_FRAME_BYTES = 16 * 1024;
export const MAX_HELLO_RANGES = 1024;
export const MAX_HELLO_HAVE_SEGMENTS = 16384;
export const MAX_FETCHING_ENTRIES = 256;
export const MAX_IDS_PER_MESSAGE = 1024;
export const MAX_SEGMENT_BYTES = 64 * 1024 * 1024;
export const MAX_REASON_BYTES = 123;
export const DEFAULT_MAX_CONCURRENT_REQUESTS = 8;
export const FLAG_LEECH_ONLY = 0x01;
const KNOWN_FLAGS = FLAG_LEECH_ONLY;
const MAX_U16 = 0xffff;
const MAX_U32 = 0xffffffff;

export const MessageType = Object.freeze({
  HELLO: 0x01,
  HAVE: 0x02,
  FETCHING: 0x03,
  LOST: 0x04,
  REQUEST: 0x10,
  RESPONSE: 0x11,
  DATA: 0x12,
  CANCEL: 0x13,
  ABSENT: 0x14,
  BUSY: 0x15,
  ABORT: 0x16,
  CLOSE: 0x20,
});

export const AbortReason = Object.freeze({
  UPSTREAM_FAILED: 1,
  EVICTED: 2,
  SHUTTING_DOWN: 3,
  INTERNAL: 4,
});

export const CloseCode = Object.freeze({
  NORMAL: 0,
  PROTOCOL_ERROR: 1,
  VERSION_MISMATCH: 2,
  SWARM_MISMATCH: 3,
  STATE_VIOLATION: 4,
  LIMIT_EXCEEDED: 5,
  INTEGRITY_FAILURE: 6,
  TIMEOUT: 7,
  GOING_AWAY: 8,
  BANNED: 9,
  IDENTITY_MISMATCH: 10,
});

export const WireErrorCode = Object.freeze({
  TRUNCATED: "truncated",
  UNKNOWN_TYPE: "unknown_type",
  TRAILING_BYTES: "trailing_bytes",
  OVERSIZE: "oversize",
  ZERO_LENGTH: "zero_length",
  OUT_OF_RANGE: "out_of_range",
  BAD_UTF8: "bad_utf8",
});

/** Bytes from a peer that are not a valid message. `code` is a WireErrorCode value. */
export class WireError extends Error {
  constructor(code, message) {
    super(`${code}: ${message}`);
    this.name = "WireError";
    this.code = code;
  }

  /** The close code a session answers this error with. */
  get closeCode() {
    return this.code === WireErrorCode.OVERSIZE ? CloseCode.LIMIT_EXCEEDED : CloseCode.PROTOCOL_ERROR;
  }
}

/** Our own code built an invalid message. */
export class UsageError extends Error {
  constructor(message) {
    super(message);
    this.name = "UsageError";
  }
}

const TYPE_NAMES = new Map(Object.entries(MessageType).map(([name, value]) => [value, name]));
const utf8Decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const utf8Encoder = new TextEncoder();

// --- decoding ----------------------------------------------------------------------------------

class Reader {
  constructor(bytes, name) {
    this.bytes = bytes;
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.pos = 1;
    this.name = name;
  }

  need(size, what) {
    if (this.pos + size > this.bytes.length) {
      throw new WireError(
        WireErrorCode.TRUNCATED,
        `${this.name}: ${what} needs ${size} bytes at offset ${this.pos}, ` +
          `${this.bytes.length - this.pos} left`,
      );
    }
    const at = this.pos;
    this.pos += size;
    return at;
  }

  u8(what) {
    return this.view.getUint8(this.need(1, what));
  }

  u16(what) {
    return this.view.getUint16(this.need(2, what));
  }

  u32(what) {
    return this.view.getUint32(this.need(4, what));
  }

  raw(size, what) {
    const at = this.need(size, what);
    return this.bytes.slice(at, at + size);
  }

  segment() {
    const at = this.need(6, "segment id");
    return { rendition: this.view.getUint16(at), sequence: this.view.getUint32(at + 2) };
  }

  count(what, low, high) {
    const n = this.u16(what);
    if (n < low || n > high) {
      throw new WireError(WireErrorCode.OUT_OF_RANGE, `${this.name}: ${what}=${n}, allowed ${low}..${high}`);
    }
    return n;
  }

  fetchingEntries(n) {
    const entries = [];
    for (let i = 0; i < n; i++) {
      const at = this.need(10, "fetching entry");
      const segment = { rendition: this.view.getUint16(at), sequence: this.view.getUint32(at + 2) };
      const expected = this.view.getUint32(at + 6);
      if (expected > MAX_SEGMENT_BYTES) {
        throw new WireError(WireErrorCode.OUT_OF_RANGE, `${this.name}: expected_bytes=${expected} exceeds the max`);
      }
      entries.push({ segment, expected_bytes: expected });
    }
    return entries;
  }

  finish() {
    const extra = this.bytes.length - this.pos;
    if (extra) {
      throw new WireError(WireErrorCode.TRAILING_BYTES, `${this.name}: ${extra} bytes after the last field`);
    }
  }
}

function outOfRange(message) {
  return new WireError(WireErrorCode.OUT_OF_RANGE, message);
}

function decodeHello(r) {
  const version = r.u8("version");
  if (version === 0) throw outOfRange("HELLO: version 0 is reserved");
  const swarm_id = r.raw(SWARM_ID_BYTES, "swarm_id");
  const peer_id = r.raw(PEER_ID_BYTES, "peer_id");
  const flags = r.u8("flags");
  if (flags & ~KNOWN_FLAGS) throw outOfRange(`HELLO: reserved flag bits set in ${flags}`);
  const n = r.count("have_range_count", 0, MAX_HELLO_RANGES);
  const have = [];
  let covered = 0;
  for (let i = 0; i < n; i++) {
    const at = r.need(8, "range");
    const rendition = r.view.getUint16(at);
    const first_sequence = r.view.getUint32(at + 2);
    const count = r.view.getUint16(at + 6);
    if (count === 0) throw outOfRange("HELLO: range with count 0");
    if (first_sequence + count - 1 > MAX_U32) throw outOfRange("HELLO: range runs past sequence 0xFFFFFFFF");
    covered += count;
    if (covered > MAX_HELLO_HAVE_SEGMENTS) {
      throw outOfRange(`HELLO: ranges cover more than ${MAX_HELLO_HAVE_SEGMENTS} segments`);
    }
    have.push({ rendition, first_sequence, count });
  }
  const m = r.count("fetching_count", 0, MAX_FETCHING_ENTRIES);
  const fetching = r.fetchingEntries(m);
  r.finish();
  return { type: "hello", version, swarm_id, peer_id, flags, have, fetching };
}

function decodeSegments(r, type) {
  const n = r.count("count", 1, MAX_IDS_PER_MESSAGE);
  const segments = [];
  for (let i = 0; i < n; i++) segments.push(r.segment());
  r.finish();
  return { type, segments };
}

function decodeFetching(r) {
  const n = r.count("count", 1, MAX_IDS_PER_MESSAGE);
  const entries = r.fetchingEntries(n);
  r.finish();
  return { type: "fetching", entries };
}

function decodeRequest(r) {
  const request_id = r.u32("request_id");
  const segment = r.segment();
  const offset = r.u32("offset");
  if (offset >= MAX_SEGMENT_BYTES) throw outOfRange(`REQUEST: offset=${offset} is past the max size`);
  r.finish();
  return { type: "request", request_id, segment, offset };
}

function decodeResponse(r) {
  const request_id = r.u32("request_id");
  const total_bytes = r.u32("total_bytes");
  if (total_bytes === 0) {
    throw new WireError(WireErrorCode.ZERO_LENGTH, "RESPONSE: total_bytes=0 (zero-length segment)");
  }
  if (total_bytes > MAX_SEGMENT_BYTES) throw outOfRange(`RESPONSE: total_bytes=${total_bytes} exceeds the max`);
  r.finish();
  return { type: "response", request_id, total_bytes };
}

function decodeIdOnly(type) {
  return (r) => {
    const request_id = r.u32("request_id");
    r.finish();
    return { type, request_id };
  };
}

function decodeBusy(r) {
  const request_id = r.u32("request_id");
  const retry_after_ms = r.u16("retry_after_ms");
  r.finish();
  return { type: "busy", request_id, retry_after_ms };
}

function decodeAbort(r) {
  const request_id = r.u32("request_id");
  const reason = r.u8("reason");
  if (reason < AbortReason.UPSTREAM_FAILED || reason > AbortReason.INTERNAL) {
    throw outOfRange(`ABORT: unknown reason ${reason}`);
  }
  r.finish();
  return { type: "abort", request_id, reason };
}

function decodeClose(r) {
  const code = r.u16("code");
  const size = r.u8("reason_len");
  if (size > MAX_REASON_BYTES) throw outOfRange(`CLOSE: reason_len=${size} > ${MAX_REASON_BYTES}`);
  const raw = r.raw(size, "reason");
  let reason;
  try {
    reason = utf8Decoder.decode(raw);
  } catch {
    throw new WireError(WireErrorCode.BAD_UTF8, "CLOSE: reason is not UTF-8");
  }
  r.finish();
  return { type: "close", code, reason };
}

const DECODERS = new Map([
  [MessageType.HELLO, decodeHello],
  [MessageType.HAVE, (r) => decodeSegments(r, "have")],
  [MessageType.FETCHING, decodeFetching],
  [MessageType.LOST, (r) => decodeSegments(r, "lost")],
  [MessageType.REQUEST, decodeRequest],
  [MessageType.RESPONSE, decodeResponse],
  [MessageType.CANCEL, decodeIdOnly("cancel")],
  [MessageType.ABSENT, decodeIdOnly("absent")],
  [MessageType.BUSY, decodeBusy],
  [MessageType.ABORT, decodeAbort],
  [MessageType.CLOSE, decodeClose],
]);

function decodeData(bytes) {
  const size = bytes.length;
  if (size < DATA_HEADER_BYTES) {
    throw new WireError(WireErrorCode.TRUNCATED, `DATA: header needs 9 bytes, got ${size}`);
  }
  const payloadBytes = size - DATA_HEADER_BYTES;
  if (payloadBytes === 0) throw new WireError(WireErrorCode.ZERO_LENGTH, "DATA: empty payload");
  const view = new DataView(bytes.buffer, bytes.byteOffset, DATA_HEADER_BYTES);
  const request_id = view.getUint32(1);
  const offset = view.getUint32(5);
  if (offset + payloadBytes > MAX_SEGMENT_BYTES) {
    throw outOfRange(`DATA: [${offset}, ${offset + payloadBytes}) is past ${MAX_SEGMENT_BYTES} bytes`);
  }
  return { type: "data", request_id, offset, payload: bytes.subarray(DATA_HEADER_BYTES) };
}

/** Decode one data-channel message (Uint8Array or ArrayBuffer); throws WireError. */
export function decode(data) {
  const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
  const size = bytes.length;
  if (size === 0) throw new WireError(WireErrorCode.TRUNCATED, "empty message");
  if (size > MAX_MESSAGE_BYTES) {
    throw new WireError(WireErrorCode.OVERSIZE, `message is ${size} bytes, max ${MAX_MESSAGE_BYTES}`);
  }
  const typeByte = bytes[0];
  if (typeByte === MessageType.DATA) return decodeData(bytes);
  const decoder = DECODERS.get(typeByte);
  if (decoder === undefined) {
    throw new WireError(WireErrorCode.UNKNOWN_TYPE, `unknown message type 0x${typeByte.toString(16)}`);
  }
  return decoder(new Reader(bytes, TYPE_NAMES.get(typeByte)));
}

// --- encoding ----------------------------------------------------------------------------------

function checkInt(name, value, low, high) {
  if (!Number.isInteger(value) || value < low || value > high) {
    throw new UsageError(`${name}=${value} is outside [${low}, ${high}]`);
  }
}

function checkSegment(name, segment) {
  checkInt(`${name}.rendition`, segment?.rendition, 0, MAX_U16);
  checkInt(`${name}.sequence`, segment?.sequence, 0, MAX_U32);
}

function checkCount(name, list, low, high) {
  if (!Array.isArray(list) || list.length < low || list.length > high) {
    throw new UsageError(`${name} must be a list of ${low}..${high} entries`);
  }
}

function checkBytes(name, value, size) {
  if (!(value instanceof Uint8Array) || value.length !== size) {
    throw new UsageError(`${name} must be a Uint8Array of ${size} bytes`);
  }
}

class Writer {
  constructor(size, type) {
    this.bytes = new Uint8Array(size);
    this.view = new DataView(this.bytes.buffer);
    this.pos = 0;
    this.u8(type);
  }

  u8(v) {
    this.view.setUint8(this.pos, v);
    this.pos += 1;
  }

  u16(v) {
    this.view.setUint16(this.pos, v);
    this.pos += 2;
  }

  u32(v) {
    this.view.setUint32(this.pos, v);
    this.pos += 4;
  }

  raw(b) {
    this.bytes.set(b, this.pos);
    this.pos += b.length;
  }

  segment(s) {
    this.u16(s.rendition);
    this.u32(s.sequence);
  }
}

function checkFetching(name, entries) {
  entries.forEach((e, i) => {
    checkSegment(`${name}[${i}].segment`, e.segment);
    checkInt(`${name}[${i}].expected_bytes`, e.expected_bytes, 0, MAX_SEGMENT_BYTES);
  });
}

function encodeHello(m) {
  const version = m.version ?? PROTOCOL_VERSION;
  const flags = m.flags ?? 0;
  const have = m.have ?? [];
  const fetching = m.fetching ?? [];
  checkInt("version", version, 1, 0xff);
  checkBytes("swarm_id", m.swarm_id, SWARM_ID_BYTES);
  checkBytes("peer_id", m.peer_id, PEER_ID_BYTES);
  checkInt("flags", flags, 0, KNOWN_FLAGS);
  checkCount("have", have, 0, MAX_HELLO_RANGES);
  checkCount("fetching", fetching, 0, MAX_FETCHING_ENTRIES);
  let covered = 0;
  have.forEach((r, i) => {
    checkInt(`have[${i}].rendition`, r.rendition, 0, MAX_U16);
    checkInt(`have[${i}].first_sequence`, r.first_sequence, 0, MAX_U32);
    checkInt(`have[${i}].count`, r.count, 1, MAX_U16);
    if (r.first_sequence + r.count - 1 > MAX_U32) throw new UsageError(`have[${i}] runs past 0xFFFFFFFF`);
    covered += r.count;
  });
  if (covered > MAX_HELLO_HAVE_SEGMENTS) throw new UsageError(`have covers ${covered} segments`);
  checkFetching("fetching", fetching);
  const w = new Writer(47 + 8 * have.length + 10 * fetching.length, MessageType.HELLO);
  w.u8(version);
  w.raw(m.swarm_id);
  w.raw(m.peer_id);
  w.u8(flags);
  w.u16(have.length);
  for (const r of have) {
    w.u16(r.rendition);
    w.u32(r.first_sequence);
    w.u16(r.count);
  }
  w.u16(fetching.length);
  for (const e of fetching) {
    w.segment(e.segment);
    w.u32(e.expected_bytes);
  }
  return w.bytes;
}

function encodeSegments(type, segments) {
  checkCount("segments", segments, 1, MAX_IDS_PER_MESSAGE);
  segments.forEach((s, i) => checkSegment(`segments[${i}]`, s));
  const w = new Writer(3 + 6 * segments.length, type);
  w.u16(segments.length);
  for (const s of segments) w.segment(s);
  return w.bytes;
}

/** Encode a DATA message from its parts (the hot path: one copy of the payload). */
export function encodeData(request_id, offset, payload) {
  if (!(payload instanceof Uint8Array)) throw new UsageError("payload must be a Uint8Array");
  const size = payload.length;
  if (size < 1 || size > MAX_DATA_PAYLOAD_BYTES) {
    throw new UsageError(`DATA payload is ${size} bytes, allowed 1..${MAX_DATA_PAYLOAD_BYTES}`);
  }
  checkInt("request_id", request_id, 0, MAX_U32);
  checkInt("offset", offset, 0, MAX_SEGMENT_BYTES - size);
  const out = new Uint8Array(DATA_HEADER_BYTES + size);
  const view = new DataView(out.buffer);
  view.setUint8(0, MessageType.DATA);
  view.setUint32(1, request_id);
  view.setUint32(5, offset);
  out.set(payload, DATA_HEADER_BYTES);
  return out;
}

/** Encode one message; throws UsageError if it breaks a rule of the spec. */
export function encode(m) {
  switch (m?.type) {
    case "data":
      return encodeData(m.request_id, m.offset, m.payload);
    case "hello":
      return encodeHello(m);
    case "have":
      return encodeSegments(MessageType.HAVE, m.segments);
    case "lost":
      return encodeSegments(MessageType.LOST, m.segments);
    case "fetching": {
      checkCount("entries", m.entries, 1, MAX_IDS_PER_MESSAGE);
      checkFetching("entries", m.entries);
      const w = new Writer(3 + 10 * m.entries.length, MessageType.FETCHING);
      w.u16(m.entries.length);
      for (const e of m.entries) {
        w.segment(e.segment);
        w.u32(e.expected_bytes);
      }
      return w.bytes;
    }
    case "close": {
      checkInt("code", m.code, 0, MAX_U16);
      const reason = utf8Encoder.encode(m.reason ?? "");
      if (reason.length > MAX_REASON_BYTES) throw new UsageError(`reason is ${reason.length} bytes in UTF-8`);
      const w = new Writer(4 + reason.length, MessageType.CLOSE);
      w.u16(m.code);
      w.u8(reason.length);
      w.raw(reason);
      return w.bytes;
    }
    case "request": {
      checkInt("request_id", m.request_id, 0, MAX_U32);
      checkSegment("segment", m.segment);
      const offset = m.offset ?? 0;
      checkInt("offset", offset, 0, MAX_SEGMENT_BYTES - 1);
      const w = new Writer(15, MessageType.REQUEST);
      w.u32(m.request_id);
      w.segment(m.segment);
      w.u32(offset);
      return w.bytes;
    }
    case "response": {
      checkInt("request_id", m.request_id, 0, MAX_U32);
      checkInt("total_bytes", m.total_bytes, 1, MAX_SEGMENT_BYTES);
      const w = new Writer(9, MessageType.RESPONSE);
      w.u32(m.request_id);
      w.u32(m.total_bytes);
      return w.bytes;
    }
    case "cancel":
    case "absent": {
      checkInt("request_id", m.request_id, 0, MAX_U32);
      const w = new Writer(5, m.type === "cancel" ? MessageType.CANCEL : MessageType.ABSENT);
      w.u32(m.request_id);
      return w.bytes;
    }
    case "busy": {
      checkInt("request_id", m.request_id, 0, MAX_U32);
      checkInt("retry_after_ms", m.retry_after_ms, 0, MAX_U16);
      const w = new Writer(7, MessageType.BUSY);
      w.u32(m.request_id);
      w.u16(m.retry_after_ms);
      return w.bytes;
    }
    case "abort": {
      checkInt("request_id", m.request_id, 0, MAX_U32);
      checkInt("reason", m.reason, AbortReason.UPSTREAM_FAILED, AbortReason.INTERNAL);
      const w = new Writer(6, MessageType.ABORT);
      w.u32(m.request_id);
      w.u8(m.reason);
      return w.bytes;
    }
    default:
      throw new UsageError(`not a protocol message: ${JSON.stringify(m?.type)}`);
  }
}
