// Sans-I/O state machine of one peer wire session (docs/protocol.md §6–§8), for browsers and
// Node 20. Same behaviour as peer_agent/core/session.py.
//
// A PeerSession never touches a channel, a timer or a clock. Inputs are method calls (start,
// receiveData, handleTimer, request, cancel, announce*, respond, sendData, reject*, abort, close,
// transportClosed); outputs are pulled: dataToSend(maxBytes) (one Uint8Array per data-channel
// message), getTimer() (when to call handleTimer; null: none) and nextEvent().
//
// Whatever a peer sends, receiveData does not throw: bad bytes and broken rules close the session
// with the right code and report a SessionClosed event. Our own mistakes throw UsageError.
//
// Events are frozen plain objects whose `type` is the Python event class name:
//   HelloReceived {peer_id (Uint8Array), flags, leech_only, have: [seg], fetching: [entry]}
//   PeerHave {segments}  PeerFetching {entries}  PeerLost {segments}
//   SegmentRequested {request_id, segment, offset}  RequestCancelled {request_id}
//   ResponseStarted {request_id, segment, total_bytes, offset}
//   DataReceived {request_id, segment, offset, data}
//   RequestCompleted {request_id, segment, offset, total_bytes, data}
//   RequestFailed {request_id, segment, reason, retry_after_s}
//   SessionClosed {code, reason, by_remote}
// Segments are {rendition, sequence}; fetching entries {segment, expected_bytes}.

import {
  AbortReason,
  CloseCode,
  DATA_HEADER_BYTES,
  DEFAULT_DATA_FRAME_BYTES,
  FLAG_LEECH_ONLY,
  MAX_IDS_PER_MESSAGE,
  MAX_MESSAGE_BYTES,
  MAX_REASON_BYTES,
  MAX_SEGMENT_BYTES,
  MessageType,
  PEER_ID_BYTES,
  PROTOCOL_VERSION,
  SWARM_ID_BYTES,
  UsageError,
  WireError,
  decode,
  encode,
} from "./wire.js";

export const LEECH_ONLY_RETRY_AFTER_MS = 0xffff;
const MAX_U16 = 0xffff;
const MAX_U32 = 0xffffffff;

/** Every option with its default (docs/protocol.md §8). */
export const DEFAULT_SESSION_CONFIG = Object.freeze({
  hello_timeout_s: 10.0,
  request_timeout_s: 4.0, // a backstop behind the scheduler's round-trip-aware stall timeout
  idle_data_timeout_s: 4.0,
  max_message_bytes: MAX_MESSAGE_BYTES,
  data_frame_bytes: DEFAULT_DATA_FRAME_BYTES,
  max_inbound_requests: 8,
  max_outbound_requests: 8,
  recently_cancelled_keep: 64,
  busy_retry_after_ms: 500,
  leech_only: false,
});

export function sessionConfig(overrides = {}) {
  for (const key of Object.keys(overrides)) {
    if (!(key in DEFAULT_SESSION_CONFIG)) throw new UsageError(`unknown session option ${key}`);
  }
  const c = { ...DEFAULT_SESSION_CONFIG, ...overrides };
  for (const name of ["hello_timeout_s", "request_timeout_s", "idle_data_timeout_s"]) {
    if (!(c[name] > 0)) throw new UsageError(`${name} must be > 0`);
  }
  if (!(DATA_HEADER_BYTES < c.max_message_bytes && c.max_message_bytes <= MAX_MESSAGE_BYTES)) {
    throw new UsageError(`max_message_bytes must be in 10..${MAX_MESSAGE_BYTES}`);
  }
  if (!(DATA_HEADER_BYTES < c.data_frame_bytes && c.data_frame_bytes <= c.max_message_bytes)) {
    throw new UsageError("data_frame_bytes must be in 10..max_message_bytes");
  }
  for (const name of ["max_inbound_requests", "max_outbound_requests", "recently_cancelled_keep"]) {
    if (!(c[name] >= 1)) throw new UsageError(`${name} must be >= 1`);
  }
  if (!(c.busy_retry_after_ms >= 0 && c.busy_retry_after_ms <= MAX_U16)) {
    throw new UsageError("busy_retry_after_ms must be a u16");
  }
  return Object.freeze(c);
}

