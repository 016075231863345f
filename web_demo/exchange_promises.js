// Cut-through promises (peer_agent/core/exchange_promises.py; docs/exchange.md §8b, "Broken
// promises").
//
// A peer that announced a segment FETCHING and was asked for it promised to pass it on: its
// silence is not charged (its own source may be waiting out a lost packet), but an honest relay's
// promise ends one of two ways: its download completes and it announces the segment HAVE
// (possibly after we gave up on it), or its source fails and it ABORTs our request
// (UPSTREAM_FAILED). A cut-through download we gave up (cancelled, or timed out) opens a promise;
// the peer's HAVE of the segment keeps it; one still open when the segment leaves what the
// exchange retains (§3 "Bounds") is broken: an offence. Bounded: at most maxPerPeer open per peer
// id (the oldest dropped uncharged) and maxPeers peer ids (the least recently promising dropped).

export class PromiseBook {
  constructor(maxPerPeer, maxPeers) {
    this._open = new Map(); // peer id -> Map(segment key -> identity keys of the link)
    this.maxPerPeer = maxPerPeer;
    this.maxPeers = maxPeers;
  }

  get size() {
    let n = 0;
    for (const book of this._open.values()) n += book.size;
    return n;
  }

  // We gave up a cut-through download of `key` from peerId.
  promised(peerId, key, keys) {
    const book = this._open.get(peerId) ?? new Map();
    this._open.delete(peerId);
    this._open.set(peerId, book);
    book.delete(key);
    book.set(key, keys);
    while (book.size > this.maxPerPeer) book.delete(book.keys().next().value);
    while (this._open.size > this.maxPeers) this._open.delete(this._open.keys().next().value);
  }

  // peerId announced these segment keys HAVE: its promises of them are kept.
  kept(peerId, keys) {
    const book = this._open.get(peerId);
    if (book === undefined) return;
    for (const key of keys) book.delete(key);
    if (!book.size) this._open.delete(peerId);
  }

  // The peer is banned: nothing more to charge it.
  forget(peerId) {
    this._open.delete(peerId);
  }

  // The open promises of segments no longer retained ([peer id, segment key, identity keys]),
  // removed, in the order the peers last promised, then the order promised.
  broken(retained) {
    const out = [];
    for (const [peerId, book] of [...this._open]) {
      for (const key of [...book.keys()]) {
        if (retained(key)) continue;
        out.push([peerId, key, book.get(key)]);
        book.delete(key);
      }
      if (!book.size) this._open.delete(peerId);
    }
    return out;
  }
}
