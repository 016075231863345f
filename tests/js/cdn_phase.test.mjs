// The join-ramp / steady-state split of CDN fetches (docs/vectors/metrics/cdn_phase.json).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { CdnFetchCounts, JOIN_RAMP, JOIN_RAMP_SEGMENTS, STEADY, fetchPhase } from "../../web_demo/cdn_phase.js";

const VECTORS = JSON.parse(readFileSync(new URL("../../docs/vectors/metrics/cdn_phase.json", import.meta.url), "utf8"));

test("the default ramp matches the vectors", () => {
  assert.equal(JOIN_RAMP_SEGMENTS, VECTORS.join_ramp_segments);
});

test("cdn_phase vectors", () => {
  assert.ok(VECTORS.cases.length >= 4);
  for (const c of VECTORS.cases) {
    const counts = new CdnFetchCounts(c.ramp_segments);
    const phases = c.fetches.map((sequence, i) => {
      if (c.start && i === c.start.before_fetch) counts.start(c.start.sequence);
      return counts.count(sequence);
    });
    assert.deepEqual(phases, c.phases, c.name);
    assert.deepEqual(counts.asDict(), c.counts, c.name);
  }
});

test("fetchPhase boundaries and bad ramps", () => {
  assert.equal(fetchPhase(103, 100), JOIN_RAMP);
  assert.equal(fetchPhase(104, 100), STEADY);
  assert.equal(fetchPhase(104, null), JOIN_RAMP);
  assert.throws(() => fetchPhase(1, 1, -1));
});
