// Join-ramp and steady-state CDN fetches (docs/simulator.md, "Join ramp and steady state"), as
// peer_agent/core/cdn_phase.py; docs/vectors/metrics/cdn_phase.json is the contract of both.
//
// A viewer's join ramp is its start segment (the first segment its player plays) and the
// rampSegments - 1 segments after it by media sequence number. A CDN fetch of a segment of its
// join ramp, or any CDN fetch before its start segment is known, is a join-ramp fetch; every
// other CDN fetch is steady-state.

/** Segments in a viewer's join ramp by default. */
export const JOIN_RAMP_SEGMENTS = 4;
export const JOIN_RAMP = "join_ramp";
export const STEADY = "steady";

/** The phase of a CDN fetch of segment `sequence` by a viewer that started at `startSequence`
 * (null: not started yet). */
export function fetchPhase(sequence, startSequence, rampSegments = JOIN_RAMP_SEGMENTS) {
  if (!Number.isInteger(rampSegments) || rampSegments < 0) throw new Error(`rampSegments must be >= 0, got ${rampSegments}`);
  if (startSequence === null || startSequence === undefined || sequence < startSequence + rampSegments) return JOIN_RAMP;
  return STEADY;
}

/** One viewer's CDN fetches by phase; start(sequence) once its start segment is known (later
 * calls are ignored: the ramp is the viewer's first). */
export class CdnFetchCounts {
  constructor(rampSegments = JOIN_RAMP_SEGMENTS) {
    this.rampSegments = rampSegments;
    this.startSequence = null;
    this.joinRamp = 0;
    this.steady = 0;
  }

  start(sequence) {
    if (this.startSequence === null) this.startSequence = sequence;
  }

  count(sequence) {
    const phase = fetchPhase(sequence, this.startSequence, this.rampSegments);
    if (phase === JOIN_RAMP) this.joinRamp += 1;
    else this.steady += 1;
    return phase;
  }

  asDict() {
    return { [JOIN_RAMP]: this.joinRamp, [STEADY]: this.steady };
  }
}
