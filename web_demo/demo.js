// The demo page: a player, a stream picker over the test origin's streams, and a live panel
// (P2P vs CDN bytes and ratio over time, peers with bytes up/down and their role, buffer, latency,
// rendition and bitrate) and the engine's events (errors such as a refused Origin, peers, bans).
// config.json is written by the launcher (python -m peer_agent.demo):
//   {origin, tracker, token, stream, engine: {P2PEngine options}, hls: {hls.js options}}
// Query parameters: ?stream=<name> picks a stream.

import Hls from "./vendor/hls.js/hls.mjs";
import { P2PEngine } from "./engine.js";
import { rankCandidates } from "./scheduler.js";

const $ = (id) => document.getElementById(id);
const video = $("video");
let hls = null;
let newest = null; // [rendition, sequence] of the newest segment handed to the player
const eventLog = [];

function fmtBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

const escapeHtml = (t) => String(t).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const fmtS = (s) => (s === null || s === undefined ? "–" : `${s.toFixed(1)} s`);

async function main() {
  const config = await (await fetch("config.json", { cache: "no-store" })).json();
  const catalog = await (await fetch(new URL("/streams", config.origin))).json();
  const picker = $("stream");
  for (const s of catalog.streams) {
    const option = new Option(`${s.name} (${s.type})`, s.name);
    picker.add(option);
  }
  const wanted = new URLSearchParams(location.search).get("stream") || config.stream || "live-ts";
  picker.value = catalog.streams.some((s) => s.name === wanted) ? wanted : catalog.streams[0].name;
  picker.addEventListener("change", () => {
    const url = new URL(location.href);
    url.searchParams.set("stream", picker.value);
    history.replaceState(null, "", url);
    play(config, catalog.streams.find((s) => s.name === picker.value));
  });
  play(config, catalog.streams.find((s) => s.name === picker.value));
  setInterval(render, 500);
}

function play(config, stream) {
  if (hls) hls.destroy();
  window.p2p?.destroy();
  if (!Hls.isSupported()) {
    // Chromium can play HLS natively, which would bypass hls.js and P2P: say so instead.
    $("message").textContent = "hls.js is not supported in this browser (no MediaSource): P2P is off.";
    return;
  }
  const supported = P2PEngine.isSupported();
  if (!supported) {
    const missing = Object.entries(P2PEngine.supportReport()).filter(([, ok]) => !ok).map(([part]) => part);
    $("message").textContent = `P2P is off in this browser (missing: ${missing.join(", ")}); playing from the CDN.`;
  }
  const p2p = new P2PEngine({ ...(config.engine || {}), tracker: config.tracker, token: config.token, Hls, p2p: supported });
  window.p2p = p2p;
  // hlsConfig() bounds the back buffer (backBufferLength 30): hls.js's default keeps all played media in memory.
  hls = new Hls(p2p.hlsConfig(config.hls || {}));
  window.hls = hls;
  newest = null;
  eventLog.length = 0;
  $("problem").hidden = true;
  watchEvents(p2p);
  hls.on(Hls.Events.ERROR, (_, d) => {
    if (d.fatal) $("message").textContent = `hls.js: ${d.type} ${d.details}`;
  });
  hls.attachMedia(video); // before loadSource: hls.js picks the live start when the playlist arrives
  hls.loadSource(stream.master_url);
  video.muted = true;
  video.play().catch(() => {});
}

