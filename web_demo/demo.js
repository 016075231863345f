// The demo page: a player, a stream picker over the test origin's streams, and a live panel
// (P2P vs CDN bytes and ratio over time, peers with bytes up/down, buffer, latency).
// config.json is written by the launcher (python -m peer_agent.demo):
//   {origin, tracker, token, stream, engine: {P2PEngine options}, hls: {hls.js options}}
// Query parameters: ?stream=<name> picks a stream.

import Hls from "./vendor/hls.js/hls.mjs";
import { P2PEngine } from "./engine.js";

const $ = (id) => document.getElementById(id);
const video = $("video");
let hls = null;

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
  const p2p = new P2PEngine({ ...(config.engine || {}), tracker: config.tracker, token: config.token, Hls });
  window.p2p = p2p;
  hls = new Hls({ ...(config.hls || {}), ...p2p.hlsConfig() });
  window.hls = hls;
  hls.on(Hls.Events.ERROR, (_, d) => {
    if (d.fatal) $("message").textContent = `hls.js: ${d.type} ${d.details}`;
  });
  hls.attachMedia(video); // before loadSource: hls.js picks the live start when the playlist arrives
  hls.loadSource(stream.master_url);
  video.muted = true;
  video.play().catch(() => {});
}

function drawChart(history) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const w = canvas.width;
  const h = canvas.height;
  ctx.clearRect(0, 0, w, h);
  if (history.length < 2) return;
  const max = Math.max(1, ...history.map((p) => p.p2p + p.cdn));
  const x = (i) => (i / (history.length - 1)) * (w - 40) + 30;
  const y = (v) => h - 15 - (v / max) * (h - 30);
  ctx.font = "11px system-ui";
  ctx.fillStyle = "#889";
  ctx.fillText(fmtBytes(max), 2, 12);
  ctx.fillText("0", 2, h - 15);
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
    const yy = h - 15 - ratio * (h - 30);
    if (i) ctx.lineTo(x(i), yy);
    else ctx.moveTo(x(i), yy);
  });
  ctx.stroke();
  ctx.fillStyle = "#2f5bd3";
  ctx.fillText("100 %", w - 38, 12);
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
  $("status").textContent =
    `peer ${s.peerId} · swarm ${s.swarmId ?? "…"} · tracker ${s.trackerConnected ? "connected" : "offline"}` +
    ` · ${s.connectedPeers} peers`;
  const rows = s.peers
    .filter((p) => p.connected || p.banned || p.bytesDown || p.bytesUp)
    .map((p) => {
      const state = p.banned ? '<span class="banned">banned</span>' : p.connected ? "connected" : "gone";
      const rate = p.rateBytesPerS ? `${fmtBytes(Math.round(p.rateBytesPerS))}/s` : "–";
      return `<tr><td>${escapeHtml(p.peerId)}</td><td>${state}</td><td>${fmtBytes(p.bytesDown)}</td>` +
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
