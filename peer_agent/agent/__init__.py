"""The headless peer agent: plays an HLS stream with a virtual player, sharing segments.

Modules (one concern each):

- :mod:`.playlist` -- m3u8 playlists to a segment model (master → renditions, live refresh);
- :mod:`.cdn` -- httpx fetches with timeouts, retries with backoff and Range resume;
- :mod:`.integrity` -- the SHA-256 manifest and its keys (verdicts and penalties: the core);
- :mod:`.intake` -- hashing segments against the manifest, fetching init sections;
- :mod:`.glue` -- the asyncio glue of the core's ``SegmentExchange``: inputs, actions, one timer;
- :mod:`.links` -- naming peer links and carrying out the exchange's session actions;
- :mod:`.state` -- what the agent needs of its swarm;
- :mod:`.swarm_setup` -- ICE servers from the options, the default swarm, the network's ids;
- :mod:`.report` -- the live status numbers and the final summary;
- :mod:`.agent` -- :class:`Agent`: the asyncio glue around the core's ``SegmentExchange`` and
  scheduler (docs/exchange.md): start-up, inputs in, actions out, one timer, shutdown;
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
