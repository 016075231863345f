"""How the agent joins its swarm: ICE servers from its options, the default swarm factory
(aiortc links through :class:`peer_agent.net.swarm.Swarm`), and the ids the network derives."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

from ..core.capacity import upload_slots
from .config import AgentConfig
from .state import SwarmFactory, SwarmLike


def ice_servers_of(config: AgentConfig) -> tuple[Any, ...]:
    """``RTCIceServer``s of the agent's configured ICE URLs; ``turn:``/``turns:`` URLs carry
    ``ice_username``/``ice_credential``. ValueError for a URL that is not STUN/TURN or carries
    credentials itself, or credentials with no TURN URL to use them."""
    from aiortc import RTCIceServer

    servers = []
    has_turn = False
    for url in config.ice_servers:
        if not url.startswith(("stun:", "turn:", "turns:")):
            raise ValueError("an ICE server URL must start with stun:, turn: or turns:")
        if "@" in url:
            raise ValueError("put TURN credentials in --ice-username/--ice-credential, not the URL")
        if url.startswith("stun:"):
            servers.append(RTCIceServer(urls=url))
        else:
            has_turn = True
            servers.append(
                RTCIceServer(
                    urls=url, username=config.ice_username, credential=config.ice_credential
                )
            )
    has_creds = config.ice_username is not None or config.ice_credential is not None
    if has_creds and not has_turn:
        raise ValueError("ICE credentials given but no turn:/turns: URL to use them with")
    return tuple(servers)


def default_swarm_factory(config: AgentConfig) -> SwarmFactory:
    def make(info_hash: str, peer_id: str, on_event: Any, hello: Any) -> SwarmLike:
        from ..net.swarm import Swarm, SwarmConfig

        assert config.tracker_url is not None
        base = config.swarm if config.swarm is not None else SwarmConfig()
        swarm_config = dataclasses.replace(
            base,
            max_peers=config.max_peers,
            ice_servers=ice_servers_of(config),
            host_addresses=config.host_addresses,
            session=dataclasses.replace(base.session, leech_only=config.leech_only),
            tracker=dataclasses.replace(
                base.tracker,
                request_ice_servers=config.ice_from_tracker,
                uplink_bytes_per_s=uplink_claim(config, base.tracker.uplink_bytes_per_s),
            ),
        )
        swarm: SwarmLike = Swarm(
            config.tracker_url,
            info_hash,
            peer_id,
            on_event=on_event,
            hello=hello,
            config=swarm_config,
            token=config.tracker_token,
            rng=random.Random(config.seed),
        )
        return swarm

    return make


def fan_out_config(config: AgentConfig, bandwidth_bits_per_s: float | None) -> AgentConfig:
    """``config`` as the swarm should see it once the rendition's bitrate is known: leech-only
    (HELLO flag, ``uplink:0`` claim) when the upload cap cannot feed one upload at that bitrate
    (docs/scheduling.md, "Upload fan-out"), so neighbours never ask and the server never picks
    it; else unchanged."""
    bitrate = bandwidth_bits_per_s or None
    if config.leech_only or upload_slots(config.upload_cap_bytes_per_s, bitrate, 1) > 0:
        return config
    return dataclasses.replace(config, leech_only=True)


#: The largest claim the tracker accepts (``uplink:`` takes 1..12 digits).
MAX_UPLINK_CLAIM = 10**12 - 1


def uplink_claim(config: AgentConfig, configured: int | None) -> int | None:
    """The uplink we claim to the tracker (cap ``uplink:N``, docs/signaling.md "Fetcher
    assignment"): 0 when leech-only (the server never picks us to fetch), else the tracker
    config's own claim, else the upload cap, else none."""
    if config.leech_only:
        return 0
    if configured is not None:
        return configured
    if config.upload_cap_bytes_per_s is not None:
        return min(int(config.upload_cap_bytes_per_s), MAX_UPLINK_CLAIM)
    return None


def make_ids(playlist_url: str, rng: random.Random) -> tuple[str, str]:
    """(info_hash, peer_id) as the network layer derives them. The peer_id is keyed: its secret
    peer_key (from :mod:`secrets`, not ``rng``) proves it to the tracker after a reconnect or a
    tracker restart (docs/signaling.md "peer_id ownership"); the tracker client finds the key."""
    from ..net.peer_key import make_keyed_identity
    from ..net.swarm import make_peer_id, swarm_id_for

    make_peer_id(rng)  # draws as before, so a seeded agent's other choices stay as they were
    return swarm_id_for(playlist_url), make_keyed_identity()[0]
