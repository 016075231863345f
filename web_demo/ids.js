// Swarm and peer identity (docs/protocol.md §2), as peer_agent/net/swarm.py derives them.
//
//   swarmIdFor(url)     -> Promise<string>: first 20 hex digits of SHA-1("p2p-hls/1 " + url)
//   makePeerId(random)  -> "-PH0001-" + 12 characters of [0-9A-Za-z]
//   asciiBytes(s)       -> Uint8Array of a 20-character ASCII id (the HELLO's swarm_id/peer_id)
//   keyedPeerId(key)    -> Promise<string>: "-PH0002-" + 12 characters derived from a secret peer_key
//   makeKeyedIdentity() -> Promise<{peerId, peerKey}>: a fresh key (WebCrypto CSPRNG) and its peer_id
// Keyed peer_ids (docs/signaling.md "peer_id ownership"): the tracker lets only the key's holder
// announce one, after any reconnect or tracker restart. Vectors: docs/vectors/signaling/peer_key.json.

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

export const KEYED_PEER_ID_PREFIX = "-PH0002-";
const PEER_KEY_DOMAIN = "p2p-hls peer_key/1 ";
const PEER_KEY_RE = /^[0-9A-Za-z_-]{16,64}$/;
const PEER_KEY_CHARS = 32;

export function isKeyedPeerId(peerId) {
  return typeof peerId === "string" && peerId.startsWith(KEYED_PEER_ID_PREFIX);
}

export function validPeerKey(peerKey) {
  return typeof peerKey === "string" && PEER_KEY_RE.test(peerKey);
}

export async function keyedPeerId(peerKey) {
  if (!validPeerKey(peerKey)) throw new Error("a peer_key is 16..64 characters of [0-9A-Za-z_-]");
  const digest = new Uint8Array(await subtle().digest("SHA-256", new TextEncoder().encode(PEER_KEY_DOMAIN + peerKey)));
  let tail = "";
  for (let i = 0; i < 12; i++) tail += ALPHABET[digest[i] % 62];
  return KEYED_PEER_ID_PREFIX + tail;
}

export function makePeerKey() {
  const crypto = globalThis.crypto;
  if (!crypto?.getRandomValues) throw new Error("WebCrypto (crypto.getRandomValues) is unavailable");
  let key = "";
  while (key.length < PEER_KEY_CHARS) {
    for (const b of crypto.getRandomValues(new Uint8Array(PEER_KEY_CHARS))) {
      if (b < 248 && key.length < PEER_KEY_CHARS) key += ALPHABET[b % 62]; // 248 = 4 * 62: unbiased
    }
  }
  return key;
}

export async function makeKeyedIdentity() {
  const peerKey = makePeerKey();
  return { peerId: await keyedPeerId(peerKey), peerKey };
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
