// The browser's identity keys for bans that stick (docs/exchange.md §8b): web_demo/rtc.js
// remoteIdentityKeys reads the remote address of the selected ICE candidate pair from a getStats()
// report and the DTLS certificate fingerprints from the remote SDP, in the agent's format
// (peer_agent/net/rtc.py remote_identity_keys); the exchange then refuses a new peer id from a
// refused address or certificate.
import assert from "node:assert/strict";
import { test } from "node:test";

import { remoteIdentityKeys } from "../../web_demo/rtc.js";
import { SegmentExchange, exchangeConfig } from "../../web_demo/segment_exchange.js";

const SDP = [
  "v=0",
  "o=- 1 2 IN IP4 127.0.0.1",
  "s=-",
  "t=0 0",
  "a=fingerprint:SHA-256 ab:cd:ef:01",
  "m=application 9 UDP/DTLS/SCTP webrtc-datachannel",
  "a=fingerprint:sha-256 AB:CD:EF:01",
  "a=fingerprint:sha-1 12:34",
  "",
].join("\r\n");

// The shape of Chromium's RTCStatsReport (a Map of id -> stats).
function report(entries) {
  return new Map(entries.map((s) => [s.id, s]));
}

const CHROMIUM = report([
  { id: "T01", type: "transport", selectedCandidatePairId: "CP2" },
  { id: "CP1", type: "candidate-pair", remoteCandidateId: "RC1", nominated: false, state: "failed" },
  { id: "CP2", type: "candidate-pair", remoteCandidateId: "RC2", nominated: true, state: "succeeded" },
  { id: "RC1", type: "remote-candidate", address: "10.9.9.9" },
  { id: "RC2", type: "remote-candidate", address: "127.0.0.7", port: 50000 },
]);

test("address of the selected pair's remote candidate and every certificate fingerprint, deduplicated", () => {
  assert.deepEqual(remoteIdentityKeys(CHROMIUM, SDP), ["addr:127.0.0.7", "cert:sha-256 AB:CD:EF:01", "cert:sha-1 12:34"]);
});

test("without a transport's selected pair: the nominated, succeeded pair; `ip` for older reports", () => {
  const stats = [
    { id: "CP1", type: "candidate-pair", remoteCandidateId: "RC1", nominated: true, state: "in-progress" },
    { id: "CP2", type: "candidate-pair", remoteCandidateId: "RC2", nominated: true, state: "succeeded" },
    { id: "RC1", type: "remote-candidate", ip: "10.0.0.1" },
    { id: "RC2", type: "remote-candidate", ip: "::1" },
  ];
  assert.deepEqual(remoteIdentityKeys(stats, ""), ["addr:::1"]);
});

test("a relay remote candidate gives no address: it is the TURN server's, shared by every peer it relays", () => {
  const relayed = report([
    { id: "T01", type: "transport", selectedCandidatePairId: "CP1" },
    { id: "CP1", type: "candidate-pair", remoteCandidateId: "RC1", nominated: true, state: "succeeded" },
    { id: "RC1", type: "remote-candidate", address: "10.241.0.1", port: 49170, candidateType: "relay" },
  ]);
  assert.deepEqual(remoteIdentityKeys(relayed, SDP), ["cert:sha-256 AB:CD:EF:01", "cert:sha-1 12:34"]);
  // the same address as a server-reflexive candidate is the peer's own: kept
  const srflx = report([
    { id: "T01", type: "transport", selectedCandidatePairId: "CP1" },
    { id: "CP1", type: "candidate-pair", remoteCandidateId: "RC1", nominated: true, state: "succeeded" },
    { id: "RC1", type: "remote-candidate", address: "10.241.0.1", port: 49170, candidateType: "srflx" },
  ]);
  assert.deepEqual(remoteIdentityKeys(srflx, ""), ["addr:10.241.0.1"]);
});

test("no pair (or no stats): the certificates only; nothing at all without an SDP", () => {
  assert.deepEqual(remoteIdentityKeys(report([{ id: "T01", type: "transport" }]), SDP), ["cert:sha-256 AB:CD:EF:01", "cert:sha-1 12:34"]);
  assert.deepEqual(remoteIdentityKeys([], undefined), []);
  assert.deepEqual(remoteIdentityKeys(null, "a=fingerprint:sha-256\r\n"), []);
});

test("a refused address refuses a new peer id behind it (the keys reach the exchange)", () => {
  const ex = new SegmentExchange(exchangeConfig({ self_id: "me" }));
  const hello = { type: "HelloReceived", have: [], fetching: [], leech_only: false };
  ex.setLinkKeys("L1", remoteIdentityKeys(CHROMIUM, SDP));
  ex.onPeerEvent("L1", "liar-1", hello, 0);
  // four points: HAVE then a request for it, twice (docs/exchange.md §8, step 2)
  ex.onPeerEvent("L1", "liar-1", { type: "PeerHave", segments: [{ rendition: 0, sequence: 1 }] }, 0);
  for (const id of [1, 2]) {
    ex.onPeerEvent("L1", "liar-1", { type: "SegmentRequested", request_id: id, segment: { rendition: 0, sequence: 1 }, offset: 0 }, 0);
  }
  const drained = [];
  for (let a = ex.nextAction(); a !== null; a = ex.nextAction()) drained.push(a);
  assert.ok(drained.some((a) => a.action === "close_link" && a.link === "L1"), JSON.stringify(drained));
  // same address, new peer id and a new certificate: closed BANNED at its HELLO
  const other = report([
    { id: "T", type: "transport", selectedCandidatePairId: "P" },
    { id: "P", type: "candidate-pair", remoteCandidateId: "R" },
    { id: "R", type: "remote-candidate", address: "127.0.0.7" },
  ]);
  ex.setLinkKeys("L2", remoteIdentityKeys(other, "a=fingerprint:sha-256 FF:FF\r\n"));
  ex.onPeerEvent("L2", "liar-2", hello, 1);
  const next = ex.nextAction();
  assert.equal(next?.action, "close_link");
  assert.equal(next.link, "L2");
  // another address is welcome
  ex.setLinkKeys("L3", ["addr:127.0.0.8"]);
  ex.onPeerEvent("L3", "honest", hello, 1);
  assert.equal(ex.nextAction(), null);
});
