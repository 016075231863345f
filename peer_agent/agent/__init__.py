"""The headless peer agent: plays an HLS stream with a virtual player, sharing segments.

Modules (one concern each):

- :mod:`.playlist` -- m3u8 playlists to a segment model (master → renditions, live refresh);
- :mod:`.cdn` -- httpx fetches with timeouts, retries with backoff and Range resume;
- :mod:`.integrity` -- SHA-256 manifest, verdicts, penalties and bans;
- :mod:`.uploads` -- upload token bucket and upload bookkeeping;
- :mod:`.state` -- bookkeeping types (segments in progress, transfers, neighbours);
- :mod:`.view` -- the scheduler's view, built as the simulator builds it;
- :mod:`.intake` -- CDN fetches, verification, play/store/announce, hash-failure handling;
- :mod:`.exchange` -- peer session events, our requests, serving peers (cut-through);
- :mod:`.report` -- the live status numbers and the final summary;
- :mod:`.agent` -- :class:`Agent`: start-up, the loop around the core scheduler, shutdown;
- :mod:`.cli` -- the ``p2p-agent`` console script.

Public API::

    AgentConfig(playlist_url, tracker_url=None, duration_s=None, ...)   # see config.py
    Agent(config, *, swarm_factory=None, peer_id=None, info_hash=None)
      async .run() -> dict          # the summary (bytes_cdn, bytes_p2p, ... stall_s, startup_s)
      .stop(); .status() -> dict
"""

from .agent import Agent
from .config import AgentConfig

__all__ = ["Agent", "AgentConfig"]
