// Type declarations of p2p-hls-engine (the browser engine of p2p-hls). docs/api.md is generated
// from this file (`npm run docs:api`); keep every public option, stat and event documented here.

/** Source of the bytes of a segment handed to hls.js. */
export type SegmentSource = "peer" | "cdn" | "store";

/** Integrity of peers' bytes: SHA-256 against a manifest, or sizes only (no manifest). */
export type IntegrityMode = "sha256" | "size-only";

/** Scheduler tuning (scheduler.js, docs/scheduling.md); every field optional. */
export interface SchedulerOptions {
  /** Segments this far ahead of the playhead are fetched ahead of time (s). Default 30. */
  prefetch_window_s?: number;
  /** Safety margin before a segment's deadline (s). Default 1. */
  deadline_margin_s?: number;
  /** Segments closer than this to the playhead always come from the CDN (s). Default 1.5. */
  min_urgent_window_s?: number;
  /** Assumed CDN first-byte latency (s). Default 0.1. */
  cdn_latency_s?: number;
  /** CDN throughput assumed before one was measured (bytes/s). Default 1e6. */
  assumed_cdn_bytes_per_s?: number;
  /** A peer transfer with no bytes this long, plus `stall_timeout_rtts` measured round trips to that peer, is cancelled and resumed elsewhere (s). Default 1.5. */
  peer_stall_timeout_s?: number;
  /** Round trips to the peer added to the stall timeout (docs/scheduling.md). Default 2. */
  stall_timeout_rtts?: number;
  /** A CDN fetch of an urgent segment with no bytes this long (plus `cdn_latency_s` before its first byte) is cancelled and the rest fetched again, while a new request can still make the deadline (s; 0: never). Default 0.6. */
  cdn_stall_timeout_s?: number;
  /** Throughput assumed for a peer never measured (bytes/s). Default 5e5. */
  untried_peer_bytes_per_s?: number;
  /** Concurrent downloads from peers. Default 6. */
  max_downloads_from_peers?: number;
  /** Concurrent downloads from one peer. Default 2. */
  max_downloads_per_peer?: number;
  /** Concurrent CDN downloads. Default 2. */
  max_cdn_downloads?: number;
  /** Take segments from peers that are still downloading them. Default true. */
  cut_through?: boolean;
  /** Backup CDN fetchers wait this long after the elected one (s). Default 2. */
  backup_delay_s?: number;
  /** Neighbours within this many segments of a segment take part in its election. Default 3. */
  election_lookback_segments?: number;
  /** Expected CDN fetchers per segment in a large swarm. Default 4. */
  seed_fetchers?: number;
  /** Re-run the scheduler at least this often (s). Default 0.5. */
  idle_recheck_s?: number;
  /** Never re-run the scheduler more often than this (s). Default 0.05. */
  min_recheck_s?: number;
}

/** Peer session tuning (session.js, docs/protocol.md); every field optional. */
export interface SessionOptions {
  /** A peer that sends no HELLO in this long is closed (s). Default 10. */
  hello_timeout_s?: number;
  /** A request with no response this long fails (s). Default 4. */
  request_timeout_s?: number;
  /** A transfer with no data this long fails (s). Default 4. */
  idle_data_timeout_s?: number;
  /** Largest data-channel message (bytes). Default 65536. */
  max_message_bytes?: number;
  /** DATA frame size (bytes): a relay forwards a frame only once it arrived whole. Default 16384. */
  data_frame_bytes?: number;
  /** Requests a peer may have open with us. Default 8. */
  max_inbound_requests?: number;
  /** Requests we keep open with one peer. Default 8. */
  max_outbound_requests?: number;
  /** Cancelled request ids remembered (late frames dropped silently). Default 64. */
  recently_cancelled_keep?: number;
  /** Retry hint of an automatic BUSY (ms). Default 500. */
  busy_retry_after_ms?: number;
  /** Never upload (announced in HELLO). Default false. */
  leech_only?: boolean;
}

