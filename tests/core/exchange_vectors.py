"""Reading and running the exchange vectors of docs/vectors/exchange/ (format: its README)."""

from __future__ import annotations

import json
import math
from dataclasses import fields
from pathlib import Path
from typing import Any

from peer_agent.core import events as ev
from peer_agent.core.exchange import SegmentExchange
from peer_agent.core.exchange_actions import (
    AbortUpload,
    Action,
    AnnounceFetching,
    AnnounceHave,
    AnnounceLost,
    CancelCdn,
    CancelRequest,
    CloseLink,
    Deliver,
    ExchangeConfig,
    FetchCdn,
    GiveUp,
    RejectAbsent,
    RejectBusy,
    RequestPeer,
    Respond,
    SegmentEntry,
    SendData,
    Verify,
)
from peer_agent.core.exchange_state import Verdict
from peer_agent.core.ids import SegmentId
from peer_agent.core.scheduler import Action as SchedulerAction
from peer_agent.core.scheduler import CancelTransfer, FetchFromCdn, FetchFromPeer
from peer_agent.core.wire import FetchingEntry

VECTORS = Path(__file__).resolve().parents[2] / "docs" / "vectors"


def vector_files(folder: str) -> list[Path]:
    return sorted((VECTORS / folder).glob("*.json"))


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


# -- bytes ------------------------------------------------------------------------------------


