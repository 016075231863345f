"""Apply parsed messages to the registry and say what to send to which connection.

No sockets and no clock reads: the adapter passes ``now_s`` and gets back :class:`Send` items,
which it routes. All rejections are counted here (except those before a connection is accepted,
which the adapter counts).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Literal

from signaling import closecodes, messages
from signaling.config import SignalingConfig
from signaling.errors import FatalViolation, SignalingError, SwarmNotAllowed
from signaling.messages import Announce, Answer, MessageLimits, Scrape, Stats
from signaling.metrics import SignalingMetrics
from signaling.ratelimit import TokenBucket
from signaling.registry import ByteTotals, RegistryLimits, SwarmRegistry
from signaling.tokens import JoinGrant

logger = logging.getLogger(__name__)

SendKind = Literal["reply", "offer", "answer"]


@dataclass(frozen=True)
class Send:
    conn_id: str
    text: str
    kind: SendKind = "reply"


@dataclass
class ConnContext:
    conn_id: str
    bucket: TokenBucket
    grant: JoinGrant | None = None
    failures: int = field(default=0)


def limits_from_config(config: SignalingConfig) -> tuple[MessageLimits, RegistryLimits]:
    return (
        MessageLimits(
            max_message_bytes=config.max_message_bytes,
            max_sdp_bytes=config.max_sdp_bytes,
            max_offers_per_announce=config.max_offers_per_announce,
            max_scrape_hashes=config.max_scrape_hashes,
        ),
        RegistryLimits(
            peer_ttl_s=config.peer_ttl_s,
            offer_ttl_s=config.offer_ttl_s,
            max_swarms_per_connection=config.max_swarms_per_connection,
            max_peers_per_swarm=config.max_peers_per_swarm,
        ),
    )


class SignalingService:
    def __init__(
        self, config: SignalingConfig, registry: SwarmRegistry, metrics: SignalingMetrics
    ) -> None:
        self.config = config
        self.registry = registry
        self.metrics = metrics
        self.message_limits, _ = limits_from_config(config)
        metrics.bind_registry_gauges(registry.peer_count, registry.swarm_count)

    def new_connection(self, conn_id: str, now_s: float, grant: JoinGrant | None) -> ConnContext:
        bucket = TokenBucket(self.config.rate_per_s, self.config.rate_burst, now_s)
        return ConnContext(conn_id, bucket, grant)

    def on_frame(self, ctx: ConnContext, frame: str | bytes, now_s: float) -> list[Send]:
        """Handle one frame. Raises :class:`FatalViolation` when the connection must close."""
        try:
            if not ctx.bucket.try_take(now_s):
                raise FatalViolation(
                    "too many messages", reason="rate_limited", close_code=closecodes.RATE_LIMITED
                )
            msg = messages.parse_message(frame, self.message_limits)
            return self._dispatch(ctx, msg, now_s)
        except SignalingError as exc:
            self.metrics.reject(exc.reason)
            if exc.fatal:
                raise
            ctx.failures += 1
            logger.debug("conn %s: rejected (%s): %s", ctx.conn_id, exc.reason, exc.detail)
            reply = messages.failure_reply(exc.detail, exc.reason, messages.reply_context(frame))
            return [Send(ctx.conn_id, reply)]

    def on_close(self, ctx: ConnContext) -> None:
        self.registry.drop_connection(ctx.conn_id)

    def sweep(self, now_s: float) -> None:
        result = self.registry.expire(now_s)
        if result.peers:
            self.metrics.expired_peers.inc(len(result.peers))
            logger.debug("expired %d peers, %d offers", len(result.peers), result.offers)

    def _check_grant(self, ctx: ConnContext, info_hash: str) -> None:
        if ctx.grant is not None and not ctx.grant.allows(messages.id_hex(info_hash)):
            raise SwarmNotAllowed("the join token does not cover this info_hash")

    def _dispatch(
        self, ctx: ConnContext, msg: Announce | Answer | Scrape | Stats, now_s: float
    ) -> list[Send]:
        if isinstance(msg, Announce):
            self.metrics.messages.labels(action="announce").inc()
            return self._announce(ctx, msg, now_s)
        if isinstance(msg, Answer):
            self.metrics.messages.labels(action="answer").inc()
            self._check_grant(ctx, msg.info_hash)
            target = self.registry.claim_answer(
                now_s, ctx.conn_id, msg.info_hash, msg.peer_id, msg.to_peer_id, msg.offer_id
            )
            self.metrics.relays.labels(kind="answer").inc()
            return [Send(target.conn_id, messages.answer_relay(msg), "answer")]
        if isinstance(msg, Scrape):
            self.metrics.messages.labels(action="scrape").inc()
            hashes = msg.info_hashes or tuple(
                self.registry.swarm_ids(self.config.max_scrape_hashes)
            )
            counts = self.registry.scrape(hashes)
            files = {h: (c.complete, c.incomplete, c.downloaded) for h, c in counts.items()}
            return [Send(ctx.conn_id, messages.scrape_reply(files))]
        self.metrics.messages.labels(action="stats").inc()
        self._check_grant(ctx, msg.info_hash)
        totals = ByteTotals(msg.bytes_p2p_down, msg.bytes_p2p_up, msg.bytes_cdn)
        self.registry.record_stats(now_s, ctx.conn_id, msg.info_hash, msg.peer_id, totals)
        return []

    def _announce(self, ctx: ConnContext, msg: Announce, now_s: float) -> list[Send]:
        self._check_grant(ctx, msg.info_hash)
        result = self.registry.announce(
            now_s,
            ctx.conn_id,
            msg.info_hash,
            msg.peer_id,
            event=msg.event,
            seeding=msg.seeding,
            hints=msg.hints,
            want_targets=len(msg.offers),
        )
        out = [
            Send(
                ctx.conn_id,
                messages.announce_reply(
                    msg.info_hash,
                    self.config.announce_interval_s,
                    result.counts.complete,
                    result.counts.incomplete,
                ),
            )
        ]
        for offer, target in zip(msg.offers, result.targets, strict=False):
            self.registry.record_offer(
                now_s, msg.info_hash, offer.offer_id, msg.peer_id, target.peer_id
            )
            out.append(
                Send(
                    target.conn_id, messages.offer_relay(msg.info_hash, msg.peer_id, offer), "offer"
                )
            )
            self.metrics.relays.labels(kind="offer").inc()
        return out