/** Tracker client tuning (tracker.js); every field optional. */
export interface TrackerOptions {
  /** First reconnect delay; doubles per failure (s). Default 0.5. */
  reconnect_initial_s?: number;
  /** Cap of the reconnect delay (s). Default 30. */
  reconnect_max_s?: number;
  /** Reconnect delay multiplied by a uniform factor in [1 - j, 1 + j]. Default 0.5. */
  reconnect_jitter?: number;
  /** Re-announce period until the server sends its interval (s). Default 120. */
  default_interval_s?: number;
  /** Floor of the server's interval (s). Default 5. */
  min_interval_s?: number;
  /** Early announces are spaced by at least this (s). Default 2. */
  min_announce_gap_s?: number;
}

/** Integrity penalties; every field optional. */
export interface IntegrityOptions {
  /** Hash failures after which a peer is banned. Default 2. */
  ban_after_failures?: number;
  /** A peer that sent a bad segment is avoided this long (s). Default 10. */
  penalty_s?: number;
  /** A failed segment whose peer bytes all came from one peer bans it at once (docs/exchange.md section 6). Default true. */
  ban_sole_contributor?: boolean;
}

/** Segment exchange overrides (segment_exchange.js, docs/exchange.md section 2); every field
 * optional. They win over the engine options that set the same thing. */
export interface ExchangeOptions {
  /** Peer requests served at once; one more is answered BUSY. Default 4 (engine: maxUploads). */
  max_uploads?: number;
  /** Upload cap over all uploads (bytes/s); null: none. Default null (engine: uploadCapBytesPerS). */
  upload_cap_bytes_per_s?: number | null;
  /** Token bucket size (bytes); null: a quarter second of the cap, at least 16384. Default null. */
  upload_burst_bytes?: number | null;
  /** Never upload, never announce. Default false. */
  leech_only?: boolean;
  /** Retry hint of the BUSY sent beyond max_uploads (ms). Default 500. */
  busy_retry_after_ms?: number;
  /** Back-off after a BUSY without a hint, or a request the session refused (s). Default 0.5. */
  busy_backoff_s?: number;
  /** A BUSY hint is obeyed up to this (s). Default 30. */
  max_busy_backoff_s?: number;
  /** CDN refetches of a segment that failed its hash before it is given up. Default 3. */
  max_hash_retries?: number;
  /** Withheld of a relayed segment until our copy verifies: its final DATA frame. Default 16375. */
  relay_holdback_bytes?: number;
  /** Verified segments kept (bytes). Default 256 MiB (engine: storeMaxBytes, 64 MiB). */
  store_max_bytes?: number;
  /** Hash failures after which a peer is banned. Default 2. */
  ban_after_failures?: number;
  /** A peer that sent a bad segment is avoided this long (s). Default 10. */
  penalty_s?: number;
  /** A failed segment whose peer bytes all came from one peer bans it at once (docs/exchange.md section 6). Default true. */
  ban_sole_contributor?: boolean;
  /** Size guess for a segment of which nothing is known (bytes). Default 500000. */
  default_segment_bytes?: number;
  /** One neighbour's requests served at once; one more is answered BUSY. Default 2. */
  max_uploads_per_peer?: number;
  /** Uploads of one segment to one neighbour that ran to the end; one more is BUSY(0xFFFF). Default 1. */
  max_serves_per_segment?: number;
  /** Sliding window over which the bytes served to each neighbour count (s). Default 30. */
  peer_window_s?: number;
  /** Copies of the stream (bitrate x window) one neighbour may draw per window. Default 3. */
  peer_window_copies?: number;
  /** Bitrate assumed while the playlist gives none (bits/s). Default 5000000. */
  default_bitrate_bits_per_s?: number;
  /** Without upload_cap_bytes_per_s: copies of the stream per open neighbour. Default 1.5. */
  upload_cap_copies?: number;
  /** BUSY while uploads still owe more than this many seconds of the cap (s). Default 2. */
  cap_backlog_s?: number;
  /** Margin behind the playhead whose segments' records are kept (docs/exchange.md §3 "Bounds") (s). Default 30. */
  retain_behind_s?: number;
  /** Penalty points of an ABSENT for a segment the peer announced. Default 4 (one refuses). */
  points_absent_after_have?: number;
  /** Penalty points of a request for a segment the peer announced (refused BUSY 65535). Default 2. */
  points_request_after_have?: number;
  /** Penalty points of an ABSENT for a segment the peer announced FETCHING (not HAVE). Default 1. */
  points_absent_after_fetching?: number;
  /** A peer download cancelled after this long without a byte, plus `stall_rtts` round trips, makes the peer a stall suspect if it owed bytes (s). Default 1. */
  stall_s?: number;
  /** Measured round trips to the peer added to `stall_s` and `stall_offence_s`. Default 2. */
  stall_rtts?: number;
  /** A suspect is charged a stall only after this long (plus `stall_rtts` round trips) from its last byte with no progress (s). Default 3. */
  stall_offence_s?: number;
  /** Penalty points of a request that timed out or was cancelled as a stall. Default 2. */
  points_stall?: number;
  /** Penalty points of a matured stall of a download abandoned while its link was alive (another frame of the peer after its last byte, the segment announced HAVE). Default 3. */
  points_abandoned?: number;
  /** Penalty points of a session we closed for a protocol error or a limit. Default 4. */
  points_protocol_error?: number;
  /** Penalty points of a session we closed for a state violation (unknown request id). Default 4. */
  points_unknown_request?: number;
  /** Penalty points of a hash failure the peer contributed to. Default 3. */
  points_hash_failure?: number;
  /** Penalty points of a broken promise: a cut-through download we gave up whose peer never announced the segment HAVE before the segment left what the exchange retains. Default 1. */
  points_broken_promise?: number;
  /** Open cut-through promises kept per peer id (the oldest dropped uncharged beyond). Default 64. */
  max_promises_per_peer?: number;
  /** Points lost per second. Default 0.02. */
  decay_points_per_s?: number;
  /** Points at which a peer is disconnected and refused. Default 4. */
  refuse_points?: number;
  /** First refusal's length (s), doubled at each further one. Default 30. */
  refuse_s?: number;
  /** Longest refusal (s). Default 3600. */
  max_refuse_s?: number;
  /** Points at which a peer id and its identity keys are banned. Default 6. */
  ban_points?: number;
}

