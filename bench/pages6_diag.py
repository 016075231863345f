"""Why each CDN fetch happened, for the six-page bench (bench/pages6_bench.py).

TRACE_JS is installed in each page once its engine (window.p2p) exists. It wraps a few of the
engine's and exchange's methods (nothing else changes) and keeps a bounded list of events, each
stamped in epoch milliseconds (all pages of one browser share that clock):

- ``known``: a segment first seen in a scheduler view (its ``known_since``), with its start;
- ``fetch_cdn`` / ``fetch_peer`` / ``cancel``: a scheduler action that starts (or cancels) a
  download, with its reason, the segment's distance ahead of the playhead, how long it had been
  known, and what each neighbour had announced for it (have / fetching), its measured rate,
  BUSY back-off and round trip;
- ``cdn``: a CDN fetch the engine really started (offset > 0: a Range resume);
- ``failed`` / ``completed``: how a peer download ended (BUSY, ABSENT, timeout, aborted);
- ``verdict``: a hash check that was not OK (``unknown`` with peer bytes is refetched);
- ``accepted``: a segment verified (delivered, stored, announced);
- ``forgot_ahead``: verified segments whose records the exchange dropped although they were
  still ahead of the playhead (the bug fixed in the engine: hls.js's unaligned LEVEL_LOADED
  times made every page forget and refetch its segments);
- ``fallback``: bytes hls.js's own loader fetched (the engine was too slow);
- ``lag``: the largest lateness of a 100 ms interval timer over each second (event-loop
  starvation: timers in a hidden or starved page run late).

classify() turns one page's events into the causes of its CDN fetches in a time window.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

TRACE_JS = """() => {
  const p2p = window.p2p;
  if (!p2p || !p2p.exchange) return false;
  if (p2p.__trace) return true;
  const ex = p2p.exchange;
  const origin = performance.timeOrigin;
  const wall = (s) => Math.round(origin + s * 1000);
  const T = { events: [], dropped: 0, visibility: document.visibilityState };
  const MAX = 30000;
  const push = (e) => {
    if (T.events.length >= MAX) T.dropped += 1;
    else T.events.push(e);
  };
  p2p.__trace = T;
  const key = (seg) => `${seg[0]}/${seg[1]}`;
  const rounded = (x, digits) => (x === null || x === undefined ? null : +x.toFixed(digits));
  let view = null;
  const known = new Set();
  const origView = ex.schedulerView.bind(ex);
  ex.schedulerView = (...args) => (view = origView(...args));
  const describe = (e, k, now) => {
    const s = view.segments.find((x) => key(x.segment) === k);
    if (s) {
      e.ahead_s = rounded(s.start_s - view.playhead_s, 3);
      e.known_age_s = rounded(now - s.known_since, 3);
      e.size = s.size_bytes;
      e.avoid = [...s.avoid];
    }
    e.peers = view.peers.map((p) => ({
      id: p.peer_id,
      h: p.have.has(k) ? "have" : p.fetching.has(k) ? "fetching" : "",
      rate: rounded(p.throughput_bytes_per_s, 0),
      choked_s: p.choked_until > now ? rounded(p.choked_until - now, 2) : 0,
      rtt_s: p.rtt_s,
      uploads: p.uploads,
    }));
    e.cdn_rate = rounded(view.cdn_throughput_bytes_per_s, 0);
    e.transfers = view.transfers.length;
    const fa = p2p.swarm?.tracker.fetcherAssignment?.();
    if (fa) {
      e.listed = fa.fetchers.includes(p2p.peerId);
      e.fetchers = fa.fetchers.length;
      e.assignment_live = now < fa.fetchers_until;
    }
  };
  const origApply = ex.apply.bind(ex);
  ex.apply = (actions, now) => {
    for (const s of view ? view.segments : []) {
      const k = key(s.segment);
      if (known.has(k)) continue;
      known.add(k);
      push({ t: wall(s.known_since), k: "known", seg: k, start_s: s.start_s });
    }
    for (const a of actions) {
      const k = a.action === "wait" ? null : key(a.segment);
      if (k !== null && (a.action === "cancel" || !ex.transfers.has(k))) {
        const e = { t: wall(now), k: a.action, seg: k, reason: a.reason };
        e.offset = a.offset ?? null;
        e.peer = a.peer_id ?? null;
        if (view) describe(e, k, now);
        push(e);
      }
      origApply([a], now);
    }
  };
  const origCdn = p2p._fetchCdn.bind(p2p);
  p2p._fetchCdn = (a) => {
    const k = key(a.segment);
    push({ t: Date.now(), k: "cdn", seg: k, offset: a.offset, ingest: p2p._ingest.has(k) });
    return origCdn(a);
  };
  const origLink = p2p.onLinkEvent.bind(p2p);
  p2p.onLinkEvent = (link, e) => {
    if (e.type === "RequestFailed" || e.type === "RequestCompleted") {
      const name = p2p._linkNames.get(link);
      for (const t of ex.transfers.values()) {
        if (t.link !== name || t.request_id !== e.request_id) continue;
        const k = e.type === "RequestFailed" ? "failed" : "completed";
        push({ t: Date.now(), k, seg: t.key, peer: t.peer_id, reason: e.reason ?? null,
               bytes: t.received, responded: t.responded,
               dur_s: rounded(performance.now() / 1000 - t.started_at, 3) });
        break;
      }
    } else if (e.type === "SessionClosed") {
      push({ t: Date.now(), k: "closed", peer: link.remotePeerId ?? null, code: e.code,
             reason: e.reason ?? null, by_remote: e.by_remote });
    }
    return origLink(link, e);
  };
  const origVerdict = ex.verdict.bind(ex);
  ex.verdict = (segment, verdict, now) => {
    if (verdict !== "ok") {
      const peers = ex.contributors(segment).peers;
      push({ t: wall(now), k: "verdict", seg: key(segment), verdict, peers });
    }
    return origVerdict(segment, verdict, now);
  };
  const ends = new Map(); // segment -> its end (media s) when it was verified
  const origAccept = ex._accept.bind(ex);
  ex._accept = (k, segment, data, now) => {
    push({ t: wall(now), k: "accepted", seg: k, bytes: data.length });
    const entry = ex._timeline.get(k);
    if (entry) ends.set(k, entry.start_s + entry.duration_s);
    if (ends.size > 512) ends.delete(ends.keys().next().value);
    return origAccept(k, segment, data, now);
  };
  const origPrune = ex._prune.bind(ex);
  ex._prune = (playheadS) => {
    const before = [...ex.verified.keys()];
    const result = origPrune(playheadS);
    // verified records dropped although the segment (as timed when it was verified) is still
    // to be played
    const ahead = before.filter((k) => !ex.verified.has(k) && ends.get(k) > playheadS);
    if (ahead.length) push({ t: Date.now(), k: "forgot_ahead", keys: ahead, playhead: playheadS });
    return result;
  };
  const origIngest = p2p.ingestFromCdn.bind(p2p);
  p2p.ingestFromCdn = (frag, data, elapsedS) => {
    push({ t: Date.now(), k: "fallback", sn: frag.sn, bytes: data.length });
    return origIngest(frag, data, elapsedS);
  };
  let last = performance.now();
  let worst = 0;
  let ticks = 0;
  setInterval(() => {
    const now = performance.now();
    worst = Math.max(worst, now - last - 100);
    last = now;
    if (++ticks % 10 === 0) {
      push({ t: Date.now(), k: "lag", worst_ms: Math.round(worst) });
      worst = 0;
    }
  }, 100);
  return true;
}"""

TRACE_DUMP_JS = """() => {
  const T = window.p2p && window.p2p.__trace;
  if (!T) return null;
  const peerId = window.p2p.peerId;
  return { events: T.events, dropped: T.dropped, visibility: T.visibility, peerId };
}"""


def _prior(events: list[dict[str, Any]], seg: str, before_ms: float) -> list[dict[str, Any]]:
    return [e for e in events if e.get("seg") == seg and e["t"] <= before_ms]


def cause_of(cdn: dict[str, Any], events: list[dict[str, Any]]) -> str:
    """Why the CDN fetch `cdn` (a ``cdn`` event) happened, from the page's earlier events."""
    seg = cdn["seg"]
    if cdn.get("ingest"):
        return "fallback: hls.js's own loader"
    prior = _prior(events, seg, cdn["t"] + 1)
    decisions = [e for e in prior if e["k"] == "fetch_cdn"]
    verdicts = [e for e in prior if e["k"] == "verdict"]
    if verdicts and (not decisions or verdicts[-1]["t"] >= decisions[-1]["t"]):
        return f"refetch after verdict {verdicts[-1]['verdict']}"
    if not decisions:
        return "no decision (refetch)"
    if any(e["k"] == "accepted" for e in prior):
        return "refetch of a segment verified before"
    d = decisions[-1]
    reason = d["reason"]
    tried = [e for e in prior if e["k"] in ("fetch_peer", "failed", "cancel", "closed")]
    if cdn.get("offset"):
        ends = [e for e in prior if e["k"] in ("cancel", "failed")]
        how = ends[-1] if ends else None
        what = f"{how['k']} {how['reason']}" if how else "?"
        return f"{reason} resume after peer {what}"
    if reason != "urgent":
        return reason
    failed = [e for e in tried if e["k"] in ("failed", "cancel")]
    if failed:
        return f"urgent after peer {failed[-1]['k']} {failed[-1]['reason']}"
    peers = d.get("peers") or []
    holders = [p for p in peers if p["h"]]
    if not holders:
        return "urgent: no neighbour had or fetched it"
    usable_hint = []
    if all(p["choked_s"] > 0 for p in holders):
        usable_hint.append("all busy")
    if d.get("avoid") and all(p["id"] in d["avoid"] for p in holders):
        usable_hint.append("all avoided")
    kinds = "/".join(sorted({p["h"] for p in holders}))
    return f"urgent: neighbours {kinds} but not usable" + (
        f" ({', '.join(usable_hint)})" if usable_hint else " (too slow)"
    )


