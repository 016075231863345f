// The browser scheduler passes the same decision vectors as the Python core.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";

import {
  decide,
  electionKey,
  fnv1a32,
  rankCandidates,
  schedulerConfig,
  segmentKey,
} from "../../web_demo/scheduler.js";

const load = (name) =>
  JSON.parse(readFileSync(new URL(`../../docs/vectors/scheduler/${name}`, import.meta.url), "utf8"));

const keys = (list) => new Set(list.map(segmentKey));

function toView(input) {
  return {
    ...input,
    segments: input.segments.map((s) => ({ ...s, avoid: new Set(s.avoid || []) })),
    have: keys(input.have),
    peers: input.peers.map((p) => ({ ...p, have: keys(p.have), fetching: keys(p.fetching) })),
  };
}

function scripted(draws) {
  const left = [...draws];
  const random = () => {
    if (left.length === 0) throw new Error("the scheduler drew more random numbers than listed");
    return left.shift();
  };
  return { random, left };
}

const round = (actions) =>
  actions.map((a) => ("until" in a ? { ...a, until: Math.round(a.until * 1e6) / 1e6 } : a));

for (const c of load("decisions.json").cases) {
  test(`decision: ${c.name}`, () => {
    const rng = scripted(c.random);
    const decision = decide(toView(c.input), schedulerConfig(c.config), rng.random);
    assert.deepEqual(round(decision.actions), round(c.expect.actions));
    assert.equal(rng.left.length, 0, "the vector lists draws the scheduler did not use");
    if ("wake_at" in c.expect) {
      assert.ok(Math.abs(decision.wake_at - c.expect.wake_at) < 1e-9, `wake_at ${decision.wake_at}`);
    }
    const r6 = (x) => Math.round(x * 1e6) / 1e6;
    const checks = decision.stall_checks.map((s) => ({
      ...s,
      timeout_s: r6(s.timeout_s),
      late_timeout_s: r6(s.late_timeout_s),
      late_from: r6(s.late_from),
    }));
    assert.deepEqual(checks, c.expect.stall_checks ?? []);
    const flowing = c.expect.wake_at_flowing ?? decision.wake_at;
    assert.ok(Math.abs(decision.wake_at_flowing - flowing) < 1e-9, `wake_at_flowing ${decision.wake_at_flowing}`);
  });
}

const election = load("election.json");

test("fnv1a32 reference hashes", () => {
  for (const { input, hash } of election.fnv1a32) {
    assert.equal(fnv1a32(new TextEncoder().encode(input)), parseInt(hash, 16));
  }
});

for (const e of election.elections) {
  test(`election ${e.segment}`, () => {
    for (const [peerId, key] of Object.entries(e.keys)) {
      assert.equal(electionKey(peerId, e.segment), parseInt(key, 16));
    }
    assert.deepEqual(rankCandidates(e.candidates, e.segment), e.order);
    assert.deepEqual(rankCandidates([...e.candidates].reverse(), e.segment), e.order);
  });
}

test("unknown config keys are refused", () => {
  assert.throws(() => schedulerConfig({ bogus: 1 }), /unknown scheduler option bogus/);
});
