"""Connectivity probe: join a swarm through the tracker, link to one peer, report the path.

``python -m peer_agent.netbed.connect TRACKER_URL INFO_HASH [--ice-from-tracker]
[--ice-server URL]... [--timeout-s S]`` runs a :class:`peer_agent.net.swarm.Swarm` (the agent's
own tracker client and aiortc ``PeerLink``) with one link at most. When the first link has
exchanged HELLOs over its data channel it prints one JSON line::

    {"ok": true, "setup_s": 1.9, "local": "host", "remote": "srflx", "addr_keys": ["addr:..."],
     "ice_servers": 2}

(``setup_s``: from start, tracker connection and ICE requests included, to the peer's HELLO;
``local``/``remote``: candidate types of the nominated pair; ``addr_keys``: the remote address
identity key the link gives the exchange, none for a remote relay candidate), then keeps the
link up until SIGTERM or ``--timeout-s``. Without a link by ``--timeout-s`` it prints
``{"ok": false, ...}`` and exits 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import signal
import sys
from typing import Any

from aiortc import RTCIceServer

from peer_agent.core.events import Event, HelloReceived, SessionClosed
from peer_agent.net.rtc import PeerLink
from peer_agent.net.swarm import Swarm, SwarmConfig, make_peer_id
from peer_agent.net.tracker import TrackerConfig

logger = logging.getLogger(__name__)


async def probe(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    start_s = loop.time()
    linked: asyncio.Future[tuple[PeerLink, float]] = loop.create_future()

    def on_event(link: PeerLink, event: Event) -> None:
        if isinstance(event, SessionClosed):
            logger.info("link %s closed: %s %s", link.role, event.code, event.reason)
        if isinstance(event, HelloReceived) and not linked.done():
            linked.set_result((link, loop.time() - start_s))

    config = SwarmConfig(
        max_peers=1,
        offers_per_announce=1,
        ice_servers=tuple(RTCIceServer(urls=u) for u in args.ice_server),
        tracker=TrackerConfig(request_ice_servers=args.ice_from_tracker, use_env_proxy=False),
    )
    rng = random.Random(args.seed)
    swarm = Swarm(
        args.tracker, args.info_hash, make_peer_id(rng), on_event=on_event, config=config, rng=rng
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await swarm.start()
    result: dict[str, Any]
    try:
        link, setup_s = await asyncio.wait_for(linked, args.timeout_s)
    except TimeoutError:
        result = {"ok": False, "error": f"no link within {args.timeout_s} s"}
    else:
        types = link.candidate_types()
        result = {
            "ok": True,
            "setup_s": round(setup_s, 3),
            "local": types[0] if types else None,
            "remote": types[1] if types else None,
            # the address key the exchange gets for bans (none for a remote relay candidate)
            "addr_keys": [k for k in link.identity_keys() if k.startswith("addr:")],
        }
    grant = swarm.tracker.ice
    result["ice_servers"] = 0 if grant is None else len(grant.servers)
    result["ice_failures"] = swarm.tracker.stats.ice_failures
    print(json.dumps(result), flush=True)
    if result["ok"]:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), args.timeout_s)
    await swarm.stop()
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m peer_agent.netbed.connect")
    p.add_argument("tracker")
    p.add_argument("info_hash", help="20 characters")
    p.add_argument("--ice-from-tracker", action="store_true")
    p.add_argument("--ice-server", action="append", default=[], metavar="URL")
    p.add_argument("--timeout-s", type=float, default=60.0)
    p.add_argument("--seed", type=int, default=None)
    args = p.parse_args(argv)
    if len(args.info_hash) != 20:
        p.error("info_hash must be 20 characters")
    result = asyncio.run(probe(args))
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
