// A TypeScript page using p2p-hls-engine as a consumer would: `tsc -p tests/ts` (make check and
// tests/js/package.test.mjs) type-checks it against web_demo/index.d.ts through the package's own
// "exports" (a self-reference), with hls.js's own declarations.
import Hls from "hls.js";
import {
  DEFAULT_ENGINE_OPTIONS,
  ENGINE_EVENTS,
  P2PEngine,
  classifyClose,
  stripQuery,
  swarmIdFor,
  type P2PEngineEvents,
  type P2PEngineOptions,
  type P2PEngineStats,
} from "p2p-hls-engine";

const url = "https://cdn.example/live/master.m3u8?token=abc";
const options: P2PEngineOptions = {
  tracker: "wss://tracker.example/announce",
  token: "v1.payload.signature",
  iceServers: [{ urls: "stun:stun.example:3478" }],
  swarmId: stripQuery(url),
  hashService: "https://hashes.example",
  manifestUrl: (playlistUrl: string, rendition: number) => (rendition === 0 ? `${playlistUrl}.sha256.json` : null),
  scheduler: { prefetch_window_s: 20, cut_through: true },
  integrity: { ban_after_failures: 3 },
  trackerConfig: { reconnect_max_s: 10 },
  p2p: true,
  upload: false,
  Hls,
};

export function start(video: HTMLVideoElement): P2PEngine | null {
  if (!P2PEngine.isSupported()) {
    const missing = Object.entries(P2PEngine.supportReport()).filter(([, ok]) => !ok);
    console.warn("P2P unavailable:", missing.map(([name]) => name).join(", "));
    return null;
  }
  const p2p = new P2PEngine(options);
  const hls = new Hls({ ...p2p.hlsConfig({ liveSyncDurationCount: 3 }), maxBufferLength: 30 });
  const off = p2p.on("segment-loaded", (e) => {
    const from: "peer" | "cdn" | "store" = e.source;
    const who: string | null = e.peerId;
    console.log(from, who, e.bytes, e.durationMs.toFixed(0), e.sn, e.fallback);
  });
  p2p.on("error", (e) => {
    if (e.reason === "origin_forbidden" || e.reason.startsWith("token_")) console.error(e.message, e.fatal, e.code);
  });
  p2p.on("warning", (e) => console.warn(e.source, e.reason));
  p2p.on("peer-banned", (e) => console.warn(`banned ${e.peerId}: ${e.reason}`));
  p2p.on("peer-closed", (e) => console.log(e.peerId, e.code, e.byRemote));
  p2p.on("bytes-uploaded", (e) => console.log(e.bytes));
  p2p.once("tracker-connected", (e) => console.log(e.swarmId, e.swarmSize));
  p2p.on("integrity-mode", (e) => console.log(e.mode === "sha256" ? "verified" : "size only"));
  off();
  p2p.setUploadEnabled(true);
  p2p.setP2PEnabled(false);
  p2p.setToken("v1.new.token");
  hls.attachMedia(video);
  hls.loadSource(url);
  const s: P2PEngineStats = p2p.stats();
  const ratio: number = s.p2pRatio;
  const refused: string | null = s.trackerRefused;
  console.log(ratio, refused, s.peers.map((p) => p.peerId), DEFAULT_ENGINE_OPTIONS.maxPeers, ENGINE_EVENTS.length);
  return p2p;
}

export async function swarmOf(page: string): Promise<string> {
  const c = classifyClose(4003, "origin not allowed");
  const level: "warning" | "error" = c.level;
  console.log(level);
  return swarmIdFor(stripQuery(page));
}

// Wrong uses must not compile.
// @ts-expect-error: an unknown event name
new P2PEngine().on("segment-lodaed", () => {});
// @ts-expect-error: an unknown option
new P2PEngine({ trackr: "ws://x" });
// @ts-expect-error: the detail of "peer-banned" has no bytes
new P2PEngine().on("peer-banned", (e: P2PEngineEvents["bytes-uploaded"]) => e.bytes);
