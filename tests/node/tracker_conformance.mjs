// Conformance: the real npm `bittorrent-tracker` WebSocket client against our server.
//
// Usage: node tests/node/tracker_conformance.mjs ws://127.0.0.1:PORT/announce
// Prints one JSON object with what happened; the pytest driver asserts on it.
//
// WebRTC is faked (package.json overrides 'webrtc-polyfill' with tests/node/webrtc-polyfill-stub),
// so the client generates offers/answers with unique SDP session ids; the signaling exchange
// through the server is real. Two client "processes" are simulated by giving each its own URL
// (the client pools one socket per URL): alice's two swarms share one socket.

import Client from 'bittorrent-tracker'
import { fakeWrtcLog } from 'webrtc-polyfill'

const base = process.argv[2]
if (!base) {
  console.error('usage: tracker_conformance.mjs WS_URL')
  process.exit(2)
}
const urlAlice = `${base}?client=alice`
const urlBob = `${base}?client=bob`
const SWARM1 = 'aa'.repeat(20)
const SWARM2 = 'bb'.repeat(20)
const hexId = (ch) => Buffer.from(ch.repeat(20)).toString('hex')

const result = {
  updates: [],
  warnings: [],
  localAnswers: [],
  remoteOffers: [],
  remoteAnswers: [],
  peers: [],
  scrape: null
}

fakeWrtcLog.on('local', (d) => { if (d.type === 'answer') result.localAnswers.push(d.sdp) })
fakeWrtcLog.on('remote', (d) => {
  if (d.type === 'offer') result.remoteOffers.push(d.sdp)
  if (d.type === 'answer') result.remoteAnswers.push(d.sdp)
})

function makeClient (name, infoHash, url, extra = {}) {
  const client = new Client({
    infoHash,
    peerId: hexId(name),
    announce: [url],
    port: 6881,
    ...extra
  })
  client.on('update', (data) => {
    result.updates.push({ name, infoHash: data.infoHash, complete: data.complete, incomplete: data.incomplete })
  })
  client.on('warning', (err) => result.warnings.push(`${name}: ${err.message}`))
  client.on('error', (err) => result.warnings.push(`${name} error: ${err.message}`))
  client.on('peer', (peer) => result.peers.push({ name, infoHash, remote: peer.id }))
  return client
}

function waitForLine () {
  return new Promise((resolve) => {
    if (process.stdin.isTTY || process.env.CONFORMANCE_NO_PAUSE) return resolve()
    process.stdin.once('data', () => { process.stdin.pause(); resolve() })
  })
}

function once (emitter, event, timeoutMs = 8000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`timeout waiting for ${event}`)), timeoutMs)
    emitter.once(event, (...args) => { clearTimeout(timer); resolve(args) })
  })
}

async function main () {
  // alice joins two swarms over one socket; bob joins both later (his own socket) with offers,
  // passing p2p-hls extension fields through the standard getAnnounceOpts hook.
  const alice1 = makeClient('a', SWARM1, urlAlice)
  const alice2 = makeClient('a', SWARM2, urlAlice)
  alice1.start()
  alice2.start()
  await Promise.all([once(alice1, 'update'), once(alice2, 'update')])

  const bob1 = makeClient('b', SWARM1, urlBob, {
    getAnnounceOpts: () => ({ position_s: 42.5, region: 'eu' })
  })
  const bob2 = makeClient('b', SWARM2, urlBob)
  const bobPeers = Promise.all([once(bob1, 'peer'), once(bob2, 'peer')])
  bob1.start()
  bob2.start()
  await bobPeers // emitted when alice's answers come back through the server

  // Let the driver inspect the server while everyone is still in the swarms.
  console.log(JSON.stringify({ phase: 'paired' }))
  await waitForLine()

  const scraped = once(alice1, 'scrape')
  alice1.scrape()
  result.scrape = (await scraped)[0]
  delete result.scrape.announce

  const stopped = once(alice2, 'update')
  alice2.stop()
  await stopped.catch(() => null)
  await new Promise((resolve) => setTimeout(resolve, 100))

  for (const c of [alice1, alice2, bob1, bob2]) c.destroy()
  console.log(JSON.stringify(result))
  process.exit(0)
}

main().catch((err) => {
  result.error = String(err && err.stack ? err.stack : err)
  console.log(JSON.stringify(result))
  process.exit(1)
})