export const SessionState = Object.freeze({
  AWAIT_HELLO: "await_hello",
  OPEN: "open",
  CLOSED: "closed",
});

/** A valid message at the wrong time (internal: becomes a CLOSE). */
class ProtocolViolation extends Error {
  constructor(closeCode, message) {
    super(message);
    this.closeCode = closeCode;
  }
}

const CLOSE_NAMES = new Map(Object.entries(CloseCode).map(([name, value]) => [value, name]));
const ev = (type, fields) => Object.freeze({ type, ...fields });
const seg = (s) => Object.freeze({ rendition: s.rendition, sequence: s.sequence });

/** Compress segment ids into the fewest ranges (sorted, duplicates merged), like wire.py. */
export function rangesFromSegments(segments) {
  const unique = new Map();
  for (const s of segments) unique.set(`${s.rendition}/${s.sequence}`, s);
  const sorted = [...unique.values()].sort((a, b) =>
    a.rendition !== b.rendition ? a.rendition - b.rendition : a.sequence - b.sequence,
  );
  const out = [];
  for (const { rendition, sequence } of sorted) {
    const last = out[out.length - 1];
    if (
      last &&
      last.rendition === rendition &&
      last.first_sequence + last.count === sequence &&
      last.count < MAX_U16
    ) {
      last.count += 1;
    } else {
      out.push({ rendition, first_sequence: sequence, count: 1 });
    }
  }
  return out;
}

/** Truncate a close reason at a character boundary to fit MAX_REASON_BYTES of UTF-8. */
function fitReason(reason) {
  const encoder = new TextEncoder();
  const chars = [...String(reason)];
  while (encoder.encode(chars.join("")).length > MAX_REASON_BYTES) chars.pop();
  return chars.join("");
}

