"""``p2p-agent``: play an HLS stream headlessly, fetching from peers and the CDN.

    p2p-agent PLAYLIST_URL --tracker ws://H:P/announce [--duration-s S] [--json]

Prints a one-line live status (unless ``--quiet`` or ``--json``) and a final summary: text, or
one JSON object with ``--json``. Exit status: 0 when playback ran, 1 when the agent failed or,
with a tracker, never joined the swarm (unreachable, refused token: a warning says why at once),
2 on bad arguments, 130 when interrupted before playback started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from p2p_cli.flags import ConfigFlags, Option
from p2p_cli.serving import (
    EXIT_FAILED,
    EXIT_OK,
    EXIT_STATUS_HELP,
    EXIT_USAGE,
    error,
    print_result,
    run_main,
)

from .agent import Agent, ice_servers_of
from .config import AgentConfig

STATUS_INTERVAL_S = 1.0


PROG = "p2p-agent"
FLAGS = ConfigFlags(
    AgentConfig,
    env_prefix="P2P_AGENT_",
    options={
        "playlist_url": Option(
            positional=True, metavar="PLAYLIST_URL", env="", help="master or media playlist URL"
        ),
        "tracker_url": Option(
            flags=("--tracker", "--tracker-url"),
            metavar="WS_URL",
            help="signaling server, e.g. ws://127.0.0.1:8000/announce (without it: CDN only)",
        ),
        "tracker_token": Option(
            flags=("--token",),
            env="P2P_AGENT_TOKEN",
            secret=True,
            help="join token for a tracker that requires one (prefer the environment "
            "variable: a flag shows in the process list)",
        ),
        "discover_manifest": Option(negative=("--no-discover-manifest", "--no-manifest")),
        "hash_service_url": Option(
            flags=("--hash-service", "--hash-service-url"),
            env="P2P_AGENT_HASH_SERVICE",
            metavar="URL",
            help="hash service (p2p-hashsvc) base URL: take the SHA-256 manifest from it "
            "(--manifest-url wins)",
        ),
        "ice_servers": Option(
            flags=("--ice-server",),
            repeat=True,
            metavar="URL",
            help="STUN/TURN server URL, e.g. stun:H:3478 or turn:H:3478?transport=udp "
            "(repeatable); TURN credentials go in --ice-username/--ice-credential, never the URL",
        ),
        "ice_username": Option(help="username for the turn:/turns: URLs of --ice-server"),
        "ice_credential": Option(
            secret=True,
            help="credential for the turn:/turns: URLs of --ice-server (prefer the environment "
            "variable: a flag shows in the process list)",
        ),
        "host_addresses": Option(flags=("--host-address",), repeat=True, metavar="IP"),
    },
)


def build_parser(env: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """Every scalar field of :class:`AgentConfig` is a flag and a ``P2P_AGENT_*`` variable."""
    p = argparse.ArgumentParser(
        prog="p2p-agent",
        description="Headless P2P-assisted HLS viewer: plays a stream with a virtual player, "
        "sharing segments with other viewers over WebRTC. Every option is also an environment "
        "variable (--max-peers is P2P_AGENT_MAX_PEERS); flags win over the environment.",
        epilog=EXIT_STATUS_HELP + " With --tracker, 1 also when the agent never joined the "
        "swarm (the tracker unreachable or refusing its token); it then plays from the CDN "
        "and says why at once.",
    )
    FLAGS.add_to(p, os.environ if env is None else env)
    p.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    p.add_argument("--log-level", default="WARNING", help="(default: %(default)s)")
    return p


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    return AgentConfig(**FLAGS.values(args))


def format_status(status: dict[str, Any]) -> str:
    mb = 1e6
    return (
        f"t={status['t_s']:6.1f}s pos={status['playhead_s'] or 0:7.1f}s "
        f"buf={status['buffer_s']:5.1f}s peers={status['peers']:2d} "
        f"cdn={status['bytes_cdn'] / mb:7.2f}MB p2p={status['bytes_p2p'] / mb:7.2f}MB "
        f"up={status['bytes_uploaded'] / mb:7.2f}MB stalls={status['stalls']} "
        f"bad={status['hash_failures']}"
    )


def format_summary(summary: dict[str, Any]) -> str:
    width = max((len(key) for key in summary), default=0)
    return "\n".join(f"{key:>{width}}: {value}" for key, value in summary.items())


async def _status_loop(agent: Agent, out: TextIO) -> None:
    while True:
        await asyncio.sleep(STATUS_INTERVAL_S)
        if agent.player is not None:
            out.write("\r" + format_status(agent.status()))
            out.flush()


async def run(config: AgentConfig, *, live_status: bool, out: TextIO) -> dict[str, Any]:
    agent = Agent(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, agent.stop)
    status = asyncio.create_task(_status_loop(agent, out)) if live_status else None
    try:
        return await agent.run()
    finally:
        if status is not None:
            status.cancel()
            out.write("\n")


def main(argv: Sequence[str] | None = None) -> int:
    return run_main(_main, argv)


def _main(argv: Sequence[str] | None) -> int:
    try:
        parser = build_parser()
    except ValueError as exc:  # a bad P2P_AGENT_* value
        error(PROG, str(exc))
        return EXIT_USAGE
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = config_from_args(args)
        ice_servers_of(config)  # a bad ICE option is a usage error, before anything starts
    except ValueError as exc:
        error(PROG, FLAGS.explain(exc))
        return EXIT_USAGE
    try:
        live = not (args.quiet or args.json) and sys.stderr.isatty()
        summary = asyncio.run(run(config, live_status=live, out=sys.stderr))
    except Exception as exc:
        logging.getLogger(__name__).debug("agent failed", exc_info=True)
        error(PROG, str(exc))
        return EXIT_FAILED
    if args.json:
        print_result(json.dumps(summary, sort_keys=True))
    else:
        print_result(format_summary(summary))
    if config.tracker_url is not None and not summary.get("tracker_announce_replies"):
        reason = summary.get("tracker_error") or "it never answered an announce"
        error(PROG, f"never joined the swarm at the tracker {config.tracker_url}: {reason}")
        return EXIT_FAILED
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