/** Options of `new P2PEngine(options)`; every field optional, unknown fields throw. */
export interface P2PEngineOptions {
  /** Signaling WebSocket URL (`ws://host:8000/announce` or `wss://`); null: CDN only. Default null. */
  tracker?: string | null;
  /** Join token for the swarm (sent as `?token=`; mint it with `p2p-signaling mint-token`). Default null. */
  token?: string | null;
  /** RTCPeerConnection iceServers (STUN/TURN); empty: host candidates only. Default []. */
  iceServers?: RTCIceServer[];
  /**
   * Ask the tracker for ICE servers (STUN, and TURN with short-lived TURN REST credentials:
   * p2p-signaling --ice-urls/--turn-secret) before offering; they go ahead of iceServers.
   * Default false.
   */
  iceFromTracker?: boolean;
  /** Neighbours at most. Default 8. */
  maxPeers?: number;
  /** Fresh offers per announce (the tracker allows at most 5). Default 3. */
  offersPerAnnounce?: number;
  /** Concurrent uploads; further requests are answered BUSY. Default 4. */
  maxUploads?: number;
  /** Upload cap over all uploads (bytes/s, a token bucket); null: none. Default null. */
  uploadCapBytesPerS?: number | null;
  /** Bytes of verified segments kept for the player and for peers. Default 64 MiB. */
  storeMaxBytes?: number;
  /** Neighbours get this long to connect before we elect ourselves CDN fetcher (s). Default 1. */
  connectGraceS?: number;
  /** A neighbour that answered BUSY without a hint is left alone this long (s). Default 0.5. */
  busyBackoffS?: number;
  /** CDN refetches of a segment failing its hash before giving up on it. Default 3. */
  maxHashRetries?: number;
  /** The loader falls back to hls.js's own loader after this long (s). Default 8. */
  playerFallbackS?: number;
  /** Byte counters are sent to the tracker this often (s). Default 5. */
  statsIntervalS?: number;
  /** One sample of the byte counters for `stats().history` this often (s). Default 1. */
  historyIntervalS?: number;
  /** Samples kept in `stats().history`. Default 600. */
  historySamples?: number;
  /** Scheduler overrides. */
  scheduler?: SchedulerOptions;
  /** Peer session overrides. */
  session?: SessionOptions;
  /** Integrity penalties. */
  integrity?: IntegrityOptions;
  /** Segment exchange overrides (win over maxUploads, uploadCapBytesPerS, storeMaxBytes, ...). */
  exchange?: ExchangeOptions;
  /** Tracker client overrides. */
  trackerConfig?: TrackerOptions;
  /**
   * The string the swarm id derives from (docs/protocol.md §2); default: the URL given to
   * `hls.loadSource`, as it is. Viewers meet only if they derive the same id: when each viewer
   * gets a differently signed URL (`?token=`, `?Expires=&Signature=`...), pass one value for all,
   * e.g. `stripQuery(url)`. Default null.
   */
  swarmId?: string | null;
  /** @deprecated Older name of `swarmId`. */
  swarmUrl?: string | null;
  /**
   * Base URL of a hash service (`p2p-hashsvc`, docs/hashsvc.md) for origins that publish no
   * manifest: each rendition's manifest is `<hashService>/manifest?playlist=<media playlist URL>`.
   * Default null (manifest.json beside each media playlist).
   */
  hashService?: string | null;
  /**
   * Where a rendition's SHA-256 manifest is: a function of the media playlist URL and the
   * rendition index (null: size-only for it), or one URL for every rendition. Wins over
   * `hashService`. Default null.
   */
  manifestUrl?: string | ((playlistUrl: string, rendition: number) => string | null) | null;
  /** Start with P2P on (see `setP2PEnabled`). Default true. */
  p2p?: boolean;
  /** Serve segments to other peers (see `setUploadEnabled`). Default true. */
  upload?: boolean;
  /** hlsConfig()'s `backBufferLength` (s): hls.js otherwise keeps every played second in memory. null: hls.js's default (unbounded). Default 30. */
  backBufferS?: number | null;
  /** hlsConfig()'s `maxLiveSyncPlaybackRate`: a live page behind its target latency plays up to this fast until back (hls.js's default 1 never catches up, so its lag and store grow). 1 to 2; default 1.1. */
  liveCatchUpRate?: number;
  /** Hash every fragment handed to hls.js again (`stats().deliveries`; tests). Default false. */
  auditDeliveries?: boolean;
  /** Randomness (peer choice, ids, jitter). Default Math.random. */
  random?: () => number;
  /** The hls.js class. Default globalThis.Hls. */
  Hls?: unknown;
}

