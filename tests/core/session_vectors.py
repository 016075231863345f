"""Reading and running the PeerSession vectors of docs/vectors/session/ (format: its README)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from peer_agent.core import events as ev
from peer_agent.core import wire
from peer_agent.core.errors import UsageError
from peer_agent.core.session import PeerSession, SessionConfig
from tests.core.exchange_vectors import make_blobs, pattern, seg_json, sid
from tests.core.test_wire_vectors import message_from_json


def session_config(overrides: dict[str, Any]) -> SessionConfig:
    known = {f.name for f in fields(SessionConfig)}
    assert set(overrides) <= known, f"unknown config keys {set(overrides) - known}"
    return SessionConfig(**overrides)


def _entries(items: list[dict[str, Any]]) -> list[wire.FetchingEntry]:
    return [wire.FetchingEntry(sid(e["segment"]), e["expected_bytes"]) for e in items]


def event_json(event: ev.Event) -> dict[str, Any]:
    """The JSON form of a session event; bytes stay bytes (the runner resolves expected ones)."""
    if isinstance(event, ev.HelloReceived):
        return {
            "type": "hello",
            "peer_id": event.peer_id.hex(),
            "leech_only": event.leech_only,
            "have": [seg_json(s) for s in event.have],
            "fetching": [
                {"segment": seg_json(e.segment), "expected_bytes": e.expected_bytes}
                for e in event.fetching
            ],
        }
    if isinstance(event, ev.PeerHave | ev.PeerLost):
        kind = "have" if isinstance(event, ev.PeerHave) else "lost"
        return {"type": kind, "segments": [seg_json(s) for s in event.segments]}
    if isinstance(event, ev.PeerFetching):
        return {
            "type": "fetching",
            "entries": [
                {"segment": seg_json(e.segment), "expected_bytes": e.expected_bytes}
                for e in event.entries
            ],
        }
    if isinstance(event, ev.SegmentRequested):
        return {
            "type": "requested",
            "request_id": event.request_id,
            "segment": seg_json(event.segment),
            "offset": event.offset,
        }
    if isinstance(event, ev.RequestCancelled):
        return {"type": "cancelled", "request_id": event.request_id}
    if isinstance(event, ev.ResponseStarted):
        return {
            "type": "response",
            "request_id": event.request_id,
            "segment": seg_json(event.segment),
            "total_bytes": event.total_bytes,
            "offset": event.offset,
        }
    if isinstance(event, ev.DataReceived):
        return {
            "type": "data",
            "request_id": event.request_id,
            "segment": seg_json(event.segment),
            "offset": event.offset,
            "data": bytes(event.data),
        }
    if isinstance(event, ev.RequestCompleted):
        return {
            "type": "completed",
            "request_id": event.request_id,
            "segment": seg_json(event.segment),
            "offset": event.offset,
            "total_bytes": event.total_bytes,
            "data": bytes(event.data),
        }
    if isinstance(event, ev.RequestFailed):
        return {
            "type": "failed",
            "request_id": event.request_id,
            "segment": seg_json(event.segment),
            "reason": event.reason,
            "retry_after_s": event.retry_after_s,
        }
    assert isinstance(event, ev.SessionClosed)
    return {"type": "closed", "code": event.code, "by_remote": event.by_remote}


def _expected_event(obj: dict[str, Any], blobs: dict[str, bytes]) -> dict[str, Any]:
    out = dict(obj)
    if "data" in out:
        out["data"] = pattern(out["data"], blobs)
    return out


def _expected_message(obj: dict[str, Any], blobs: dict[str, bytes]) -> wire.Message:
    obj = dict(obj)
    if isinstance(obj.get("payload"), dict):
        obj["payload"] = pattern(obj["payload"], blobs).hex()
    return message_from_json(obj)


def _brief(messages: list[wire.Message]) -> list[str]:
    out = []
    for m in messages:
        if isinstance(m, wire.Data):
            out.append(f"Data({m.request_id}, {m.offset}, <{len(m.payload)} bytes>)")
        else:
            out.append(repr(m))
    return out


def _call(
    session: PeerSession, name: str, args: dict[str, Any], now: float, blobs: dict[str, bytes]
) -> Any:
    if name == "start":
        return session.start(
            now=now,
            have=[sid(s) for s in args.get("have", [])],
            fetching=_entries(args.get("fetching", [])),
        )
    if name == "request":
        return session.request(sid(args["segment"]), args.get("offset", 0), now)
    if name == "cancel":
        return session.cancel(args["request_id"], now)
    if name == "respond":
        return session.respond(args["request_id"], args["total_bytes"])
    if name == "send_data":
        return session.send_data(args["request_id"], args["offset"], pattern(args["data"], blobs))
    if name == "reject_absent":
        return session.reject_absent(args["request_id"])
    if name == "reject_busy":
        return session.reject_busy(args["request_id"], args.get("retry_after_ms", 0))
    if name == "abort":
        return session.abort(args["request_id"], wire.AbortReason(args["reason"]))
    if name == "close":
        return session.close(args.get("code", 0), args.get("reason", ""))
    if name == "transport_closed":
        return session.transport_closed()
    if name == "handle_timer":
        return session.handle_timer(now)
    if name == "announce_have":
        return session.announce_have([sid(s) for s in args["segments"]])
    if name == "announce_lost":
        return session.announce_lost([sid(s) for s in args["segments"]])
    if name == "announce_fetching":
        return session.announce_fetching(_entries(args["entries"]))
    raise AssertionError(f"unknown call {name!r}")


def run(vector: dict[str, Any]) -> None:
    blobs = make_blobs(vector.get("blobs", {}))
    swarm_id = bytes.fromhex(vector["swarm_id"])
    sessions: dict[str, PeerSession] = {}
    for name, spec in vector["sessions"].items():
        expected = spec.get("expected_peer_id")
        sessions[name] = PeerSession(
            session_config(spec.get("config", {})),
            swarm_id,
            bytes.fromhex(spec["peer_id"]),
            spec.get("created_at", 0.0),
            expected_peer_id=None if expected is None else bytes.fromhex(expected),
        )
    for index, step in enumerate(vector["steps"]):
        now = step["now"]
        where = f"step {index} at {now}"
        if "call" in step:
            session = sessions[step["on"]]
            if "raises" in step:
                assert step["raises"] == "UsageError"
                try:
                    _call(session, step["call"], step.get("args", {}), now, blobs)
                except UsageError:
                    pass
                else:
                    raise AssertionError(f"{where}: {step['call']} did not raise UsageError")
            else:
                result = _call(session, step["call"], step.get("args", {}), now, blobs)
                if "returns" in step:
                    assert result == step["returns"], f"{where}: returned {result!r}"
        elif "send" in step:
            sender = sessions[step["send"]]
            frames = sender.data_to_send(step.get("max_bytes"))
            got = [wire.decode(f) for f in frames]
            want = [_expected_message(m, blobs) for m in step["messages"]]
            assert got == want, (
                f"{where}: messages differ\n got: {_brief(got)}\n want: {_brief(want)}"
            )
            target = step.get("to")
            if target is not None:
                for frame in frames:
                    sessions[target].receive_data(frame, now)
        elif "receive" in step:
            sessions[step["on"]].receive_data(pattern(step["receive"], blobs), now)
        else:
            raise AssertionError(f"{where}: a step needs call, send or receive")
        expected_events = step.get("events", {})
        assert set(expected_events) <= set(sessions), f"{where}: unknown session"
        for name, session in sessions.items():
            got_events = []
            while (event := session.next_event()) is not None:
                got_events.append(event_json(event))
            want_events = [_expected_event(e, blobs) for e in expected_events.get(name, [])]
            assert got_events == want_events, (
                f"{where}: events of {name} differ\n got: {got_events}\n want: {want_events}"
            )
        for name, state in step.get("state", {}).items():
            assert sessions[name].state.name.lower() == state, f"{where}: {name} state"
        for name, timer in step.get("timer", {}).items():
            assert sessions[name].get_timer() == timer, f"{where}: {name} timer"
