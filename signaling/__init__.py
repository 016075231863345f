"""WebTorrent-tracker-compatible signaling server for p2p-hls.

Layers, from the inside out:

- :mod:`signaling.messages` parses and validates frames into frozen dataclasses;
- :mod:`signaling.registry` holds swarm state (pure: time and randomness are arguments);
- :mod:`signaling.pairing` chooses offer targets (pure);
- :mod:`signaling.service` applies parsed messages to the registry and says what to send where;
- :mod:`signaling.replica` holds the members of other processes (scale-out; pure);
- :mod:`signaling.cluster` is the Redis adapter that keeps that replica and carries relays between
  processes (``--redis-url``; without it the process runs alone, in memory);
- :mod:`signaling.app` is the FastAPI/ASGI adapter; :mod:`signaling.server` runs it under uvicorn.
"""

from signaling.config import SignalingConfig

__all__ = ["SignalingConfig"]