/** One neighbour in `stats().peers`. */
export interface PeerStats {
  peerId: string;
  /** A data channel is open and the peer said HELLO. */
  connected: boolean;
  /** Banned after repeated hash failures. */
  banned: boolean;
  /** Bytes received from this peer. */
  bytesDown: number;
  /** Bytes sent to this peer. */
  bytesUp: number;
  /** Measured throughput from this peer (bytes/s), null before a transfer. */
  rateBytesPerS: number | null;
  /** Segments it announced it holds. */
  have: number;
  /** Segments from it that failed their hash. */
  hashFailures: number;
}

/** One sample of `stats().history` (cumulative bytes). */
export interface HistorySample {
  /** performance.now() / 1000 when taken. */
  t: number;
  p2p: number;
  cdn: number;
  up: number;
}

/** One fragment handed to hls.js (only with `auditDeliveries`). */
export interface Delivery {
  sn: number;
  relurl: string | null;
  url: string;
  source: SegmentSource | "fallback";
  /** SHA-256 of the bytes handed over (filled in asynchronously). */
  sha256: string | null;
}

/** `engine.stats()`: a snapshot. */
export interface P2PEngineStats {
  peerId: string;
  /** The swarm id (20 hex characters); null until hls.js loads a source. */
  swarmId: string | null;
  /** Variant index hls.js plays now. */
  rendition: number | null;
  bytesFromPeers: number;
  bytesFromCdn: number;
  bytesUploaded: number;
  /** bytesFromPeers / (bytesFromPeers + bytesFromCdn). */
  p2pRatio: number;
  segmentsFromPeers: number;
  segmentsFromCdn: number;
  segmentsVerified: number;
  hashFailures: number;
  /** Fragments hls.js's own loader fetched because the engine could not in time. */
  cdnFallbacks: number;
  /** Bytes from peers thrown away (failed hash). */
  bytesRejected: number;
  /** Segments with peer bytes the manifest did not list: refetched from the CDN. */
  unverifiable: number;
  /** CDN fetches that failed. */
  cdnFailures: number;
  /** CDN fetches of urgent segments given up after cdn_stall_timeout_s without a byte and fetched again from the byte they reached (docs/scheduling.md, rule 1). */
  cdnStallCancels: number;
  /** Relays ABORTed because our own copy failed or was dropped (UPSTREAM_FAILED). */
  relaysAborted: number;
  /** Requests answered BUSY because every upload slot was taken. */
  busySent: number;
  integrity: IntegrityMode;
  /** CDN segment fetches (hls.js fallbacks included) in this viewer's join ramp: its start
   * segment and the 3 after it (docs/simulator.md, "Join ramp and steady state"). */
  cdnFetchesJoinRamp: number;
  /** CDN segment fetches past the join ramp. */
  cdnFetchesSteady: number;
  /** Integrity manifest requests (the first whole, then from a segment's MSN on). */
  manifestFetches: number;
  /** Body bytes of those manifest answers. */
  manifestBytes: number;
  peers: PeerStats[];
  connectedPeers: number;
  bannedPeers: string[];
  /** Banned subjects: `id:<peer id>`, `addr:<IP>`, `cert:<algorithm> <FINGERPRINT>` (docs/exchange.md §8b). */
  bannedSubjects: string[];
  /** Seconds of media buffered ahead of the playhead. */
  bufferS: number;
  /** Seconds behind the live edge (null for VOD or before playback). */
  latencyS: number | null;
  playheadS: number | null;
  trackerConnected: boolean;
  /** Reason the tracker refused us for good (e.g. "origin_forbidden"), else null. */
  trackerRefused: string | null;
  p2pEnabled: boolean;
  uploadEnabled: boolean;
  /** Peers in the swarm, as the tracker last said. */
  swarmSize: number;
  storeBytes: number;
  /** Segments in the store (bounded by docs/exchange.md §3 "Bounds"). */
  storeSegments: number;
  /** Entries of the exchange's per-segment records (bounded the same way). */
  segmentRecords: { sizes: number; verified: number; hashRetries: number; avoid: number; held: number };
  history: HistorySample[];
  deliveries: Delivery[];
  /** How often the scheduler asked for each "action:reason" (e.g. "fetch_cdn:elected"). */
  actions: Record<string, number>;
}

