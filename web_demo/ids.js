// Swarm and peer identity (docs/protocol.md §2), as peer_agent/net/swarm.py derives them.
//
//   swarmIdFor(url)     -> Promise<string>: first 20 hex digits of SHA-1("p2p-hls/1 " + url)
//   makePeerId(random)  -> "-PH0001-" + 12 characters of [0-9A-Za-z]
//   asciiBytes(s)       -> Uint8Array of a 20-character ASCII id (the HELLO's swarm_id/peer_id)

export const SWARM_ID_PREFIX = "p2p-hls/1 ";
export const PEER_ID_PREFIX = "-PH0001-";
const ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

function subtle() {
  const s = globalThis.crypto?.subtle;
  if (!s) throw new Error("WebCrypto (crypto.subtle) is unavailable: serve the page over http://localhost or https");
  return s;
}

export function toHex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

export async function swarmIdFor(url) {
  const digest = await subtle().digest("SHA-1", new TextEncoder().encode(SWARM_ID_PREFIX + url));
  return toHex(digest).slice(0, 20);
}

export function makePeerId(random = Math.random) {
  let tail = "";
  for (let i = 0; i < 20 - PEER_ID_PREFIX.length; i++) tail += ALPHABET[Math.floor(random() * ALPHABET.length)];
  return PEER_ID_PREFIX + tail;
}

export function asciiBytes(id) {
  const out = new Uint8Array(id.length);
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c > 0xff) throw new Error(`not a byte string: ${JSON.stringify(id)}`);
    out[i] = c;
  }
  return out;
}

export function bytesToAscii(bytes) {
  return String.fromCharCode(...bytes);
}
