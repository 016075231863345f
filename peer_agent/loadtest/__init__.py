"""Load tests: real agents over worker processes against an origin and a signaling server.

Modules (one concern each):

- :mod:`.config` -- :class:`LoadTestConfig` (the ``[loadtest]`` table) and TOML loading;
- :mod:`.plan` -- who joins when, of which kind, who leaves (pure);
- :mod:`.peers` -- malicious (corrupting) and abruptly leaving peers, at the network layer;
- :mod:`.services` -- our origin and ``p2p-signaling``, or given URLs;
- :mod:`.worker` -- one process running several agents, reporting over a queue, auditing;
- :mod:`.runner` -- one run: processes up, samples and records collected;
- :mod:`.results` -- summary, baseline ratios, the simulator's prediction (pure);
- :mod:`.plots`, :mod:`.progress` -- PNG plots and the progress line;
- :mod:`.cli` -- the ``p2p-loadtest`` console script. See docs/loadtest.md.
"""

from .config import LoadTestConfig, load_files
from .plan import AgentSpec, Kind, Leave, plan_agents

__all__ = ["AgentSpec", "Kind", "Leave", "LoadTestConfig", "load_files", "plan_agents"]