/** The fragment an event is about. */
export interface SegmentRef {
  url: string;
  /** Media sequence number. */
  sn: number;
  /** hls.js level (variant) index. */
  level: number | null;
}

/** `segment-loaded`: a fragment handed to hls.js. */
export interface SegmentLoadedEvent extends SegmentRef {
  type: "segment-loaded";
  source: SegmentSource;
  /** true: the engine could not serve it in time and hls.js's own loader fetched it. */
  fallback: boolean;
  bytes: number;
  /** The peer it came from (source "peer"), else null. */
  peerId: string | null;
  /** How long the transfer took (ms). */
  durationMs: number;
}

/** `segment-error`: the engine gave up on a fragment (fallback: hls.js's loader tries), or hls.js's loader failed. */
export interface SegmentErrorEvent extends SegmentRef {
  type: "segment-error";
  message: string;
  fallback: boolean;
}

/** `segment-abort`: hls.js aborted a fragment load. */
export interface SegmentAbortEvent extends SegmentRef {
  type: "segment-abort";
}

/** `peer-connected`: a neighbour's data channel opened and it said HELLO. */
export interface PeerConnectedEvent {
  type: "peer-connected";
  peerId: string;
  role: "offerer" | "answerer" | null;
  /** The peer never uploads. */
  leechOnly: boolean;
}

/** `peer-closed`: a neighbour's session ended (wire close code and reason, docs/protocol.md). */
export interface PeerClosedEvent {
  type: "peer-closed";
  peerId: string;
  code: number;
  reason: string;
  /** The peer (or its transport) closed, not us. */
  byRemote: boolean;
}

