"""Plumbing shared by every console script of p2p-hls (``p2p-signaling``, ``p2p-hashsvc``,
``p2p-origin``, ``p2p-agent``, ``p2p-loadtest``, ``p2p-sim``).

A third top-level package on purpose: ``signaling`` and ``peer_agent`` never import each other,
and both import this. It depends on the standard library only.

- :mod:`p2p_cli.flags`: one config dataclass becomes command-line flags and environment
  variables (flags win over the environment, which wins over the dataclass defaults).
"""

from p2p_cli.flags import ConfigFlags, Option, convert

__all__ = ["ConfigFlags", "Option", "convert"]