function watchEvents(p2p) {
  const note = (text) => {
    eventLog.unshift(`${new Date().toLocaleTimeString()} ${text}`);
    eventLog.length = Math.min(eventLog.length, 40);
    $("events").innerHTML = eventLog.map((t) => `<li>${escapeHtml(t)}</li>`).join("");
  };
  const problem = (e, level) => {
    const box = $("problem");
    box.hidden = false;
    box.className = `problem ${level}`;
    box.textContent = `${level === "error" ? "P2P error" : "Warning"} (${e.reason}): ${e.message}`;
  };
  p2p.on("error", (e) => (problem(e, "error"), note(`error ${e.reason}: ${e.message}`)));
  p2p.on("warning", (e) => (problem(e, "warning"), note(`warning ${e.reason}`)));
  p2p.on("tracker-connected", (e) => {
    if (!$("problem").classList.contains("error")) $("problem").hidden = true;
    note(`tracker connected, ${e.swarmSize} in the swarm`);
  });
  p2p.on("peer-connected", (e) => note(`peer ${e.peerId} connected`));
  p2p.on("peer-closed", (e) => note(`peer ${e.peerId} closed (${e.reason || e.code})`));
  p2p.on("peer-banned", (e) => note(`peer ${e.peerId} banned: ${e.reason}`));
  p2p.on("integrity-mode", (e) => note(`integrity: ${e.mode}`));
  p2p.on("segment-loaded", (e) => {
    if (typeof e.level === "number" && (newest === null || e.sn > newest[1])) newest = [e.level, e.sn];
  });
}

/** Who fetches the next segment from the CDN: the election of docs/scheduling.md among us and
 * our neighbours that upload (a sketch: the engine also weighs who watches close to it). */
function roles(s) {
  if (newest === null) return null;
  const next = [newest[0], newest[1] + 1];
  const ranked = rankCandidates([s.peerId, ...s.peers.filter((p) => p.connected && !p.banned).map((p) => p.peerId)], next);
  const label = (id) => {
    const rank = ranked.indexOf(id);
    if (rank === 0) return `<span class="role-elected">CDN fetcher (#${next[1]})</span>`;
    if (rank === 1) return "backup fetcher";
    return rank > 1 ? "takes it from peers" : "–";
  };
  return { label, self: ranked[0] === s.peerId ? "CDN fetcher" : ranked[1] === s.peerId ? "backup" : "from peers" };
}

function drawChart(history) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  if (history.length < 2) return;
  const max = Math.max(1, ...history.map((p) => p.p2p + p.cdn));
  const left = 72;
  const right = 54;
  const bottom = 34;
  const x = (i) => left + (i / (history.length - 1)) * (w - left - right);
  const y = (v) => h - bottom - (v / max) * (h - bottom - 12);
  ctx.font = "11px system-ui";
  ctx.fillStyle = "#667";
  ctx.strokeStyle = "#ccd";
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(left, 8);
  ctx.lineTo(left, h - bottom);
  ctx.lineTo(w - right, h - bottom);
  ctx.lineTo(w - right, 8);
  ctx.stroke();
  // Left axis: cumulative bytes received; right axis: P2P share; bottom axis: time.
  ctx.textAlign = "right";
  ctx.fillText(fmtBytes(max), left - 4, 16);
  ctx.fillText(fmtBytes(Math.round(max / 2)), left - 4, y(max / 2) + 4);
  ctx.fillText("0", left - 4, h - bottom + 4);
  ctx.textAlign = "left";
  ctx.fillText("100 %", w - right + 4, 16);
  ctx.fillText("50 %", w - right + 4, y(max / 2) + 4);
  ctx.fillText("0 %", w - right + 4, h - bottom + 4);
  const spanS = history[history.length - 1].t - history[0].t;
  ctx.textAlign = "center";
  ctx.fillText(`-${spanS.toFixed(0)} s`, left, h - bottom + 14);
  ctx.fillText(`-${(spanS / 2).toFixed(0)} s`, (left + w - right) / 2, h - bottom + 14);
  ctx.fillText("now", w - right, h - bottom + 14);
  ctx.fillText("time (s before now)", (left + w - right) / 2, h - 4);
  ctx.save();
  ctx.translate(11, (h - bottom) / 2);
  ctx.rotate(-Math.PI / 2);
  ctx.fillText("bytes received (cumulative)", 0, 0);
  ctx.restore();
  ctx.save();
  ctx.translate(w - 14, (h - bottom) / 2);
  ctx.rotate(Math.PI / 2);
  ctx.fillStyle = "#2f5bd3";
  ctx.fillText("P2P share of bytes", 0, 0);
  ctx.restore();
  ctx.textAlign = "left";
  // Stacked areas: CDN at the bottom, peers on top (cumulative bytes).
  const area = (lower, upper, colour) => {
    ctx.beginPath();
    history.forEach((p, i) => (i ? ctx.lineTo(x(i), y(upper(p))) : ctx.moveTo(x(i), y(upper(p)))));
    for (let i = history.length - 1; i >= 0; i--) ctx.lineTo(x(i), y(lower(history[i])));
    ctx.closePath();
    ctx.fillStyle = colour;
    ctx.fill();
  };
  area(() => 0, (p) => p.cdn, "#cf5a0099");
  area((p) => p.cdn, (p) => p.cdn + p.p2p, "#1a7f3799");
  // The P2P ratio (right axis, 0..100 %).
  ctx.beginPath();
  ctx.strokeStyle = "#2f5bd3";
  ctx.lineWidth = 2;
  history.forEach((p, i) => {
    const total = p.p2p + p.cdn;
    const ratio = total ? p.p2p / total : 0;
    const yy = y(ratio * max);
    if (i) ctx.lineTo(x(i), yy);
    else ctx.moveTo(x(i), yy);
  });
  ctx.stroke();
}

