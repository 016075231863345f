"""``p2p-agent`` with the timeouts tuned on loopback, for side-by-side runs on the bed.

``python -m peer_agent.netbed.loopback_agent AGENT-ARGS...`` runs the agent exactly as
``p2p-agent`` does, except that its timeouts ignore the round trip, as before the bed measured
them (docs/scheduling.md, "Timeouts on real round trips"): the scheduler's stall timeout is a
flat ``peer_stall_timeout_s`` (``stall_timeout_rtts`` 0), a cancel counts as a stall after a flat
``stall_s`` (``stall_rtts`` 0), and the session's request and idle-data timeouts are 2 s. Only
:class:`peer_agent.netbed.loadrun.BedLoadTest` uses it (``RunPlan.compare_loopback_timeouts``),
so one bed and one run compare both settings against the same CDN-only baseline. (The rules that
only a peer that owed bytes is blamed for a stall, and only once it shows no progress (stall
suspicions, docs/exchange.md), are not switched off.)
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Sequence

from peer_agent.agent import agent as agent_module
from peer_agent.agent import cli
from peer_agent.agent.config import AgentConfig
from peer_agent.core.exchange_actions import ExchangeConfig
from peer_agent.core.session import SessionConfig
from peer_agent.net.swarm import SwarmConfig

LOOPBACK_SESSION = {"request_timeout_s": 2.0, "idle_data_timeout_s": 2.0}


def loopback_config(config: AgentConfig) -> AgentConfig:
    """``config`` with the scheduler's and the session's loopback-tuned timeouts."""
    swarm = config.swarm if config.swarm is not None else SwarmConfig()
    session: SessionConfig = dataclasses.replace(swarm.session, **LOOPBACK_SESSION)
    return dataclasses.replace(
        config,
        scheduler=dataclasses.replace(config.scheduler, stall_timeout_rtts=0.0),
        swarm=dataclasses.replace(swarm, session=session),
    )


def main(argv: Sequence[str] | None = None) -> int:
    build_config = cli.config_from_args
    build_exchange = agent_module.exchange_config

    def exchange_config(config: AgentConfig, peer_id: str) -> ExchangeConfig:
        return dataclasses.replace(build_exchange(config, peer_id), stall_rtts=0.0)

    cli.config_from_args = lambda args: loopback_config(build_config(args))
    agent_module.exchange_config = exchange_config
    return cli.main(argv)


if __name__ == "__main__":
    sys.exit(main())
