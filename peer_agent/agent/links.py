"""The agent's peer links as the exchange sees them: each gets a name, and the exchange's link
actions are carried out on its session.

The swarm hands the agent ``(link, event)`` pairs; :class:`LinkTable` names each link (the
remote peer id and a counter: one peer may have two links for a moment) and keeps the numbers
that only the sessions know (payload bytes they actually sent).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import Any

from ..core.events import SessionClosed
from ..core.exchange_actions import (
    AbortUpload,
    CancelRequest,
    CloseLink,
    RejectAbsent,
    RejectBusy,
    Respond,
    SendData,
)
from ..core.wire import AbortReason

logger = logging.getLogger(__name__)

LinkAction = (
    CancelRequest | Respond | SendData | RejectAbsent | RejectBusy | AbortUpload | CloseLink
)


def peer_id_of(link: Any) -> str:
    """The remote peer id of a link: the one signaling paired, else the one its HELLO gave."""
    pid = getattr(link, "remote_peer_id", None)
    if pid is None:
        raw = link.session.remote_peer_id or b""
        pid = raw.decode("latin-1") if isinstance(raw, bytes) else str(raw)
    return str(pid)


class LinkTable:
    def __init__(self, spawn: Callable[[Coroutine[Any, Any, Any]], Any]) -> None:
        self._spawn = spawn
        self._by_name: dict[str, Any] = {}
        self._names: dict[int, str] = {}
        self._count = 0
        #: Payload bytes sent by sessions that are closed now.
        self._uploaded_closed = 0

    def name(self, link: Any) -> str:
        """The link's name for the exchange (given at its first event)."""
        name = self._names.get(id(link))
        if name is None:
            self._count += 1
            name = f"{peer_id_of(link)}#{self._count}"
            self._names[id(link)] = name
            self._by_name[name] = link
        return name

    def get(self, name: str) -> Any:
        return self._by_name.get(name)

    def closed(self, link: Any, event: SessionClosed) -> None:
        """Forget a link once its SessionClosed went to the exchange."""
        name = self._names.pop(id(link), None)
        if name is not None:
            del self._by_name[name]
            self._uploaded_closed += link.session.stats.payload_bytes_sent

    @property
    def bytes_uploaded(self) -> int:
        """Payload bytes our sessions sent (what left, not what was handed to them)."""
        live = sum(link.session.stats.payload_bytes_sent for link in self._by_name.values())
        return self._uploaded_closed + live

    def perform(self, action: LinkAction) -> None:
        """Carry out a link action; a link that is gone needs nothing (its SessionClosed went
        to the exchange), a refused call neither (RequestCancelled or SessionClosed follows)."""
        link = self._by_name.get(action.link)
        if link is None or link.is_closed:
            return
        if isinstance(action, SendData):
            link.send_data(action.request_id, action.offset, action.data)
        elif isinstance(action, Respond):
            link.respond(action.request_id, action.total_bytes)
        elif isinstance(action, CancelRequest):
            link.cancel(action.request_id)
        elif isinstance(action, RejectAbsent):
            link.reject_absent(action.request_id)
        elif isinstance(action, RejectBusy):
            link.reject_busy(action.request_id, action.retry_after_ms)
        elif isinstance(action, AbortUpload):
            link.abort(action.request_id, AbortReason(action.reason))
        else:
            logger.warning("closing link %s (code %d): %s", action.link, action.code, action.reason)
            self._spawn(link.close(action.code, action.reason))
