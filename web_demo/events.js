// The engine's events (P2PEngine.on/off/once), one small typed emitter. Every event name and the
// fields of its detail object are listed here and in index.d.ts (P2PEngineEvents); docs/api.md
// is generated from the declarations.
//
//   const off = p2p.on("segment-loaded", (e) => console.log(e.source, e.bytes, e.peerId));
//   p2p.on("error", (e) => showBanner(`P2P off: ${e.reason}`));   // e.g. "origin_forbidden"
//   off();
//
// A listener that throws is reported on the console (console.error) and never disturbs the
// engine or the other listeners. Emitting an unknown name is our own bug and throws.

export const ENGINE_EVENTS = Object.freeze([
  "segment-loaded", // {url, sn, level, source: "peer"|"cdn"|"store", fallback, bytes, peerId, durationMs}
  "segment-error", // {url, sn, level, message, fallback}
  "segment-abort", // {url, sn, level}
  "peer-connected", // {peerId, role, leechOnly}
  "peer-closed", // {peerId, code, reason, byRemote}
  "peer-banned", // {peerId, reason}
  "bytes-downloaded", // {source: "peer"|"cdn", peerId, bytes}
  "bytes-uploaded", // {peerId, bytes}
  "tracker-connected", // {url, swarmId, swarmSize}
  "tracker-disconnected", // {url, code, reason}
  "integrity-mode", // {mode: "sha256"|"size-only", manifestUrl}
  "p2p-state", // {p2p, upload}
  "warning", // {source, reason, message, code}
  "error", // {source, reason, message, code, fatal}
]);

export class Emitter {
  /** @param names the event names this emitter knows (others are refused). */
  constructor(names = ENGINE_EVENTS) {
    this._listeners = new Map(names.map((n) => [n, new Set()]));
  }

  _set(type) {
    const set = this._listeners.get(type);
    if (set === undefined) throw new Error(`unknown event ${JSON.stringify(type)}; known: ${[...this._listeners.keys()].join(", ")}`);
    return set;
  }

  /** Call `listener(detail)` on every `type` event; returns a function that removes it. */
  on(type, listener) {
    if (typeof listener !== "function") throw new TypeError("a listener must be a function");
    this._set(type).add(listener);
    return () => this.off(type, listener);
  }

  /** Like on(), for the next event only. */
  once(type, listener) {
    const wrapped = (detail) => {
      this.off(type, wrapped);
      listener(detail);
    };
    return this.on(type, wrapped);
  }

  off(type, listener) {
    this._set(type).delete(listener);
  }

  listenerCount(type) {
    return this._set(type).size;
  }

  /** Hand `detail` (frozen) to every listener of `type`; a throwing listener is logged. */
  emit(type, detail = {}) {
    const set = this._set(type);
    if (set.size === 0) return;
    const frozen = Object.freeze({ type, ...detail });
    for (const listener of [...set]) {
      try {
        listener(frozen);
      } catch (exc) {
        console.error(`p2p: a listener of "${type}" threw`, exc);
      }
    }
  }
}