function concat(chunks, total) {
  if (chunks.length === 1) return chunks[0];
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

export class PeerSession {
  /**
   * @param config from sessionConfig()
   * @param swarmId Uint8Array(20): the 20 ASCII bytes of the swarm id
   * @param localPeerId Uint8Array(20)
   * @param now monotonic seconds
   */
  constructor(config, swarmId, localPeerId, now, expectedPeerId = null) {
    if (swarmId?.length !== SWARM_ID_BYTES || localPeerId?.length !== PEER_ID_BYTES) {
      throw new UsageError("swarmId and localPeerId must be 20 bytes each");
    }
    if (expectedPeerId !== null && expectedPeerId?.length !== PEER_ID_BYTES) {
      throw new UsageError("expectedPeerId must be 20 bytes");
    }
    // The peer_id signaling paired us with: a HELLO with another closes IDENTITY_MISMATCH.
    this.expectedPeerId = expectedPeerId === null ? null : Uint8Array.from(expectedPeerId);
    this.config = config;
    this.swarmId = Uint8Array.from(swarmId);
    this.localPeerId = Uint8Array.from(localPeerId);
    this.stats = {
      messages_sent: 0,
      messages_received: 0,
      bytes_sent: 0,
      bytes_received: 0,
      payload_bytes_sent: 0,
      payload_bytes_received: 0,
      late_frames_dropped: 0,
      busy_sent: 0,
      errors_by_code: {},
    };
    this.remotePeerId = null;
    this.remoteFlags = 0;
    this._state = SessionState.AWAIT_HELLO;
    this._started = false;
    this._helloDeadline = now + config.hello_timeout_s;
    this._control = [];
    this._events = [];
    this._outbound = new Map(); // our request id -> {segment, offset, deadline, total, next, chunks}
    this._inbound = new Map(); // peer's request id -> {segment, offset, total, queued, sent, pending}
    this._roundRobin = [];
    this._cancelled = [];
    this._cancelledSet = new Set();
    this._nextRequestId = 1;
    this._framePayloadBytes = config.data_frame_bytes - DATA_HEADER_BYTES;
  }

  // --- state ----------------------------------------------------------------------------------

  get state() {
    return this._state;
  }
  get isClosed() {
    return this._state === SessionState.CLOSED;
  }
  get remoteLeechOnly() {
    return Boolean(this.remoteFlags & FLAG_LEECH_ONLY);
  }
  get outboundRequests() {
    return this._outbound.size;
  }
  get inboundRequests() {
    return this._inbound.size;
  }
  get canRequest() {
    return this._state === SessionState.OPEN && this._outbound.size < this.config.max_outbound_requests;
  }

  _requireStarted() {
    if (!this._started) throw new UsageError("call start() first");
    if (this._state === SessionState.CLOSED) throw new UsageError("the session is closed");
  }

  _queue(message) {
    this._control.push(encode(message));
  }

  _countError(code) {
    this.stats.errors_by_code[code] = (this.stats.errors_by_code[code] || 0) + 1;
  }

  // --- local inputs ---------------------------------------------------------------------------

  /** Queue our HELLO with our full availability (have: segments, fetching: entries). */
  start({ now = 0, have = [], fetching = [] } = {}) {
    if (this._started) throw new UsageError("start() called twice");
    if (this._state === SessionState.CLOSED) throw new UsageError("the session is closed");
    void now;
    this._queue({
      type: "hello",
      swarm_id: this.swarmId,
      peer_id: this.localPeerId,
      flags: this.config.leech_only ? FLAG_LEECH_ONLY : 0,
      have: rangesFromSegments(have),
      fetching: fetching.map((e) => ({ segment: seg(e.segment), expected_bytes: e.expected_bytes })),
    });
    this._started = true;
  }

  /** Ask the peer for `segment` from `offset`; returns the request id. */
  request(segment, offset, now) {
    this._requireStarted();
    if (this._state !== SessionState.OPEN) throw new UsageError("no request before the peer's HELLO");
    if (this._outbound.size >= this.config.max_outbound_requests) {
      throw new UsageError(`${this._outbound.size} requests already in flight`);
    }
    const { rendition, sequence } = segment;
    if (!(Number.isInteger(rendition) && rendition >= 0 && rendition <= MAX_U16)) {
      throw new UsageError(`invalid segment id ${JSON.stringify(segment)}`);
    }
    if (!(Number.isInteger(sequence) && sequence >= 0 && sequence <= MAX_U32)) {
      throw new UsageError(`invalid segment id ${JSON.stringify(segment)}`);
    }
    if (!(Number.isInteger(offset) && offset >= 0 && offset < MAX_SEGMENT_BYTES)) {
      throw new UsageError(`offset ${offset} out of range`);
    }
    const requestId = this._allocateRequestId();
    this._outbound.set(requestId, {
      segment: seg(segment),
      offset,
      deadline: now + this.config.request_timeout_s,
      total: null,
      next: offset,
      chunks: [],
      received: 0,
    });
    this._queue({ type: "request", request_id: requestId, segment: seg(segment), offset });
    return requestId;
  }

  _allocateRequestId() {
    for (;;) {
      const id = this._nextRequestId;
      this._nextRequestId = (id + 1) % 0x100000000;
      if (!this._outbound.has(id) && !this._cancelledSet.has(id)) return id;
    }
  }

  /** Cancel our request; false if it is not in flight (finished, failed or closed). */
  cancel(requestId, now) {
    void now;
    if (this._state === SessionState.CLOSED || !this._outbound.delete(requestId)) return false;
    this._cancelOutbound(requestId);
    return true;
  }

  _cancelOutbound(requestId) {
    this._queue({ type: "cancel", request_id: requestId });
    if (this._cancelled.length >= this.config.recently_cancelled_keep) {
      this._cancelledSet.delete(this._cancelled.shift());
    }
    this._cancelled.push(requestId);
    this._cancelledSet.add(requestId);
  }

  announceHave(segments) {
    this._announce("have", segments.map(seg));
  }

  announceLost(segments) {
    this._announce("lost", segments.map(seg));
  }

  announceFetching(entries) {
    this._requireStarted();
    const items = entries.map((e) => ({ segment: seg(e.segment), expected_bytes: e.expected_bytes }));
    for (let i = 0; i < items.length; i += MAX_IDS_PER_MESSAGE) {
      this._queue({ type: "fetching", entries: items.slice(i, i + MAX_IDS_PER_MESSAGE) });
    }
  }

  _announce(type, items) {
    this._requireStarted();
    for (let i = 0; i < items.length; i += MAX_IDS_PER_MESSAGE) {
      this._queue({ type, segments: items.slice(i, i + MAX_IDS_PER_MESSAGE) });
    }
  }

  // --- responder inputs -----------------------------------------------------------------------

  _upload(requestId) {
    this._requireStarted();
    return this._inbound.get(requestId);
  }

  /** Accept the peer's request; false if it is no longer active (cancelled). */
  respond(requestId, totalBytes) {
    const up = this._upload(requestId);
    if (up === undefined) return false;
    if (up.total !== null) throw new UsageError(`request ${requestId} already answered`);
    if (!(Number.isInteger(totalBytes) && up.offset < totalBytes && totalBytes <= MAX_SEGMENT_BYTES)) {
      throw new UsageError(
        `total_bytes=${totalBytes} must be in (${up.offset}, ${MAX_SEGMENT_BYTES}] ` +
          "(answer ABSENT when there are no bytes at the offset)",
      );
    }
    up.total = totalBytes;
    up.queued = up.sent = up.offset;
    this._queue({ type: "response", request_id: requestId, total_bytes: totalBytes });
    return true;
  }

  /** Queue segment bytes [offset, offset + data.length); calls must be contiguous. */
  sendData(requestId, offset, data) {
    const up = this._upload(requestId);
    if (up === undefined) return false;
    if (up.total === null) throw new UsageError(`respond() to request ${requestId} before sendData()`);
    if (offset !== up.queued) throw new UsageError(`sendData at ${offset}, expected ${up.queued}`);
    if (offset + data.length > up.total) throw new UsageError(`sendData past total_bytes=${up.total}`);
    if (data.length) {
      up.pending.push(Uint8Array.from(data)); // a copy: the caller may reuse its buffer
      up.queued += data.length;
      if (!this._roundRobin.includes(requestId)) this._roundRobin.push(requestId);
    }
    return true;
  }

  _endUpload(requestId, message) {
    const up = this._upload(requestId);
    if (up === undefined) return false;
    this._inbound.delete(requestId);
    const i = this._roundRobin.indexOf(requestId);
    if (i >= 0) this._roundRobin.splice(i, 1);
    if (message) this._queue(message);
    return true;
  }

  _requireUnanswered(requestId) {
    const up = this._upload(requestId);
    if (up !== undefined && up.total !== null) {
      throw new UsageError(`request ${requestId} was answered: use abort()`);
    }
  }

  rejectAbsent(requestId) {
    this._requireUnanswered(requestId);
    return this._endUpload(requestId, { type: "absent", request_id: requestId });
  }

  rejectBusy(requestId, retryAfterMs = 0) {
    this._requireUnanswered(requestId);
    if (this._inbound.has(requestId)) this.stats.busy_sent += 1;
    return this._endUpload(requestId, { type: "busy", request_id: requestId, retry_after_ms: retryAfterMs });
  }

  /** Give up on the peer's request (before or after RESPONSE); unsent data is dropped. */
  abort(requestId, reason = AbortReason.INTERNAL) {
    return this._endUpload(requestId, { type: "abort", request_id: requestId, reason });
  }

  /** Close: queue CLOSE, fail our requests, report SessionClosed. */
  close(code = CloseCode.NORMAL, reason = "") {
    if (this._state !== SessionState.CLOSED) this._close(code, reason, false, true);
  }

  /** The channel died without a CLOSE: the remote went away (GOING_AWAY, by_remote). */
  transportClosed(reason = "transport closed") {
    if (this._state !== SessionState.CLOSED) this._close(CloseCode.GOING_AWAY, reason, true, false);
  }

  // --- remote input ---------------------------------------------------------------------------

  /** One data-channel message from the peer (ArrayBuffer, Uint8Array or a string). */
  receiveData(data, now) {
    if (!this._started) throw new UsageError("call start() before receiveData()");
    if (this._state === SessionState.CLOSED) return;
    this.stats.messages_received += 1;
    if (typeof data === "string") {
      this.stats.bytes_received += data.length;
      this._countError("text_message");
      this._close(CloseCode.PROTOCOL_ERROR, "text message", false, true);
      return;
    }
    const bytes = data instanceof Uint8Array ? data : new Uint8Array(data);
    this.stats.bytes_received += bytes.length;
    try {
      this._receive(bytes, now);
    } catch (exc) {
      if (exc instanceof WireError) {
        this._countError(exc.code);
        this._close(exc.closeCode, exc.message, false, true);
      } else if (exc instanceof ProtocolViolation) {
        this._countError(CLOSE_NAMES.get(exc.closeCode) || String(exc.closeCode));
        this._close(exc.closeCode, exc.message, false, true);
      } else {
        throw exc;
      }
    }
  }

  _receive(bytes, now) {
    if (bytes.length >= 1 && bytes[0] === MessageType.HELLO) {
      if (this._state === SessionState.OPEN) {
        throw new ProtocolViolation(CloseCode.STATE_VIOLATION, "second HELLO");
      }
      if (bytes.length >= 2 && bytes[1] !== 0 && bytes[1] !== PROTOCOL_VERSION) {
        throw new ProtocolViolation(
          CloseCode.VERSION_MISMATCH,
          `version ${bytes[1]}, expected ${PROTOCOL_VERSION}`,
        );
      }
    }
    const m = decode(bytes);
    if (m.type === "data") return this._onData(m, now);
    if (m.type === "close") return this._close(m.code, m.reason, true, false);
    if (this._state === SessionState.AWAIT_HELLO) {
      if (m.type !== "hello") {
        throw new ProtocolViolation(CloseCode.STATE_VIOLATION, `${m.type.toUpperCase()} before HELLO`);
      }
      return this._onHello(m);
    }
    switch (m.type) {
      case "have":
        this._events.push(ev("PeerHave", { segments: m.segments.map(seg) }));
        return;
      case "fetching":
        this._events.push(ev("PeerFetching", { entries: m.entries }));
        return;
      case "lost":
        this._events.push(ev("PeerLost", { segments: m.segments.map(seg) }));
        return;
      case "request":
        return this._onRequest(m);
      case "cancel":
        if (this._inbound.has(m.request_id)) {
          this._endUpload(m.request_id, null);
          this._events.push(ev("RequestCancelled", { request_id: m.request_id }));
        }
        return;
      case "response":
        return this._onResponse(m, now);
      case "absent":
      case "busy":
      case "abort":
        return this._onRefusal(m);
      default:
        throw new ProtocolViolation(CloseCode.STATE_VIOLATION, "unexpected HELLO");
    }
  }

  _onHello(hello) {
    const same = hello.swarm_id.every((b, i) => b === this.swarmId[i]);
    if (!same) throw new ProtocolViolation(CloseCode.SWARM_MISMATCH, "HELLO for another swarm");
    if (this.expectedPeerId !== null && !hello.peer_id.every((b, i) => b === this.expectedPeerId[i])) {
      throw new ProtocolViolation(CloseCode.IDENTITY_MISMATCH, "HELLO peer_id is not the one signaling paired");
    }
    this._state = SessionState.OPEN;
    this.remotePeerId = Uint8Array.from(hello.peer_id);
    this.remoteFlags = hello.flags;
    const have = [];
    for (const r of hello.have) {
      for (let k = 0; k < r.count; k++) have.push(seg({ rendition: r.rendition, sequence: r.first_sequence + k }));
    }
    this._events.push(
      ev("HelloReceived", {
        peer_id: this.remotePeerId,
        flags: hello.flags,
        leech_only: Boolean(hello.flags & FLAG_LEECH_ONLY),
        have,
        fetching: hello.fetching,
      }),
    );
  }

  _onRequest(m) {
    const id = m.request_id;
    if (this._inbound.has(id)) {
      throw new ProtocolViolation(CloseCode.STATE_VIOLATION, `request id ${id} already in flight`);
    }
    if (this.config.leech_only) {
      this._queue({ type: "busy", request_id: id, retry_after_ms: LEECH_ONLY_RETRY_AFTER_MS });
      this.stats.busy_sent += 1;
    } else if (this._inbound.size >= this.config.max_inbound_requests) {
      this._queue({ type: "busy", request_id: id, retry_after_ms: this.config.busy_retry_after_ms });
      this.stats.busy_sent += 1;
    } else {
      this._inbound.set(id, { segment: seg(m.segment), offset: m.offset, total: null, queued: 0, sent: 0, pending: [] });
      this._events.push(ev("SegmentRequested", { request_id: id, segment: seg(m.segment), offset: m.offset }));
    }
  }

  /** Our request `id`; null for a recently cancelled one (drop the message). */
  _outboundFor(id, what) {
    const out = this._outbound.get(id);
    if (out !== undefined) return out;
    if (this._cancelledSet.has(id)) {
      this.stats.late_frames_dropped += 1;
      return null;
    }
    throw new ProtocolViolation(CloseCode.STATE_VIOLATION, `${what} for unknown request id ${id}`);
  }

  _onResponse(m, now) {
    const out = this._outboundFor(m.request_id, "RESPONSE");
    if (out === null) return;
    if (out.total !== null) throw new ProtocolViolation(CloseCode.STATE_VIOLATION, "RESPONSE twice");
    if (m.total_bytes <= out.offset) {
      throw new ProtocolViolation(
        CloseCode.STATE_VIOLATION,
        `total_bytes=${m.total_bytes} not past offset ${out.offset}`,
      );
    }
    out.total = m.total_bytes;
    out.deadline = now + this.config.idle_data_timeout_s;
    this._events.push(
      ev("ResponseStarted", { request_id: m.request_id, segment: out.segment, total_bytes: m.total_bytes, offset: out.offset }),
    );
  }

  _onData(m, now) {
    if (this._state === SessionState.AWAIT_HELLO) {
      throw new ProtocolViolation(CloseCode.STATE_VIOLATION, "DATA before HELLO");
    }
    const id = m.request_id;
    const out = this._outboundFor(id, "DATA");
    if (out === null) return;
    if (out.total === null) throw new ProtocolViolation(CloseCode.STATE_VIOLATION, "DATA before RESPONSE");
    if (m.offset !== out.next) {
      throw new ProtocolViolation(CloseCode.STATE_VIOLATION, `DATA at offset ${m.offset}, expected ${out.next}`);
    }
    const payload = Uint8Array.from(m.payload); // own the bytes: the input buffer is the caller's
    const end = m.offset + payload.length;
    if (end > out.total) {
      throw new ProtocolViolation(CloseCode.STATE_VIOLATION, `DATA up to ${end} past total ${out.total}`);
    }
    out.chunks.push(payload);
    out.received += payload.length;
    out.next = end;
    out.deadline = now + this.config.idle_data_timeout_s;
    this.stats.payload_bytes_received += payload.length;
    this._events.push(ev("DataReceived", { request_id: id, segment: out.segment, offset: m.offset, data: payload }));
    if (end === out.total) {
      this._outbound.delete(id);
      const data = concat(out.chunks, out.received);
      out.chunks = [];
      this._events.push(
        ev("RequestCompleted", { request_id: id, segment: out.segment, offset: out.offset, total_bytes: out.total, data }),
      );
    }
  }

  _onRefusal(m) {
    const name = m.type.toUpperCase();
    const out = this._outboundFor(m.request_id, name);
    if (out === null) return;
    let reason;
    let retryAfterS = null;
    if (m.type === "abort") reason = "aborted";
    else if (out.total !== null) throw new ProtocolViolation(CloseCode.STATE_VIOLATION, `${name} after RESPONSE`);
    else if (m.type === "busy") {
      reason = "busy";
      if (m.retry_after_ms) retryAfterS = m.retry_after_ms / 1000;
    } else reason = "absent";
    this._outbound.delete(m.request_id);
    this._events.push(
      ev("RequestFailed", { request_id: m.request_id, segment: out.segment, reason, retry_after_s: retryAfterS }),
    );
  }

  // --- timers ---------------------------------------------------------------------------------

  /** When handleTimer must be called next (null: no timer armed). */
  getTimer() {
    if (this._state === SessionState.CLOSED) return null;
    let t = this._state === SessionState.AWAIT_HELLO ? this._helloDeadline : Infinity;
    for (const out of this._outbound.values()) t = Math.min(t, out.deadline);
    return t === Infinity ? null : t;
  }

  handleTimer(now) {
    if (this._state === SessionState.CLOSED) return;
    if (this._state === SessionState.AWAIT_HELLO && now >= this._helloDeadline) {
      this._close(CloseCode.TIMEOUT, `no HELLO within ${this.config.hello_timeout_s} s`, false, true);
      return;
    }
    for (const [id, out] of [...this._outbound]) {
      if (now >= out.deadline) {
        this._outbound.delete(id);
        this._cancelOutbound(id);
        this._events.push(ev("RequestFailed", { request_id: id, segment: out.segment, reason: "timeout", retry_after_s: null }));
      }
    }
  }

  // --- outputs --------------------------------------------------------------------------------

  nextEvent() {
    return this._events.length ? this._events.shift() : null;
  }

  /**
   * Messages to send now: every queued control message (always), then DATA frames round-robin
   * across uploads while the total stays within maxBytes (a frame is shortened to fit).
   */
  dataToSend(maxBytes = null) {
    const out = this._control;
    this._control = [];
    let used = out.reduce((n, m) => n + m.length, 0);
    const budget = maxBytes ?? Number.MAX_SAFE_INTEGER;
    const rr = this._roundRobin;
    while (rr.length && budget - used > DATA_HEADER_BYTES) {
      const id = rr.shift();
      const up = this._inbound.get(id);
      const frame = this._takeFrame(id, up, Math.min(this._framePayloadBytes, budget - used - DATA_HEADER_BYTES));
      out.push(frame);
      used += frame.length;
      if (up.pending.length) rr.push(id);
      else if (up.sent === up.total) this._inbound.delete(id); // the upload is complete
    }
    this.stats.messages_sent += out.length;
    this.stats.bytes_sent += used;
    return out;
  }

  _takeFrame(id, up, limit) {
    const pieces = [];
    let size = 0;
    while (up.pending.length && size < limit) {
      let piece = up.pending[0];
      const room = limit - size;
      if (piece.length <= room) up.pending.shift();
      else {
        up.pending[0] = piece.subarray(room);
        piece = piece.subarray(0, room);
      }
      pieces.push(piece);
      size += piece.length;
    }
    const frame = new Uint8Array(DATA_HEADER_BYTES + size);
    const view = new DataView(frame.buffer);
    view.setUint8(0, MessageType.DATA);
    view.setUint32(1, id);
    view.setUint32(5, up.sent);
    let at = DATA_HEADER_BYTES;
    for (const p of pieces) {
      frame.set(p, at);
      at += p.length;
    }
    up.sent += size;
    this.stats.payload_bytes_sent += size;
    return frame;
  }

  // --- closing --------------------------------------------------------------------------------

  _close(code, reason, byRemote, send) {
    if (send) this._control.push(encode({ type: "close", code, reason: fitReason(reason) }));
    this._state = SessionState.CLOSED;
    for (const [id, out] of this._outbound) {
      this._events.push(ev("RequestFailed", { request_id: id, segment: out.segment, reason: "closed", retry_after_s: null }));
    }
    this._outbound.clear();
    this._inbound.clear();
    this._roundRobin.length = 0;
    this._events.push(ev("SessionClosed", { code, reason, by_remote: byRemote }));
  }
}
