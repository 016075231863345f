// Upload fan-out from a viewer's uplink (docs/scheduling.md, "Upload fan-out"), as
// peer_agent/core/capacity.py; docs/vectors/capacity/upload_slots.json is the contract of both.
//
// A viewer serves at most floor(uplink / stream rate) uploads at once (never more than its
// configured cap); one whose uplink is below the stream's rate serves none and runs leech-only,
// so its neighbours never route a cut-through tree through it.

/** Uploads to serve at once: min(maxUploads, floor(uplinkBytesPerS * 8 / streamBitsPerS));
 * maxUploads when either rate is unknown (null). Throws on a negative or non-finite rate, a zero
 * stream rate or a negative maxUploads. */
export function uploadSlots(uplinkBytesPerS, streamBitsPerS, maxUploads) {
  if (!Number.isInteger(maxUploads) || maxUploads < 0) throw new RangeError(`maxUploads must be >= 0, got ${maxUploads}`);
  if (uplinkBytesPerS === null || uplinkBytesPerS === undefined || streamBitsPerS === null || streamBitsPerS === undefined) return maxUploads;
  if (!Number.isFinite(uplinkBytesPerS) || uplinkBytesPerS < 0) throw new RangeError(`uplinkBytesPerS must be finite and >= 0, got ${uplinkBytesPerS}`);
  if (!Number.isFinite(streamBitsPerS) || streamBitsPerS <= 0) throw new RangeError(`streamBitsPerS must be finite and > 0, got ${streamBitsPerS}`);
  return Math.min(maxUploads, Math.floor((uplinkBytesPerS * 8) / streamBitsPerS));
}
