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

Public API (stable; the agent builds on it; also importable from ``peer_agent.net``)::

    swarm_id_for(url: str) -> str            # first 20 hex chars of sha1(b"p2p-hls/1 " + url)
    make_peer_id(rng: random.Random) -> str  # "-PH0001-" + 12 random [0-9A-Za-z]

    SwarmConfig(max_peers=8, offers_per_announce=3, offer_ttl_s=30.0, ice_servers=(),
                host_addresses=None, high_water_bytes=1 MiB, low_water_bytes=256 KiB,
                close_timeout_s=2.0, udp_receive_buffer_bytes=4 MiB, stop_timeout_s=5.0,
                session=SessionConfig(), tracker=TrackerConfig())   # frozen; see swarm.py
    TrackerConfig(reconnect_initial_s=0.5, reconnect_max_s=30.0, reconnect_jitter=0.5,
                  default_interval_s=120.0, min_interval_s=5.0, min_announce_gap_s=2.0,
                  open_timeout_s=10.0, close_timeout_s=2.0, max_message_bytes=1 MiB,
                  use_env_proxy=True)                                # frozen; see tracker.py
    Swarm(tracker_url: str, info_hash: str, peer_id: str, *,
          on_event: Callable[[PeerLink, Event], None],
          hello: Callable[[], HelloContent] | None = None,
          config: SwarmConfig | None = None, token: str | None = None,
          rng: random.Random | None = None)
      .links: dict[str, PeerLink]            # peer_id -> link (SDP exchange done, not closed)
      async .start() / async .stop()         # stop: "stopped" announce, links closed GOING_AWAY
      .broadcast_have(segments) / .broadcast_fetching(entries) / .broadcast_lost(segments)
      .set_position(position_s: float | None)  # tracker pairing hint (position_s)
      async .send_stats(bytes_p2p_down, bytes_p2p_up, bytes_cdn, cdn_fetches=None)  # + phases
      .announce_now()                        # ask for an early re-announce
      .tracker: TrackerClient                # .stats (TrackerStats), .hints (TrackerHints)

    HelloContent = tuple[Iterable[SegmentId], Iterable[FetchingEntry]]  # (have, fetching)

    PeerLink  # one neighbour; the app drives it from on_event(link, event):
      .session: PeerSession                  # read state/stats; call inputs via the wrappers
      .remote_peer_id: str | None            # signaling peer_id of the neighbour
      .role: "offerer" | "answerer" | None
      .request(segment, offset=0) -> int     # the wrappers call the session, then flush
      .cancel(request_id) -> bool
      .respond(request_id, total_bytes) -> bool
      .send_data(request_id, offset, data) -> bool
      .reject_absent(request_id) / .reject_busy(request_id, retry_after_ms=0)
      .abort(request_id, reason=AbortReason.INTERNAL)
      .announce_have(segments) / .announce_fetching(entries) / .announce_lost(segments)
                                             # -> False (skipped) before our HELLO / after close
      .flush()                               # after calling link.session.* directly
      async .close(code=CloseCode.NORMAL, reason="")
      .is_open / .is_closed: bool; .opened / .closed: asyncio.Event
      .max_buffered_bytes: int               # highest bufferedAmount seen after a flush

    LinkConfig(...)  # the per-link subset of SwarmConfig (rtc.py)
    ice_host_addresses(addresses)  # context manager: aioice gathers on exactly these addresses

Events reach the app as ``on_event(link, event)`` with the core's event dataclasses
(:mod:`peer_agent.core.events`); a link's :class:`~peer_agent.core.events.SessionClosed` is
delivered exactly once, after the link has left ``Swarm.links``. When the transport ends without
a CLOSE message (remote vanished, ICE failed), the session is closed locally with GOING_AWAY, so
that SessionClosed has ``by_remote=False``.
"""

from peer_agent.net.rtc import HelloContent, LinkConfig, PeerLink, ice_host_addresses
from peer_agent.net.swarm import Swarm, SwarmConfig, make_peer_id, swarm_id_for
from peer_agent.net.tracker import (
    AnnounceReply,
    RelayedAnswer,
    RelayedOffer,
    TrackerClient,
    TrackerConfig,
    TrackerHints,
    TrackerStats,
)

__all__ = [
    "AnnounceReply",
    "HelloContent",
    "LinkConfig",
    "PeerLink",
    "RelayedAnswer",
    "RelayedOffer",
    "Swarm",
    "SwarmConfig",
    "TrackerClient",
    "TrackerConfig",
    "TrackerHints",
    "TrackerStats",
    "ice_host_addresses",
    "make_peer_id",
    "swarm_id_for",
]