function renditionText() {
  const level = hls?.levels?.[hls.currentLevel];
  if (!level) return ["–", "–"];
  const size = level.width && level.height ? `${level.width}×${level.height}` : "";
  const name = [level.name, size].filter(Boolean).join(" ") || `#${hls.currentLevel}`;
  return [name, level.bitrate ? `${Math.round(level.bitrate / 1000)} kbit/s` : "–"];
}

function render() {
  const p2p = window.p2p;
  if (!p2p) return;
  const s = p2p.stats();
  $("fig-p2p").textContent = fmtBytes(s.bytesFromPeers);
  $("fig-cdn").textContent = fmtBytes(s.bytesFromCdn);
  $("fig-up").textContent = fmtBytes(s.bytesUploaded);
  $("fig-ratio").textContent = `${(s.p2pRatio * 100).toFixed(1)} %`;
  $("fig-buffer").textContent = fmtS(s.bufferS);
  $("fig-latency").textContent = fmtS(s.latencyS);
  const [rendition, bitrate] = renditionText();
  $("fig-rendition").textContent = rendition;
  $("fig-bitrate").textContent = bitrate;
  const role = s.p2pEnabled && s.trackerConnected ? roles(s) : null;
  $("fig-role").textContent = role ? role.self : s.trackerRefused ? "P2P refused" : "–";
  $("status").textContent =
    `peer ${s.peerId} · swarm ${s.swarmId ?? "…"} · tracker ${s.trackerConnected ? "connected" : s.trackerRefused ? `refused (${s.trackerRefused})` : "offline"}` +
    ` · ${s.connectedPeers} peers`;
  const rows = s.peers
    .filter((p) => p.connected || p.banned || p.bytesDown || p.bytesUp)
    .map((p) => {
      const state = p.banned ? '<span class="banned">banned</span>' : p.connected ? "connected" : "gone";
      const rate = p.rateBytesPerS ? `${fmtBytes(Math.round(p.rateBytesPerS))}/s` : "–";
      const r = role && p.connected && !p.banned ? role.label(p.peerId) : "–";
      return `<tr><td>${escapeHtml(p.peerId)}</td><td>${state}</td><td>${r}</td><td>${fmtBytes(p.bytesDown)}</td>` +
        `<td>${fmtBytes(p.bytesUp)}</td><td>${rate}</td></tr>`;
    });
  $("peers").tBodies[0].innerHTML = rows.join("");
  $("details").textContent =
    `segments: ${s.segmentsFromPeers} from peers, ${s.segmentsFromCdn} from the CDN, ` +
    `${s.segmentsVerified} verified (${s.integrity}), ${s.hashFailures} hash failures`;
  drawChart(s.history);
}

main().catch((exc) => {
  $("message").textContent = `demo failed to start: ${exc}`;
  console.error(exc);
});
