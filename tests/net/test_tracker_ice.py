"""ICE servers from the tracker: parsing the reply (vectors and hostile replies), a real
signaling server handing out TURN REST credentials, a refusal, and the agent's ICE options."""

from __future__ import annotations

import dataclasses
import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest

from peer_agent.agent.agent import ice_servers_of
from peer_agent.agent.cli import main as agent_main
from peer_agent.agent.config import AgentConfig
from peer_agent.net.tracker import IceServer, parse_ice_reply
from tests.net.conftest import ServerFactory, wait_until
from tests.net.test_tracker import FAST, Probe

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/signaling/ice_servers.json").read_text()
)
SECRET = "tracker-ice-secret-0123456789"
URLS = ("stun:10.241.0.1:3478", "turn:10.241.0.1:3478?transport=udp")
# 30 s: the server answers at once (with servers or a refusal); a busy machine's reply must not
# be counted an ice failure, and only a server that never answers would make a test wait.
ICE = dataclasses.replace(FAST, request_ice_servers=True, ice_timeout_s=30.0)


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_vector_replies_parse(case: dict[str, Any]) -> None:
    grant = parse_ice_reply(case["reply"], case["wall_s"])
    assert grant.expires_unix_s == case["reply"]["expires"]
    as_json = [
        {
            k: v
            for k, v in (
                ("urls", list(s.urls)),
                ("username", s.username),
                ("credential", s.credential),
            )
            if v is not None
        }
        for s in grant.servers
    ]
    assert as_json == case["reply"]["ice_servers"]


@pytest.mark.parametrize(
    "change",
    [
        {"expires": 0},
        {"expires": "soon"},
        {"ice_servers": "stun:x"},
        {"ice_servers": [{"urls": ["http://x"]}]},
        {"ice_servers": [{"urls": ["turn:u:p@x:3478"]}]},
        {"ice_servers": [{"urls": ["turn:x:3478"], "credential": 5}]},
        {"ice_servers": [{"urls": "stun:x:1"}] * 9},
    ],
)
def test_hostile_replies_rejected(change: dict[str, Any]) -> None:
    case = VECTORS["cases"][0]
    with pytest.raises(ValueError):
        parse_ice_reply({**case["reply"], **change}, case["wall_s"])


def test_credentials_stay_out_of_repr() -> None:
    server = IceServer(("turn:x:3478",), "1:p2p", "s3cr3t-credential")
    assert "s3cr3t" not in repr(server) and "1:p2p" not in repr(server)


async def test_client_gets_credentials_before_offering(
    start_server: ServerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server = await start_server(ice_urls=URLS, turn_secret=SECRET, turn_credential_ttl_s=900)
    probe = Probe(offers=[("o1", "v=0 offer")])
    client = probe.client(server, "ice-ok", config=ICE)
    await client.start()
    try:
        await wait_until(lambda: probe.replies, probe.changed)
        grant = client.ice
        assert grant is not None and client.stats.ice_replies == 1
        assert [s.urls for s in grant.servers] == [(URLS[0],), (URLS[1],)]
        turn = grant.servers[1]
        assert turn.username is not None and turn.credential
        assert time.time() + 800 < grant.expires_unix_s <= time.time() + 900
        assert client.stats.ice_failures == 0
    finally:
        await client.stop()
    assert turn.credential not in caplog.text and SECRET not in caplog.text


async def test_refusal_is_counted_and_offers_still_go_out(start_server: ServerFactory) -> None:
    server = await start_server()  # no ice_urls: ice_unavailable
    probe = Probe(offers=[("o1", "v=0 offer")])
    client = probe.client(server, "ice-no", config=ICE)
    await client.start()
    try:
        await wait_until(lambda: probe.replies, probe.changed)
        assert client.ice is None
        assert client.stats.ice_failures == 1
        assert ("ice_unavailable", "this server hands out no ICE servers") in probe.failures
        assert client.stats.offers_sent == 1
    finally:
        await client.stop()


def test_agent_ice_options() -> None:
    config = AgentConfig(
        playlist_url="http://o/x.m3u8",
        ice_servers=URLS,
        ice_username="user",
        ice_credential="cred-not-in-repr",
    )
    stun, turn = ice_servers_of(config)
    assert stun.username is None and (turn.username, turn.credential) == (
        "user",
        "cred-not-in-repr",
    )
    assert "cred-not-in-repr" not in repr(config)
    with pytest.raises(ValueError, match="not the URL"):
        ice_servers_of(dataclasses.replace(config, ice_servers=("turn:u:p@h:3478",)))
    with pytest.raises(ValueError, match="stun:, turn: or turns:"):
        ice_servers_of(dataclasses.replace(config, ice_servers=("http://h",)))
    with pytest.raises(ValueError, match="no turn"):
        ice_servers_of(dataclasses.replace(config, ice_servers=URLS[:1]))


def test_agent_cli_rejects_credentials_in_the_url(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["http://o/x.m3u8", "--ice-server", "turn:u:p@h:3478", "--duration-s", "1"]
    assert agent_main(argv) == 2
    err = capsys.readouterr().err
    assert "--ice-username/--ice-credential" in err and "u:p@" not in err
