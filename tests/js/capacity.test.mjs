// Upload fan-out from a viewer's uplink (docs/vectors/capacity/upload_slots.json).
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { uploadSlots } from "../../web_demo/capacity.js";

const VECTORS = JSON.parse(readFileSync(new URL("../../docs/vectors/capacity/upload_slots.json", import.meta.url), "utf8"));

test("upload_slots vectors", () => {
  assert.ok(VECTORS.cases.length >= 8);
  for (const c of VECTORS.cases) {
    const call = () => uploadSlots(c.uplink_bytes_per_s, c.stream_bits_per_s, c.max_uploads);
    if (c.error) assert.throws(call, RangeError, c.name);
    else assert.equal(call(), c.slots, c.name);
  }
});

test("non-finite rates are refused", () => {
  assert.throws(() => uploadSlots(Infinity, 2e6, 4), /uplink/);
  assert.throws(() => uploadSlots(1e6, NaN, 4), /stream/);
});

test("uplinkClaim: 0 when leech-only, else the upload cap (clamped), else none", async () => {
  const { uplinkClaim } = await import("../../web_demo/engine.js");
  assert.equal(uplinkClaim(false, undefined), null);
  assert.equal(uplinkClaim(false, null), null);
  assert.equal(uplinkClaim(true, 1e6), 0);
  assert.equal(uplinkClaim(false, 312500.7), 312500);
  assert.equal(uplinkClaim(false, 1e15), 1e12 - 1);
});
