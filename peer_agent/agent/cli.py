"""``p2p-agent``: play an HLS stream headlessly, fetching from peers and the CDN.

    p2p-agent PLAYLIST_URL --tracker ws://H:P/announce [--duration-s S] [--json]

Prints a one-line live status (unless ``--quiet`` or ``--json``) and a final summary: text, or
one JSON object with ``--json``. Exit status: 0 when playback ran, 1 when the agent failed, 2 on
bad arguments.
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
from collections.abc import Sequence
from typing import Any, TextIO

from .agent import Agent
from .config import AgentConfig

STATUS_INTERVAL_S = 1.0


def build_parser() -> argparse.ArgumentParser:
    d = AgentConfig(playlist_url="")
    p = argparse.ArgumentParser(
        prog="p2p-agent",
        description="Headless P2P-assisted HLS viewer: plays a stream with a virtual player, "
        "sharing segments with other viewers over WebRTC.",
    )
    p.add_argument("playlist_url", metavar="PLAYLIST_URL", help="master or media playlist URL")
    p.add_argument(
        "--tracker",
        metavar="WS_URL",
        help="signaling server, e.g. ws://127.0.0.1:8000/announce (without it: CDN only)",
    )
    p.add_argument(
        "--token",
        default=os.environ.get("P2P_AGENT_TOKEN"),
        help="join token for a tracker that requires one (default: $P2P_AGENT_TOKEN; prefer "
        "the environment variable: a flag shows in the process list)",
    )
    p.add_argument("--duration-s", type=float, help="stop after this long (default: stream end)")
    p.add_argument("--json", action="store_true", help="print the final summary as one JSON object")
    p.add_argument("--quiet", action="store_true", help="no live status line")
    p.add_argument(
        "--manifest-url",
        help="SHA-256 manifest (default: manifest.json beside the media playlist, if any)",
    )
    p.add_argument("--no-manifest", action="store_true", help="do not look for a manifest")
    p.add_argument(
        "--hash-service",
        metavar="URL",
        default=os.environ.get("P2P_AGENT_HASH_SERVICE") or None,
        help="hash service (p2p-hashsvc) base URL: take the SHA-256 manifest from it "
        "(default: $P2P_AGENT_HASH_SERVICE; --manifest-url wins)",
    )
    p.add_argument("--max-peers", type=int, default=d.max_peers, help="(default: %(default)s)")
    p.add_argument(
        "--upload-cap-bytes-per-s", type=float, default=None, help="upload cap (default: none)"
    )
    p.add_argument(
        "--max-uploads",
        type=int,
        default=d.max_uploads,
        help="concurrent uploads (default: %(default)s)",
    )
    p.add_argument("--leech-only", action="store_true", help="never upload")
    p.add_argument(
        "--ice-server",
        action="append",
        default=[],
        metavar="URL",
        help="STUN/TURN server URL (repeatable; default: none)",
    )
    p.add_argument(
        "--host-address",
        action="append",
        default=None,
        metavar="IP",
        help="gather ICE candidates on this address (repeatable; 127.0.0.1 for loopback tests)",
    )
    p.add_argument("--rendition", type=int, help="variant index (default: lowest bandwidth)")
    p.add_argument(
        "--latency-segments",
        type=int,
        default=d.latency_segments,
        help="live: start this many segments behind the edge (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--log-level", default="WARNING", help="(default: %(default)s)")
    return p


def config_from_args(args: argparse.Namespace) -> AgentConfig:
    return AgentConfig(
        playlist_url=args.playlist_url,
        tracker_url=args.tracker,
        tracker_token=args.token or None,
        duration_s=args.duration_s,
        manifest_url=args.manifest_url,
        discover_manifest=not args.no_manifest,
        hash_service_url=args.hash_service or None,
        rendition=args.rendition,
        latency_segments=args.latency_segments,
        max_peers=args.max_peers,
        upload_cap_bytes_per_s=args.upload_cap_bytes_per_s,
        max_uploads=args.max_uploads,
        leech_only=args.leech_only,
        ice_servers=tuple(args.ice_server),
        host_addresses=tuple(args.host_address) if args.host_address else None,
        seed=args.seed,
    )


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
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        config = config_from_args(args)
        live = not (args.quiet or args.json) and sys.stderr.isatty()
        summary = asyncio.run(run(config, live_status=live, out=sys.stderr))
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        logging.getLogger(__name__).debug("agent failed", exc_info=True)
        print(f"p2p-agent: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(summary, sort_keys=True))
    else:
        print(format_summary(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
