"""What the agent needs of its swarm (:class:`peer_agent.net.Swarm` or a test's stand-in)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol


class SwarmLike(Protocol):
    """What the agent needs of :class:`peer_agent.net.Swarm`."""

    links: dict[str, Any]

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def broadcast_have(self, segments: Any) -> None: ...
    def broadcast_fetching(self, entries: Any) -> None: ...
    def broadcast_lost(self, segments: Any) -> None: ...
    def set_position(self, position_s: float | None) -> None: ...
    async def send_stats(
        self,
        bytes_p2p_down: int,
        bytes_p2p_up: int,
        bytes_cdn: int,
        cdn_fetches: tuple[int, int] | None = None,
    ) -> None: ...
    def fetcher_assignment(self) -> tuple[tuple[str, ...], float]: ...


#: (info_hash, peer_id, on_event, hello) -> a swarm
SwarmFactory = Callable[[str, str, Callable[[Any, Any], None], Callable[[], Any]], SwarmLike]
