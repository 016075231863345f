"""Network adapters of the headless peer agent: thin asyncio glue, all decisions in the core.

Modules (one concern each):

- :mod:`peer_agent.net.tracker` -- :class:`TrackerClient`, a WebSocket client of the WebTorrent
  tracker protocol as ``signaling/`` speaks it (announce with full SDP offers, relayed offers and
  answers, ``interval`` re-announce, ``failure reason`` replies, our ``stats`` message and
  extension fields, ``?token=``, reconnect with exponential backoff and jitter, ``stopped`` on
  close).
- :mod:`peer_agent.net.rtc` -- :class:`PeerLink`, one neighbour: an aiortc ``RTCPeerConnection``
  with one ordered, reliable data channel labelled ``p2p-hls/1`` and a
  :class:`~peer_agent.core.session.PeerSession` it drives (messages in, events out, output
  flushed under a ``bufferedAmount`` high-water mark, one timer re-armed with ``loop.call_at``).
- :mod:`peer_agent.net.swarm` -- :class:`Swarm`, one swarm: a tracker client plus up to
  ``max_peers`` links; offers, answers, dead-link cleanup, broadcasts.

Public API (stable; the agent builds on it)::

    swarm_id_for(url: str) -> str            # first 20 hex chars of sha1(b"p2p-hls/1 " + url)
    make_peer_id(rng: random.Random) -> str  # "-PH0001-" + 12 random [0-9A-Za-z]

    SwarmConfig(max_peers=8, offers_per_announce=3, offer_ttl_s=30.0, ice_servers=(),
                host_addresses=None, high_water_bytes=1 MiB, low_water_bytes=256 KiB,
                close_timeout_s=2.0, min_announce_gap_s=2.0, session=SessionConfig(),
                tracker=TrackerConfig())                     # frozen; see swarm.py
    Swarm(tracker_url: str, info_hash: str, peer_id: str, *,
          on_event: Callable[[PeerLink, Event], None],
          hello: Callable[[], HelloContent] | None = None,
          config: SwarmConfig = SwarmConfig(), token: str | None = None,
          rng: random.Random | None = None)
      .links: dict[str, PeerLink]            # peer_id -> link (answered/accepted, not closed)
      async .start() / async .stop()         # stop: "stopped" announce, links closed GOING_AWAY
      .broadcast_have(segments) / .broadcast_fetching(entries) / .broadcast_lost(segments)
      .set_position(position_s: float | None)  # tracker pairing hint (position_s)
      async .send_stats(bytes_p2p_down: int, bytes_p2p_up: int, bytes_cdn: int)
      .announce_now()                        # ask for an early re-announce
      .tracker: TrackerClient

    HelloContent = tuple[Iterable[SegmentId], Iterable[FetchingEntry]]  # (have, fetching)

    PeerLink  # one neighbour; the app drives it from on_event(link, event):
      .session: PeerSession                  # read state/stats; call inputs via the wrappers
      .remote_peer_id: str | None            # signaling peer_id of the neighbour
      .request(segment, offset=0) -> int     # the wrappers call the session, then flush
      .cancel(request_id) -> bool
      .respond(request_id, total_bytes) -> bool
      .send_data(request_id, offset, data) -> bool
      .reject_absent(request_id) / .reject_busy(request_id, retry_after_ms=0)
      .abort(request_id, reason=AbortReason.INTERNAL)
      .announce_have(segments) / .announce_fetching(entries) / .announce_lost(segments)
      .flush()                               # after calling link.session.* directly
      async .close(code=CloseCode.NORMAL, reason="")
      .is_closed: bool; .opened / .closed: asyncio.Event

Events reach the app as ``on_event(link, event)`` with the core's event dataclasses
(:mod:`peer_agent.core.events`); a link's :class:`~peer_agent.core.events.SessionClosed` is
delivered exactly once, after which the link is gone from ``Swarm.links``.
"""
