// The engine's CDN fetcher: GET one segment (its byte range, if any) from a byte offset with a
// Range request, reporting the size and each chunk as it arrives. I/O only; what to do with the
// bytes is the exchange's business (segment_exchange.js: cdnTotal, cdnData, cdnDone, cdnFailed).

/**
 * Fetch `info.url` ({url, byteRange: [start, end) | null}) from byte `offset` of the segment.
 * Calls onTotal(totalBytes) once the size is known and onData(offset, chunk) per chunk; resolves
 * with the segment's end offset, or null when `signal` aborted it; rejects on HTTP errors.
 */
export async function downloadSegment(info, offset, signal, { onTotal, onData }) {
  const headers = {};
  const base = info.byteRange ? info.byteRange[0] : 0;
  if (info.byteRange) headers.Range = `bytes=${base + offset}-${info.byteRange[1] - 1}`;
  else if (offset > 0) headers.Range = `bytes=${offset}-`;
  const r = await fetch(info.url, { headers, signal });
  if (!r.ok) throw new Error(`HTTP ${r.status}`);
  // A server that ignores Range sends the whole resource: skip to the offset (a byte-range
  // segment cannot be recovered that way).
  let skip = 0;
  if (headers.Range && r.status !== 206) {
    if (info.byteRange) throw new Error(`HTTP ${r.status} to a Range request`);
    skip = offset;
  }
  const length = Number(r.headers.get("Content-Length"));
  if (length > skip) onTotal(offset + length - skip);
  const reader = r.body.getReader();
  let at = offset;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (signal.aborted) {
      reader.cancel().catch(() => {});
      return null;
    }
    let chunk = value;
    if (skip > 0) {
      const cut = Math.min(skip, chunk.length);
      chunk = chunk.subarray(cut);
      skip -= cut;
      if (!chunk.length) continue;
    }
    onData(at, chunk);
    at += chunk.length;
  }
  return signal.aborted ? null : at;
}
