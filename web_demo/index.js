// p2p-hls-engine: the package's entry point (package.json "exports"). Types: index.d.ts.
//
//   import { P2PEngine } from "p2p-hls-engine";
//   import Hls from "hls.js";
//   if (P2PEngine.isSupported()) {
//     const p2p = new P2PEngine({ tracker: "wss://tracker.example/announce", token, Hls });
//     p2p.on("error", (e) => console.warn("P2P off:", e.reason, e.message));
//     const hls = new Hls({ ...p2p.hlsConfig() });
//     hls.attachMedia(video);
//     hls.loadSource(url);
//   }

export { DEFAULT_ENGINE_OPTIONS, P2PEngine } from "./engine.js";
export { ENGINE_EVENTS } from "./events.js";
export { hashServiceManifestUrl, stripQuery, supportReport } from "./controls.js";
export { swarmIdFor } from "./ids.js";
export { DEFAULT_SCHEDULER_CONFIG } from "./scheduler.js";
export { DEFAULT_SESSION_CONFIG } from "./session.js";
export { DEFAULT_TRACKER_CONFIG, classifyClose } from "./tracker.js";
