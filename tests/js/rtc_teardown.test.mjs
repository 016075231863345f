// web_demo/rtc.js PeerLink teardown, on a fake RTCPeerConnection (node has none): every way a
// link ends (offer expired or retired, refused answer, transport failed, our CLOSE, no HELLO)
// closes its connection and removes every listener it put on the connection and its channel,
// so a page that churns links holds none of them (the 60-minute soak's pages went from 52 to
// 416 listeners and 6 to 15 RTCPeerConnection objects while agents refused them).
import assert from "node:assert/strict";
import { test } from "node:test";

import { PeerLink } from "../../web_demo/rtc.js";
import { sessionConfig } from "../../web_demo/session.js";
import { CloseCode } from "../../web_demo/wire.js";

/** EventTarget that counts the listeners still attached (removed or aborted ones are not). */
class Counted extends EventTarget {
  constructor() {
    super();
    this.live = new Set();
  }
  addEventListener(type, fn, opts) {
    const entry = { type, fn };
    this.live.add(entry);
    opts?.signal?.addEventListener("abort", () => this.live.delete(entry), { once: true });
    super.addEventListener(type, fn, opts);
  }
  removeEventListener(type, fn, opts) {
    for (const e of this.live) if (e.type === type && e.fn === fn) this.live.delete(e);
    super.removeEventListener(type, fn, opts);
  }
}

class FakeChannel extends Counted {
  constructor(label) {
    super();
    this.label = label;
    this.readyState = "connecting";
    this.bufferedAmount = 0;
  }
  close() {
    this.readyState = "closed";
  }
  send() {}
}

const made = [];
class FakePC extends Counted {
  constructor() {
    super();
    this.signalingState = "stable";
    this.connectionState = "new";
    this.iceGatheringState = "complete";
    this.localDescription = null;
    this.remoteDescription = null;
    this.channels = [];
    made.push(this);
  }
  createDataChannel(label) {
    const ch = new FakeChannel(label);
    this.channels.push(ch);
    return ch;
  }
  async createOffer() {
    return { type: "offer", sdp: "v=0 offer" };
  }
  async createAnswer() {
    return { type: "answer", sdp: "v=0 answer" };
  }
  async setLocalDescription(d) {
    this.localDescription = d;
  }
  async setRemoteDescription(d) {
    this.remoteDescription = d;
  }
  async getStats() {
    return [];
  }
  close() {
    this.signalingState = "closed";
    this.connectionState = "closed";
  }
}
globalThis.RTCPeerConnection = FakePC;

const bytes = (c) => new Uint8Array(20).fill(c);
const tick = (ms = 5) => new Promise((r) => setTimeout(r, ms));

function newLink(events, config = {}) {
  return new PeerLink({
    swarmId: bytes(65),
    localPeerId: bytes(66),
    sessionConfig: sessionConfig({ hello_timeout_s: 0.05 }),
    onEvent: (link, e) => events.push(e),
    remotePeerId: "-PH0002-remotepeer01",
    config: { offer_ttl_s: 0.05, close_timeout_s: 0.01, ...config },
  });
}

function assertReleased(link, events, what) {
  const pc = link.pc;
  assert.equal(pc.signalingState, "closed", `${what}: the connection is closed`);
  assert.equal(pc.live.size, 0, `${what}: no listener left on the connection`);
  for (const ch of pc.channels) assert.equal(ch.live.size, 0, `${what}: no listener left on the channel`);
  assert.equal(events.filter((e) => e.type === "SessionClosed").length, 1, `${what}: one SessionClosed`);
}

test("PeerLink: an offer closed before any answer (retired, refused pairing) releases its connection", async () => {
  const events = [];
  const link = newLink(events);
  await link.createOffer();
  assert.ok(link.pc.live.size > 0 && link.pc.channels[0].live.size > 0);
  link.close(CloseCode.NORMAL, "refused pairing");
  assertReleased(link, events, "closed offer");
});

test("PeerLink: an offer that expires releases its connection", async () => {
  const events = [];
  const link = newLink(events);
  await link.createOffer();
  for (let i = 0; i < 200 && !link.isClosed; i++) await tick();
  assert.equal(events[0]?.reason, "offer expired");
  assertReleased(link, events, "expired offer");
});

test("PeerLink: a link whose transport fails releases its connection", async () => {
  const events = [];
  const link = newLink(events, { offer_ttl_s: 30 });
  await link.createOffer();
  await link.acceptAnswer("v=0 answer", "-PH0002-remotepeer01");
  link.pc.connectionState = "failed";
  link.pc.dispatchEvent(new Event("connectionstatechange"));
  assertReleased(link, events, "failed transport");
  assert.equal(events.at(-1).code, CloseCode.GOING_AWAY);
});

test("PeerLink: a link with no HELLO in time (an answerer whose channel never came) releases its connection", async () => {
  const events = [];
  const link = newLink(events);
  assert.notEqual(await link.acceptOffer("v=0 offer", "-PH0002-remotepeer01"), null);
  for (let i = 0; i < 400 && !(events.length && link.pc.signalingState === "closed"); i++) await tick();
  assert.equal(events.at(-1).code, CloseCode.TIMEOUT);
  assertReleased(link, events, "hello timeout");
});

test("PeerLink: our CLOSE (a refusal) on an open channel releases the connection after close_timeout_s", async () => {
  const events = [];
  const link = newLink(events, { offer_ttl_s: 30 });
  await link.createOffer();
  await link.acceptAnswer("v=0 answer", "-PH0002-remotepeer01");
  const ch = link.pc.channels[0];
  ch.readyState = "open";
  ch.dispatchEvent(new Event("open"));
  for (let i = 0; i < 200 && !link.isOpen; i++) await tick();
  assert.ok(link.isOpen);
  link.close(CloseCode.BANNED, "refused for misbehaviour");
  for (let i = 0; i < 200 && link.pc.signalingState !== "closed"; i++) await tick();
  assertReleased(link, events, "our CLOSE");
  assert.equal(events.at(-1).code, CloseCode.BANNED);
});
