// What a page controls beyond playback (P2PEngine glue calls these; pure functions of the
// options and of the environment they are given):
//
// - isSupported(env): can this browser run the engine (WebRTC data channels, WebCrypto in a
//   secure context, WebSocket, MediaSource for hls.js)? supportReport(env) says which part lacks.
// - checkEngineOptions(options): bad option values throw a TypeError naming the option.
// - swarmKeyFor(options, url): the string the swarm id derives from (docs/protocol.md §2):
//   options.swarmId, else options.swarmUrl, else the URL given to hls.loadSource, as it is.
//   Signed URLs: when every viewer gets a different query string (?token=, ?Expires=...&Signature=,
//   ?hdnts=...), the URLs differ and so would the swarms; give every viewer the same swarmId (for
//   instance the URL without its query: swarmId: stripQuery(url)). Agents join that swarm with
//   the same URL as their playlist URL.
// - manifestUrlFor(options, playlistUrl, rendition): where a rendition's SHA-256 manifest comes
//   from: options.manifestUrl (a function of (playlistUrl, rendition) or one URL), else
//   options.hashService (p2p-hashsvc: <service>/manifest?playlist=<encoded media playlist URL>,
//   as the agent's --hash-service does, docs/hashsvc.md), else manifest.json beside the playlist.

export function supportReport(env = globalThis) {
  const hasMse = Boolean(env.MediaSource || env.ManagedMediaSource || env.WebKitMediaSource);
  return {
    webrtc: typeof env.RTCPeerConnection === "function",
    webcrypto: Boolean(env.crypto?.subtle) && env.isSecureContext !== false,
    websocket: typeof env.WebSocket === "function",
    mediaSource: hasMse,
  };
}

/** True when every part the engine needs is here (see supportReport for which is missing). */
export function isSupported(env = globalThis) {
  return Object.values(supportReport(env)).every(Boolean);
}

function isHttpUrl(text) {
  try {
    const u = new URL(text);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}

export function checkEngineOptions(o) {
  const fail = (name, what) => {
    throw new TypeError(`P2PEngine option ${name}: ${what}, got ${JSON.stringify(o[name])}`);
  };
  if (o.tracker !== null) {
    let protocol = null;
    try {
      protocol = new URL(o.tracker).protocol;
    } catch {
      fail("tracker", "a ws:// or wss:// URL");
    }
    if (protocol !== "ws:" && protocol !== "wss:") fail("tracker", "a ws:// or wss:// URL");
  }
  if (o.token !== null && typeof o.token !== "string") fail("token", "a string");
  if (o.swarmId !== null && (typeof o.swarmId !== "string" || o.swarmId.length === 0)) fail("swarmId", "a non-empty string");
  if (o.hashService !== null && (typeof o.hashService !== "string" || !isHttpUrl(o.hashService))) {
    fail("hashService", "an http(s) URL of a p2p-hashsvc");
  }
  const m = o.manifestUrl;
  if (m !== null && typeof m !== "function" && !(typeof m === "string" && isHttpUrl(m))) {
    fail("manifestUrl", "a function (playlistUrl, rendition) => URL, or an http(s) URL");
  }
  if (typeof o.p2p !== "boolean") fail("p2p", "a boolean");
  if (typeof o.upload !== "boolean") fail("upload", "a boolean");
  if (o.backBufferS !== null && !(typeof o.backBufferS === "number" && o.backBufferS >= 0)) {
    fail("backBufferS", "seconds >= 0 (null: hls.js's default, unbounded)");
  }
  const r = o.liveCatchUpRate;
  if (!(typeof r === "number" && r >= 1 && r <= 2)) fail("liveCatchUpRate", "a playback rate from 1 (never catch up) to 2");
}

export function stripQuery(url) {
  const u = new URL(url);
  u.search = "";
  u.hash = "";
  return u.href;
}

export function swarmKeyFor(options, loadUrl) {
  return options.swarmId ?? options.swarmUrl ?? loadUrl;
}

export function hashServiceManifestUrl(serviceUrl, playlistUrl) {
  return `${serviceUrl.replace(/\/+$/, "")}/manifest?playlist=${encodeURIComponent(playlistUrl)}`;
}

export function manifestUrlFor(options, playlistUrl, rendition) {
  const m = options.manifestUrl;
  if (typeof m === "function") {
    const url = m(playlistUrl, rendition);
    return url ? new URL(url, playlistUrl).href : null;
  }
  if (typeof m === "string") return m;
  if (options.hashService) return hashServiceManifestUrl(options.hashService, playlistUrl);
  return new URL("manifest.json", playlistUrl).href;
}
