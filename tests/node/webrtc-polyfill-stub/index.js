// Fake WebRTC for the signaling conformance test.
//
// bittorrent-tracker's WebSocket client builds its peers with simple-peer, which imports
// RTCPeerConnection and friends from 'webrtc-polyfill'. package.json overrides that package with
// this directory, so the real tracker client runs unmodified while this fake generates offers and
// answers: each SDP carries a unique session id, and every description set on a connection is
// recorded in `fakeWrtcLog`, so a test can prove which offer reached which peer and that the
// answer travelled back through the tracker. No media or data ever flows.

import { EventEmitter } from 'node:events'

export const fakeWrtcLog = new EventEmitter()
let nextSessionId = 1

function fakeSdp (type, sessionId) {
  return [
    'v=0',
    `o=- ${sessionId} 2 IN IP4 127.0.0.1`,
    's=-',
    't=0 0',
    'a=group:BUNDLE 0',
    'm=application 9 UDP/DTLS/SCTP webrtc-datachannel',
    'c=IN IP4 0.0.0.0',
    `a=ice-ufrag:fake${sessionId}`,
    'a=ice-pwd:fakefakefakefakefakefake',
    `a=setup:${type === 'offer' ? 'actpass' : 'active'}`,
    'a=mid:0',
    'a=sctp-port:5000',
    ''
  ].join('\r\n')
}

class FakeDataChannel {
  constructor (label) {
    this.label = label
    this.readyState = 'connecting'
    this.binaryType = 'arraybuffer'
    this.bufferedAmount = 0
    this.bufferedAmountLowThreshold = 0
  }

  send () {}
  close () { this.readyState = 'closed' }
}

export class RTCSessionDescription {
  constructor ({ type, sdp }) {
    this.type = type
    this.sdp = sdp
  }
}

export class RTCIceCandidate {
  constructor (init) { Object.assign(this, init) }
}

export class RTCPeerConnection {
  constructor (config) {
    this.config = config
    this.sessionId = String(nextSessionId++)
    this.localDescription = null
    this.remoteDescription = null
    this.signalingState = 'stable'
    this.iceConnectionState = 'new'
    this.iceGatheringState = 'new'
    this.connectionState = 'new'
  }

  createDataChannel (label) { return new FakeDataChannel(label) }
  async createOffer () { return { type: 'offer', sdp: fakeSdp('offer', this.sessionId) } }
  async createAnswer () { return { type: 'answer', sdp: fakeSdp('answer', this.sessionId) } }

  async setLocalDescription (desc) {
    this.localDescription = new RTCSessionDescription(desc)
    fakeWrtcLog.emit('local', { sessionId: this.sessionId, type: desc.type, sdp: desc.sdp })
    // Non-trickle: report the end of candidate gathering right away.
    setImmediate(() => {
      this.iceGatheringState = 'complete'
      if (this.onicecandidate) this.onicecandidate({ candidate: null })
    })
  }

  async setRemoteDescription (desc) {
    this.remoteDescription = new RTCSessionDescription(desc)
    fakeWrtcLog.emit('remote', { sessionId: this.sessionId, type: desc.type, sdp: desc.sdp })
  }

  async addIceCandidate () {}
  getStats (cb) { if (cb) cb([]); return Promise.resolve(new Map()) }
  getSenders () { return [] }
  close () { this.connectionState = 'closed' }
}
