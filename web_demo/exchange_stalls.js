// Stall suspicions (peer_agent/core/exchange_stalls.py; docs/exchange.md, "Reputation").
//
// On a lossy path an honest peer's data channel goes quiet for whole seconds (SCTP retransmits a
// lost packet after at least 1 s, doubled on each further loss, and the ordered channel delivers
// nothing meanwhile). A silent download from a peer that owed bytes makes it a suspect; the
// suspicion is a stall offence only if the peer shows no progress (a download from it completes,
// late frames of a request we gave up arrive) for stall_offence_s + stall_rtts round trips from
// its last byte. DATA for another request in flight is not progress (a staller serves the first
// part of every segment). A suspicion is abandoned when the link was seen alive after the
// download's last byte (another frame of the peer while it had announced the segment HAVE): its
// offence costs points_abandoned.

export class StallWatch {
  constructor() {
    this._suspects = new Map(); // peer id -> {link, since, due_at, abandoned}
  }

  get size() {
    return this._suspects.size;
  }

  // A download from peerId (on link) went silent at since: an offence at since + allowanceS
  // unless it makes progress first. An open suspicion keeps its earlier time, and becomes
  // abandoned if this one is.
  suspect(peerId, link, since, allowanceS, abandoned = false) {
    const open = this._suspects.get(peerId);
    if (open === undefined) this._suspects.set(peerId, { link, since, due_at: since + allowanceS, abandoned });
    else if (abandoned) open.abandoned = true;
  }

  // The peer delivered (a download completed, late frames arrived): not a staller.
  progress(peerId) {
    this._suspects.delete(peerId);
  }

  // The peer is gone (every link closed): nothing left to judge.
  forget(peerId) {
    this._suspects.delete(peerId);
  }

  // The suspicions that became offences by now ([peer id, link, abandoned]), removed.
  due(now) {
    const out = [];
    for (const [pid, s] of this._suspects) if (s.due_at <= now) out.push([pid, s.link, s.abandoned]);
    for (const [pid] of out) this._suspects.delete(pid);
    return out;
  }

  nextDue() {
    let at = null;
    for (const s of this._suspects.values()) if (at === null || s.due_at < at) at = s.due_at;
    return at;
  }
}