/** `peer-banned`: we banned a neighbour (repeated hash failures). */
export interface PeerBannedEvent {
  type: "peer-banned";
  peerId: string;
  reason: string;
}

/** `bytes-downloaded`: bytes arrived (per chunk). */
export interface BytesDownloadedEvent {
  type: "bytes-downloaded";
  source: "peer" | "cdn";
  peerId: string | null;
  bytes: number;
}

/** `bytes-uploaded`: bytes sent to a peer (per data-channel flush). */
export interface BytesUploadedEvent {
  type: "bytes-uploaded";
  peerId: string | null;
  bytes: number;
}

/** `tracker-connected`: the signaling server accepted us and answered our first announce. */
export interface TrackerConnectedEvent {
  type: "tracker-connected";
  url: string;
  swarmId: string;
  swarmSize: number;
}

/** `tracker-disconnected`: an accepted tracker connection closed (the client reconnects unless refused). */
export interface TrackerDisconnectedEvent {
  type: "tracker-disconnected";
  url: string;
  code: number;
  reason: string;
}

/** `integrity-mode`: how peers' bytes are checked changed. */
export interface IntegrityModeEvent {
  type: "integrity-mode";
  mode: IntegrityMode;
  manifestUrl: string | null;
}

/** `p2p-state`: `setP2PEnabled` or `setUploadEnabled` changed something. */
export interface P2PStateEvent {
  type: "p2p-state";
  p2p: boolean;
  upload: boolean;
}

/**
 * Reasons of `warning` and `error` events. From the tracker: `origin_forbidden` (close 4003),
 * `token_missing` / `token_invalid` (4001), `token_expired` (4002), `token_swarm_mismatch`,
 * `rate_limited` (4029), `too_many_connections` (1013), `idle_timeout` (4000),
 * `send_queue_full` (4008), `write_timeout` (4009), `server_going_away` (1001),
 * `connection_lost`, `tracker_unreachable`, `bad_tracker_url`, or any failure-reply reason of
 * docs/signaling.md; from the manifest: `no_manifest`, `manifest_unavailable`,
 * `manifest_http_<status>`; from the CDN: `cdn_fetch_failed`; from peers: `banned_by_peer`,
 * `identity_unknown` (the remote's address could not be read);
 * from the engine: `internal_error`.
 */
export type ProblemReason = string;

/** `warning`: something degraded; the engine goes on (the tracker client reconnects). */
export interface P2PWarningEvent {
  type: "warning";
  source: "tracker" | "manifest" | "cdn" | "peer" | "engine";
  reason: ProblemReason;
  message: string;
  /** The WebSocket close code, when there is one. */
  code: number | null;
}

/** `error`: P2P cannot work until the page or the operator acts (fatal: the tracker stopped; `setToken` retries). */
export interface P2PErrorEvent {
  type: "error";
  source: "tracker" | "manifest" | "cdn" | "peer" | "engine";
  reason: ProblemReason;
  message: string;
  code: number | null;
  fatal: boolean;
}

/** Every event: name -> detail. */
export interface P2PEngineEvents {
  "segment-loaded": SegmentLoadedEvent;
  "segment-error": SegmentErrorEvent;
  "segment-abort": SegmentAbortEvent;
  "peer-connected": PeerConnectedEvent;
  "peer-closed": PeerClosedEvent;
  "peer-banned": PeerBannedEvent;
  "bytes-downloaded": BytesDownloadedEvent;
  "bytes-uploaded": BytesUploadedEvent;
  "tracker-connected": TrackerConnectedEvent;
  "tracker-disconnected": TrackerDisconnectedEvent;
  "integrity-mode": IntegrityModeEvent;
  "p2p-state": P2PStateEvent;
  warning: P2PWarningEvent;
  error: P2PErrorEvent;
}

export type P2PEngineEventName = keyof P2PEngineEvents;

/** What `supportReport()` checks. */
export interface SupportReport {
  webrtc: boolean;
  webcrypto: boolean;
  websocket: boolean;
  mediaSource: boolean;
}

