"""HTTP API response models (pydantic, so they appear in the OpenAPI schema)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from signaling.messages import id_hex
from signaling.registry import SwarmSnapshot


class PeerInfo(BaseModel):
    peer_id: str = Field(description="hex of the 20 peer_id bytes")
    seeding: bool
    idle_s: float = Field(description="seconds since the last announce")
    position_s: float | None = None
    region: str | None = None
    max_peers: int | None = None
    bytes_p2p_down: int
    bytes_p2p_up: int
    bytes_cdn: int


class SwarmInfo(BaseModel):
    info_hash: str = Field(description="hex of the 20 info_hash bytes")
    peer_count: int
    complete: int
    incomplete: int
    downloaded: int
    bytes_p2p_down: int = Field(description="sum of the peers' reported counters")
    bytes_p2p_up: int
    bytes_cdn: int
    p2p_ratio: float | None = Field(
        None, description="bytes_p2p_down / (bytes_p2p_down + bytes_cdn), null when both are 0"
    )
    peers: list[PeerInfo] | None = Field(
        None,
        description="only from /api/admin/swarms (admin credential): the public API lists "
        "no peer_id",
    )


class SwarmsResponse(BaseModel):
    swarm_count: int
    peer_count: int
    swarms: list[SwarmInfo]


class Health(BaseModel):
    status: str = Field(description="ok, degraded (Redis unreachable: alone) or shutting_down")
    connections: int = Field(description="WebSocket connections of this process")
    peers: int = Field(description="peers in every swarm (with Redis: of every process)")
    swarms: int
    backend: str | None = Field(default=None, description="redis with scale-out; absent in memory")
    node_id: str | None = Field(default=None, description="this process's id in the cluster")
    redis: str | None = Field(default=None, description="ok or unreachable")
    nodes: int | None = Field(
        default=None, description="live signaling processes, this one included"
    )
    local_peers: int | None = Field(default=None, description="peers connected to this process")
    local_swarms: int | None = None


def swarm_info(snap: SwarmSnapshot, *, with_peers: bool = False) -> SwarmInfo:
    total = snap.bytes.p2p_down + snap.bytes.cdn
    return SwarmInfo(
        info_hash=id_hex(snap.info_hash),
        peer_count=snap.counts.complete + snap.counts.incomplete,
        complete=snap.counts.complete,
        incomplete=snap.counts.incomplete,
        downloaded=snap.counts.downloaded,
        bytes_p2p_down=snap.bytes.p2p_down,
        bytes_p2p_up=snap.bytes.p2p_up,
        bytes_cdn=snap.bytes.cdn,
        p2p_ratio=(snap.bytes.p2p_down / total) if total else None,
        peers=None
        if not with_peers
        else [
            PeerInfo(
                peer_id=id_hex(p.peer_id),
                seeding=p.seeding,
                idle_s=round(p.idle_s, 3),
                position_s=p.hints.position_s,
                region=p.hints.region,
                max_peers=p.hints.max_peers,
                bytes_p2p_down=p.bytes.p2p_down,
                bytes_p2p_up=p.bytes.p2p_up,
                bytes_cdn=p.bytes.cdn,
            )
            for p in snap.peers
        ],
    )
