"""Peer kinds the agent has no option for: a corrupting uploader and an abrupt leaver.

Both live at the network layer, under an unmodified :class:`peer_agent.agent.Agent`: the load
test hands the agent a swarm factory whose links flip byte 0 of every segment they upload
(malicious peers), and whose swarm can drop every connection without a protocol CLOSE (an
abrupt leave, as when a browser tab is killed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from typing import Any

from aiortc import RTCIceServer

from ..agent.config import AgentConfig
from ..agent.state import SwarmFactory, SwarmLike
from ..net.rtc import PeerLink
from ..net.swarm import Swarm, SwarmConfig

logger = logging.getLogger(__name__)


class CorruptingLink(PeerLink):
    """Flips the first byte of every segment it sends (the DATA frame at offset 0)."""

    corrupted_frames = 0

    def send_data(self, request_id: int, offset: int, data: bytes | bytearray | memoryview) -> bool:
        if offset == 0 and len(data) > 0:
            raw = bytes(data)
            data = bytes([raw[0] ^ 0xFF]) + raw[1:]
            CorruptingLink.corrupted_frames += 1
        return super().send_data(request_id, offset, data)


class LoadSwarm(Swarm):
    """A :class:`Swarm` that can corrupt its uploads and can vanish abruptly."""

    def __init__(self, *args: Any, corrupt: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.corrupt = corrupt

    def _new_link(self, remote_peer_id: str | None = None) -> PeerLink:
        if not self.corrupt:
            return super()._new_link(remote_peer_id)
        link = CorruptingLink(
            swarm_id=self._swarm_id,
            local_peer_id=self._local_peer_id,
            on_event=self._on_link_event,
            hello=self._hello,
            config=self._link_config,
            remote_peer_id=remote_peer_id,
        )
        self._all.add(link)
        return link

    async def drop_connections(self) -> None:
        """Abrupt leave: close every peer connection at once, with no CLOSE message first
        (neighbours see the transport go away mid-transfer)."""
        links = list(self._all)
        results = await asyncio.gather(*(link.pc.close() for link in links), return_exceptions=True)
        for r in results:
            if isinstance(r, BaseException):
                logger.debug("dropping a connection: %s", r)


def swarm_factory(config: AgentConfig, *, corrupt: bool) -> tuple[SwarmFactory, list[LoadSwarm]]:
    """A factory building the agent's swarm as the agent's default one does, but as a
    :class:`LoadSwarm`; the list receives the swarm once the agent made it."""
    made: list[LoadSwarm] = []

    def make(info_hash: str, peer_id: str, on_event: Any, hello: Any) -> SwarmLike:
        assert config.tracker_url is not None
        base = config.swarm if config.swarm is not None else SwarmConfig()
        swarm_config = dataclasses.replace(
            base,
            max_peers=config.max_peers,
            ice_servers=tuple(RTCIceServer(urls=url) for url in config.ice_servers),
            host_addresses=config.host_addresses,
            session=dataclasses.replace(base.session, leech_only=config.leech_only),
        )
        swarm = LoadSwarm(
            config.tracker_url,
            info_hash,
            peer_id,
            on_event=on_event,
            hello=hello,
            config=swarm_config,
            rng=random.Random(config.seed),
            corrupt=corrupt,
        )
        made.append(swarm)
        return swarm

    return make, made


async def drop_all(swarms: list[LoadSwarm]) -> None:
    for swarm in swarms:
        with contextlib.suppress(Exception):
            await swarm.drop_connections()