def classify(events: list[dict[str, Any]], from_ms: float, to_ms: float) -> dict[str, Any]:
    """Causes of the page's CDN fetches in [from_ms, to_ms), with peer download outcomes."""
    events = sorted(events, key=lambda e: e["t"])
    causes: Counter[str] = Counter()
    peer_ends: Counter[str] = Counter()
    decisions: Counter[str] = Counter()
    forgot_ahead = 0
    accepted: set[str] = set()
    for e in events:
        if not from_ms <= e["t"] < to_ms:
            continue
        if e["k"] == "cdn":
            causes[cause_of(e, events)] += 1
        elif e["k"] == "failed":
            peer_ends[f"failed {e['reason']}"] += 1
        elif e["k"] == "completed":
            peer_ends["completed"] += 1
        elif e["k"] == "cancel":
            peer_ends[f"cancel {e['reason']}"] += 1
        elif e["k"] == "fallback":
            causes["fallback: hls.js's own loader"] += 1
        elif e["k"] == "forgot_ahead":
            forgot_ahead += len(e["keys"])
        elif e["k"] == "accepted":
            accepted.add(e["seg"])
        if e["k"] in ("fetch_cdn", "fetch_peer", "cancel"):
            decisions[f"{e['k']}:{e['reason']}"] += 1
    lags = [e["worst_ms"] for e in events if e["k"] == "lag" and from_ms <= e["t"] < to_ms]
    lags.sort()
    return {
        "cdn_causes": dict(causes.most_common()),
        "peer_downloads": dict(peer_ends.most_common()),
        "decisions": dict(decisions.most_common()),
        "forgot_ahead": forgot_ahead,
        "segments_accepted": len(accepted),
        "timer_lag_ms_p50": lags[len(lags) // 2] if lags else None,
        "timer_lag_ms_max": lags[-1] if lags else None,
    }


def per_segment(traces: list[dict[str, Any]], from_ms: float, to_ms: float) -> list[dict[str, Any]]:
    """Per segment known in the window: when each page learned it (ms after the first), CDN
    fetch starts per page with their delay after the first page knew it."""
    segs: dict[str, dict[str, Any]] = {}
    for page, trace in enumerate(traces):
        for e in trace.get("events", []):
            if e["k"] == "known":
                rec = segs.setdefault(e["seg"], {"known": {}, "cdn": []})
                rec["known"][page] = e["t"]
    for page, trace in enumerate(traces):
        for e in trace.get("events", []):
            if e["k"] == "cdn" and e["seg"] in segs:
                segs[e["seg"]]["cdn"].append((page, e["t"], e.get("offset", 0)))
    out = []
    for seg, rec in sorted(segs.items(), key=lambda kv: int(kv[0].split("/")[1])):
        first = min(rec["known"].values())
        if not from_ms <= first < to_ms:
            continue
        out.append(
            {
                "seg": seg,
                "known_after_ms": {p: round(t - first) for p, t in sorted(rec["known"].items())},
                "cdn": [
                    (p, round(t - first), off)
                    for p, t, off in sorted(rec["cdn"], key=lambda x: x[1])
                ],
            }
        )
    return out