def pattern(spec: dict[str, Any], blobs: dict[str, bytes]) -> bytes:
    """A bytes descriptor: ``{"hex"}``, ``{"length", "fill"}`` (the hex pattern repeated and
    cut), or ``{"of", "offset", "length"}`` (a slice of a named blob)."""
    if "hex" in spec:
        return bytes.fromhex(spec["hex"])
    if "of" in spec:
        blob = blobs[spec["of"]]
        start = spec.get("offset", 0)
        length = spec.get("length", len(blob) - start)
        assert start + length <= len(blob), f"slice past the end of blob {spec['of']}"
        return blob[start : start + length]
    fill = bytes.fromhex(spec["fill"])
    assert fill, "an empty fill pattern"
    length = spec["length"]
    return (fill * (length // len(fill) + 1))[:length]


def make_blobs(spec: dict[str, Any]) -> dict[str, bytes]:
    blobs: dict[str, bytes] = {}
    for name, desc in spec.items():
        blobs[name] = pattern(desc, blobs)
    return blobs


def sid(pair: list[int]) -> SegmentId:
    return SegmentId(pair[0], pair[1])


def seg_json(segment: SegmentId) -> list[int]:
    return [segment.rendition, segment.sequence]


def config(overrides: dict[str, Any]) -> ExchangeConfig:
    known = {f.name for f in fields(ExchangeConfig)}
    assert set(overrides) <= known, f"unknown config keys {set(overrides) - known}"
    return ExchangeConfig(**overrides)


# -- inputs -----------------------------------------------------------------------------------


def event(obj: dict[str, Any], blobs: dict[str, bytes]) -> ev.Event:
    kind = obj["type"]
    if kind == "hello":
        return ev.HelloReceived(
            peer_id=b"",
            flags=1 if obj.get("leech_only") else 0,
            have=tuple(sid(s) for s in obj.get("have", [])),
            fetching=tuple(
                FetchingEntry(sid(e["segment"]), e["expected_bytes"])
                for e in obj.get("fetching", [])
            ),
        )
    if kind == "have":
        return ev.PeerHave(tuple(sid(s) for s in obj["segments"]))
    if kind == "lost":
        return ev.PeerLost(tuple(sid(s) for s in obj["segments"]))
    if kind == "fetching":
        return ev.PeerFetching(
            tuple(FetchingEntry(sid(e["segment"]), e["expected_bytes"]) for e in obj["entries"])
        )
    if kind == "requested":
        return ev.SegmentRequested(obj["request_id"], sid(obj["segment"]), obj["offset"])
    if kind == "cancelled":
        return ev.RequestCancelled(obj["request_id"])
    if kind == "late_frames":
        return ev.LateFrames(obj.get("count", 1))
    if kind == "response":
        return ev.ResponseStarted(
            obj["request_id"], sid(obj["segment"]), obj["total_bytes"], obj.get("offset", 0)
        )
    if kind == "data":
        return ev.DataReceived(
            obj["request_id"], sid(obj["segment"]), obj["offset"], pattern(obj["data"], blobs)
        )
    if kind == "completed":
        # The exchange assembles the segment from DATA events; the vectors carry no copy.
        return ev.RequestCompleted(
            obj["request_id"], sid(obj["segment"]), obj.get("offset", 0), obj["total_bytes"], b""
        )
    if kind == "failed":
        return ev.RequestFailed(
            obj["request_id"], sid(obj["segment"]), obj["reason"], obj.get("retry_after_s")
        )
    if kind == "closed":
        return ev.SessionClosed(obj.get("code", 0), "", obj.get("by_remote", True))
    raise AssertionError(f"unknown event type {kind!r}")


def scheduler_action(obj: dict[str, Any]) -> SchedulerAction:
    kind, segment = obj["action"], sid(obj["segment"])
    if kind == "fetch_cdn":
        return FetchFromCdn(segment, obj.get("offset", 0), obj.get("reason", "vector"))
    if kind == "fetch_peer":
        return FetchFromPeer(
            segment, obj["peer_id"], obj.get("offset", 0), obj.get("reason", "vector")
        )
    if kind == "cancel":
        return CancelTransfer(segment, obj.get("peer_id"), obj.get("reason", "vector"))
    raise AssertionError(f"unknown scheduler action {kind!r}")


def apply_step(ex: SegmentExchange, step: dict[str, Any], blobs: dict[str, bytes]) -> None:
    now, kind = step["now"], step["do"]
    if kind == "timeline":
        ex.set_timeline(
            [
                SegmentEntry(
                    sid(e["segment"]),
                    e["start_s"],
                    e["duration_s"],
                    e.get("known_since", 0.0),
                    e.get("range_bytes"),
                )
                for e in step["segments"]
            ],
            bandwidth_bits_per_s=step.get("bandwidth_bits_per_s"),
        )
        if "sha256" in step:
            ex.set_sha256(step["sha256"])
    elif kind == "peer_event":
        link = step["link"]
        ex.on_peer_event(link, step.get("peer", link), event(step["event"], blobs), now)
    elif kind == "schedule":
        ex.apply([scheduler_action(a) for a in step["actions"]], now)
    elif kind == "request_sent":
        ex.request_sent(step["link"], sid(step["segment"]), step["request_id"])
    elif kind == "request_not_sent":
        ex.request_not_sent(step["link"], sid(step["segment"]), now)
    elif kind == "cdn_total":
        ex.cdn_total(step["fetch_id"], step["total_bytes"], now)
    elif kind == "cdn_data":
        ex.cdn_data(step["fetch_id"], step["offset"], pattern(step["data"], blobs), now)
    elif kind == "cdn_done":
        ex.cdn_done(step["fetch_id"], step["total_bytes"], step["elapsed_s"], now)
    elif kind == "cdn_failed":
        ex.cdn_failed(step["fetch_id"], now)
    elif kind == "verdict":
        ex.verdict(sid(step["segment"]), Verdict(step["verdict"]), now)
    elif kind == "timer":
        ex.handle_timer(now)
    elif kind == "forget":
        ex.forget_before(step["playhead_s"], now)
    elif kind == "identity":
        ex.set_link_keys(step["link"], step["keys"])
    elif kind == "view":
        pass  # checked by the runner
    else:
        raise AssertionError(f"unknown step {kind!r}")


# -- outputs ----------------------------------------------------------------------------------


def action_json(action: Action) -> dict[str, Any]:
    """The JSON form of an action; bytes stay bytes (the runner resolves expected ones)."""
    if isinstance(action, FetchCdn):
        return {
            "action": "fetch_cdn",
            "fetch_id": action.fetch_id,
            "segment": seg_json(action.segment),
            "offset": action.offset,
        }
    if isinstance(action, CancelCdn):
        return {
            "action": "cancel_cdn",
            "fetch_id": action.fetch_id,
            "segment": seg_json(action.segment),
        }
    if isinstance(action, RequestPeer):
        return {
            "action": "request",
            "link": action.link,
            "peer": action.peer_id,
            "segment": seg_json(action.segment),
            "offset": action.offset,
        }
    if isinstance(action, CancelRequest):
        return {"action": "cancel_request", "link": action.link, "request_id": action.request_id}
    if isinstance(action, Respond):
        return {
            "action": "respond",
            "link": action.link,
            "request_id": action.request_id,
            "total_bytes": action.total_bytes,
        }
    if isinstance(action, SendData):
        return {
            "action": "send_data",
            "link": action.link,
            "request_id": action.request_id,
            "offset": action.offset,
            "data": action.data,
        }
    if isinstance(action, RejectAbsent):
        return {"action": "reject_absent", "link": action.link, "request_id": action.request_id}
    if isinstance(action, RejectBusy):
        return {
            "action": "reject_busy",
            "link": action.link,
            "request_id": action.request_id,
            "retry_after_ms": action.retry_after_ms,
        }
    if isinstance(action, AbortUpload):
        return {
            "action": "abort_upload",
            "link": action.link,
            "request_id": action.request_id,
            "reason": int(action.reason),
        }
    if isinstance(action, CloseLink):
        return {"action": "close_link", "link": action.link, "code": int(action.code)}
    if isinstance(action, AnnounceHave):
        return {"action": "announce_have", "segments": [seg_json(s) for s in action.segments]}
    if isinstance(action, AnnounceLost):
        return {"action": "announce_lost", "segments": [seg_json(s) for s in action.segments]}
    if isinstance(action, AnnounceFetching):
        return {
            "action": "announce_fetching",
            "entries": [
                {"segment": seg_json(e.segment), "expected_bytes": e.expected_bytes}
                for e in action.entries
            ],
        }
    if isinstance(action, Verify):
        return {
            "action": "verify",
            "segment": seg_json(action.segment),
            "data": action.data,
            "total_bytes": action.total_bytes,
        }
    if isinstance(action, Deliver):
        return {"action": "deliver", "segment": seg_json(action.segment), "data": action.data}
    assert isinstance(action, GiveUp)
    return {"action": "give_up", "segment": seg_json(action.segment)}


def expected_action(obj: dict[str, Any], blobs: dict[str, bytes]) -> dict[str, Any]:
    out = dict(obj)
    if "data" in out:
        out["data"] = pattern(out["data"], blobs)
    return out


def describe(action: dict[str, Any]) -> dict[str, Any]:
    """An action for a failure message: bytes shown by length and first bytes."""
    out = dict(action)
    if isinstance(out.get("data"), bytes):
        data = out["data"]
        out["data"] = f"<{len(data)} bytes {data[:8].hex()}..>"
    return out


def stats_json(ex: SegmentExchange) -> dict[str, Any]:
    return {
        "bytes_cdn": ex.bytes_cdn,
        "bytes_p2p": ex.bytes_p2p,
        "bytes_uploaded": ex.bytes_uploaded,
        "hash_failures": ex.hash_failures,
        "unverifiable": ex.unverifiable,
        "cdn_failures": ex.cdn_failures,
        "cdn_resumes": ex.cdn_resumes,
        "busy_sent": ex.server.busy_sent,
        "unfair_refusals": ex.server.unfair_refusals,
        "relays_aborted": ex.server.relays_aborted,
        "uploads": len(ex.server.uploads),
        "verified": sorted(seg_json(s) for s in ex.verified),
        "given_up": sorted(seg_json(s) for s in ex.given_up),
        "sized": sorted(seg_json(s) for s in ex.sizes),
        "retried": sorted(seg_json(s) for s in ex.hash_retries),
        "stored": [seg_json(s) for s in ex.store],
        "banned": sorted(ex.penalties.banned),
        "banned_subjects": sorted(ex.reputation.banned),
        "refusals": ex.reputation.refusals,
    }


def _finite(x: float) -> float | None:
    return None if math.isinf(x) else round(x, 6)


def view_json(ex: SegmentExchange, now: float, playhead_s: float) -> dict[str, Any]:
    view = ex.scheduler_view(now, playhead_s)
    return {
        "segments": [
            {
                "segment": seg_json(s.segment),
                "size_bytes": s.size_bytes,
                "partial_bytes": s.partial_bytes,
                "avoid": sorted(s.avoid),
            }
            for s in view.segments
        ],
        "peers": [
            {
                "peer_id": p.peer_id,
                "have": sorted(seg_json(s) for s in p.have),
                "fetching": sorted(seg_json(s) for s in p.fetching),
                "choked_until": _finite(p.choked_until),
                "uploads": p.uploads,
            }
            for p in view.peers
        ],
        "transfers": [
            {
                "segment": seg_json(t.segment),
                "peer_id": t.peer_id,
                "offset": t.offset,
                "received_bytes": t.received_bytes,
                "total_bytes": t.total_bytes,
            }
            for t in view.transfers
        ],
        "have": sorted(seg_json(s) for s in view.have),
    }


def run(vector: dict[str, Any]) -> None:
    """Run one vector; an AssertionError names the step that differs."""
    blobs = make_blobs(vector.get("blobs", {}))
    ex = SegmentExchange(config(vector.get("config", {})))
    for index, step in enumerate(vector["steps"]):
        where = f"step {index} ({step['do']} at {step['now']})"
        apply_step(ex, step, blobs)
        got = []
        while (action := ex.next_action()) is not None:
            got.append(action_json(action))
        want = [expected_action(a, blobs) for a in step["expect"]]
        assert got == want, (
            f"{where}: actions differ\n got: {[describe(a) for a in got]}\n"
            f" want: {[describe(a) for a in want]}"
        )
        if "timer" in step:
            timer = ex.get_timer()
            assert (None if timer is None else round(timer, 6)) == step["timer"], (
                f"{where}: timer {timer} != {step['timer']}"
            )
        if "stats" in step:
            stats = stats_json(ex)
            sub = {k: stats[k] for k in step["stats"]}
            assert sub == step["stats"], f"{where}: stats {sub} != {step['stats']}"
        if "view" in step:
            view = view_json(ex, step["now"], step.get("playhead_s", 0.0))
            sub = {k: view[k] for k in step["view"]}
            assert sub == step["view"], f"{where}: view {sub} != {step['view']}"
