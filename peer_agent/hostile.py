"""A hostile agent mode, built from the project's own modules: a real :class:`Agent` whose
session events and outgoing actions are bent to one attack. The hostile-peer tests and
``p2p-loadtest`` use it to check that honest agents bound the harm (docs/exchange.md, sections
8a "Fairness" and 8b "Reputation").

Attacks (:class:`Attack`):

- ``corrupt``: flips byte 0 of every segment it uploads (a hash failure downstream);
- ``flood``: keeps ``FLOOD_IN_FLIGHT`` requests in flight on every link for every segment it
  hears of, and asks again as soon as one ends (upload amplification);
- ``liar``: announces HAVE for every segment it hears of and answers ABSENT to every request;
- ``staller``: sends the first half of every segment it serves, then nothing (stalled
  transfers);
- ``garbage``: sends bytes that are no protocol frame after each HELLO (protocol errors);
- ``unknown_ids``: sends DATA for a request id the remote never used after each HELLO.

Rotation (a new peer id after each ban) is :func:`run_rotating`: a new agent, so a new peer id,
from the same address. Never point this at peers you do not own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Callable
from enum import StrEnum
from typing import Any

from .agent import Agent
from .agent.links import peer_id_of
from .core import wire
from .core.errors import CloseCode
from .core.events import (
    DataReceived,
    HelloReceived,
    PeerFetching,
    PeerHave,
    RequestCompleted,
    RequestFailed,
    ResponseStarted,
    SegmentRequested,
    SessionClosed,
)
from .core.exchange_actions import Respond, SendData
from .core.ids import SegmentId

logger = logging.getLogger(__name__)

#: Requests the flooder keeps in flight per link.
FLOOD_IN_FLIGHT = 8
#: Segments per link the flooder and the liar remember (newest kept).
MAX_HEARD = 64


class Attack(StrEnum):
    CORRUPT = "corrupt"
    FLOOD = "flood"
    LIAR = "liar"
    STALLER = "staller"
    GARBAGE = "garbage"
    UNKNOWN_IDS = "unknown_ids"


@dataclasses.dataclass
class HostileStats:
    """What the attack did (for test assertions and the load test's report)."""

    flood_requests: int = 0
    lies: int = 0
    stalled: int = 0
    garbage_sent: int = 0
    corrupted: int = 0
    #: Times a neighbour closed one of our links with BANNED (refusals and bans).
    banned_by_remote: int = 0
    #: Bytes the flood drew, by (neighbour's peer id, segment).
    flood_bytes: dict[tuple[str, SegmentId], int] = dataclasses.field(default_factory=dict)


def make_hostile(agent: Agent, attack: Attack) -> HostileStats:
    """Bend ``agent`` (before :meth:`Agent.run`) to ``attack``; returns its live counters."""
    stats = HostileStats()
    on_event = agent._on_swarm_event
    perform = agent.links.perform
    heard: dict[int, list[SegmentId]] = {}
    flood_ids: dict[int, set[int]] = {}
    half_of: dict[tuple[str, int], int] = {}

    def flood(link: Any) -> None:
        ids = flood_ids.setdefault(id(link), set())
        segments = heard.get(id(link), [])
        while segments and len(ids) < FLOOD_IN_FLIGHT and link.is_open:
            segment = segments[stats.flood_requests % len(segments)]
            try:
                ids.add(link.request(segment, 0))
            except Exception:  # the session refused (too many in flight): try later
                return
            stats.flood_requests += 1

    def hear(link: Any, segments: list[SegmentId]) -> None:
        known = heard.setdefault(id(link), [])
        for segment in segments:
            if segment not in known:
                known.append(segment)
        del known[:-MAX_HEARD]

    def send_raw(link: Any, data: bytes) -> None:
        channel = getattr(link, "channel", None)
        if channel is not None and channel.readyState == "open":
            channel.send(data)
            stats.garbage_sent += 1

    def hostile_event(link: Any, event: Any) -> None:
        if isinstance(event, SessionClosed):
            if event.by_remote and event.code == CloseCode.BANNED:
                stats.banned_by_remote += 1
            heard.pop(id(link), None)
            flood_ids.pop(id(link), None)
        if attack is Attack.FLOOD:
            ids = flood_ids.get(id(link), set())
            if isinstance(event, RequestCompleted | RequestFailed) and event.request_id in ids:
                ids.discard(event.request_id)
                flood(link)
                return  # our own flood: the exchange never asked for it
            if isinstance(event, HelloReceived | PeerHave | PeerFetching):
                if isinstance(event, HelloReceived):
                    segments = list(event.have) + [e.segment for e in event.fetching]
                elif isinstance(event, PeerHave):
                    segments = list(event.segments)
                else:
                    segments = [e.segment for e in event.entries]
                hear(link, segments)
                on_event(link, event)
                flood(link)
                return
            if isinstance(event, ResponseStarted | DataReceived) and event.request_id in ids:
                if isinstance(event, DataReceived):  # thrown away, only counted
                    key = (peer_id_of(link), event.segment)
                    stats.flood_bytes[key] = stats.flood_bytes.get(key, 0) + len(event.data)
                return
        elif attack is Attack.LIAR:
            if isinstance(event, SegmentRequested):
                stats.lies += 1
                link.reject_absent(event.request_id)
                return
            if isinstance(event, PeerHave | PeerFetching):
                segments = (
                    list(event.segments)
                    if isinstance(event, PeerHave)
                    else [e.segment for e in event.entries]
                )
                if agent.swarm is not None:
                    agent.swarm.broadcast_have(segments)
            elif isinstance(event, HelloReceived):
                on_event(link, event)  # then claim every segment the playlist lists
                link.announce_have([e.segment for e in agent.exchange.timeline()])
                return
        elif attack in (Attack.GARBAGE, Attack.UNKNOWN_IDS) and isinstance(event, HelloReceived):
            on_event(link, event)
            if attack is Attack.GARBAGE:
                send_raw(link, b"\xfe\xff garbage, not a frame")
            else:
                send_raw(link, wire.encode_data(0xFFFF_FFF0, 0, b"\x00" * 64))
            return
        on_event(link, event)

    def hostile_action(action: Any) -> None:
        if attack is Attack.CORRUPT and isinstance(action, SendData):
            if action.offset == 0 and action.data:
                stats.corrupted += 1
                flipped = bytes([action.data[0] ^ 0xFF]) + action.data[1:]
                action = dataclasses.replace(action, data=flipped)
        elif attack is Attack.STALLER:
            if isinstance(action, Respond):
                half_of[(action.link, action.request_id)] = action.total_bytes // 2
            elif isinstance(action, SendData):
                half = half_of.get((action.link, action.request_id))
                if half is not None:
                    keep = max(0, half - action.offset)
                    if keep < len(action.data):
                        stats.stalled += 1
                        del half_of[(action.link, action.request_id)]
                        if keep == 0:
                            return
                        action = dataclasses.replace(action, data=action.data[:keep])
                elif (action.link, action.request_id) not in half_of:
                    return  # past the half: never sent
        perform(action)

    agent._on_swarm_event = hostile_event  # type: ignore[method-assign]
    agent.links.perform = hostile_action  # type: ignore[method-assign]
    return stats


async def run_rotating(
    make_agent: Callable[[int], Agent], duration_s: float, *, attack: Attack = Attack.CORRUPT
) -> list[dict[str, Any]]:
    """Run hostile agents one after the other for ``duration_s``: each one (a new peer id, same
    address) runs until a neighbour closes a link on it with BANNED, then the next one starts.
    ``make_agent(round)`` builds round's agent. Returns each round's summary."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + duration_s
    summaries: list[dict[str, Any]] = []
    round_ = 0
    while loop.time() < deadline:
        agent = make_agent(round_)
        stats = make_hostile(agent, attack)
        task = asyncio.create_task(agent.run())
        while not task.done() and loop.time() < deadline and not stats.banned_by_remote:
            await asyncio.sleep(0.2)
        agent.stop()
        summaries.append(await task)
        logger.info("rotation %d ended (banned %d times)", round_, stats.banned_by_remote)
        round_ += 1
    return summaries