/** hls.js config fields from `hlsConfig()`; spread them into `new Hls({...})`. */
export interface P2PHlsConfig {
  /** The P2P fragment loader class (hls.js `fLoader`). */
  fLoader: any;
  /** hls.js's ABR controller, extended to attach the engine to the Hls instance. */
  abrController: any;
  /** options.backBufferS (absent when it is null). */
  backBufferLength?: number;
  /** options.liveCatchUpRate. */
  maxLiveSyncPlaybackRate: number;
}

/** The browser peer: one per hls.js instance. */
export class P2PEngine {
  constructor(options?: P2PEngineOptions);
  /** The options in force (defaults filled in). */
  readonly options: Readonly<Required<P2PEngineOptions>>;
  /** Our peer id (20 characters; a new one after setP2PEnabled(true)). */
  readonly peerId: string;
  /** The swarm id, once hls.js loaded a source. */
  readonly infoHash: string | null;
  readonly p2pEnabled: boolean;
  readonly uploadEnabled: boolean;
  /** "sha256" or "size-only" once the first manifest was tried, else null. */
  readonly integrityMode: IntegrityMode | null;
  readonly destroyed: boolean;

  /** WebRTC data channels, WebCrypto (secure context), WebSocket and MediaSource are here. */
  static isSupported(): boolean;
  static supportReport(): SupportReport;

  /** hls.js config: our fragment loader and the hook that hands the Hls instance to the engine. */
  hlsConfig<T extends object = {}>(extra?: T): P2PHlsConfig & T;
  /** Follow an Hls instance by hand (hlsConfig's hook does it; idempotent). */
  attach(hls: unknown): void;

  /** Listen to an event; returns a function that removes the listener. */
  on<K extends P2PEngineEventName>(type: K, listener: (event: P2PEngineEvents[K]) => void): () => void;
  /** Listen to the next event of a kind only. */
  once<K extends P2PEngineEventName>(type: K, listener: (event: P2PEngineEvents[K]) => void): () => void;
  off<K extends P2PEngineEventName>(type: K, listener: (event: P2PEngineEvents[K]) => void): void;

  /** P2P on or off at runtime (off: leave the swarm, everything from the CDN). */
  setP2PEnabled(on: boolean): void;
  /** Uploads on or off at runtime (off: new requests answered BUSY; transfers in flight finish). */
  setUploadEnabled(on: boolean): void;
  /** Replace the join token and reconnect (after token_expired / token_invalid errors). */
  setToken(token: string | null): void;

  /** A snapshot of every counter (the demo panel draws it). */
  stats(): P2PEngineStats;
  /** Leave the swarm and stop (hls.js's DESTROYING does it too). */
  destroy(): void;
}

/** Every option with its default. */
export const DEFAULT_ENGINE_OPTIONS: Readonly<Required<P2PEngineOptions>>;
/** Scheduler defaults. */
export const DEFAULT_SCHEDULER_CONFIG: Readonly<Required<SchedulerOptions>>;
/** Peer session defaults. */
export const DEFAULT_SESSION_CONFIG: Readonly<Required<SessionOptions>>;
/** Tracker client defaults. */
export const DEFAULT_TRACKER_CONFIG: Readonly<Required<TrackerOptions>>;
/** Every event name. */
export const ENGINE_EVENTS: readonly P2PEngineEventName[];

/** The swarm id of a URL or swarmId string: first 20 hex digits of SHA-1("p2p-hls/1 " + key). */
export function swarmIdFor(key: string): Promise<string>;
/** `url` without its query string and fragment (a swarmId for per-viewer signed URLs). */
export function stripQuery(url: string): string;
/** The manifest URL of a media playlist at a hash service (`p2p-hashsvc`). */
export function hashServiceManifestUrl(serviceUrl: string, playlistUrl: string): string;
/** What isSupported() checks, in an environment (default globalThis). */
export function supportReport(env?: object): SupportReport;
/** How the engine reads a tracker WebSocket close (docs/signaling.md close codes). */
export function classifyClose(
  code: number,
  serverReason?: string,
  context?: { opened?: boolean; hadToken?: boolean },
): { level: "warning" | "error"; reason: ProblemReason; message: string; fatal: boolean };
