"""ICE servers with TURN REST credentials (``action: ice_servers``): the vectors, the config
checks, and a live server (configured, unconfigured, and standard clients unaffected)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from signaling.config import SignalingConfig
from signaling.errors import UsageError
from signaling.ice import ice_servers_reply_body, turn_rest_credential
from tests.signaling.sig_support import ServerFactory, connect, exchange_works

VECTORS = json.loads(
    (Path(__file__).resolve().parents[2] / "docs/vectors/signaling/ice_servers.json").read_text()
)
SECRET = "bed-shared-secret-0123456789"
URLS = ("stun:10.241.0.1:3478", "turn:10.241.0.1:3478?transport=udp")


@pytest.mark.parametrize("case", VECTORS["cases"], ids=lambda c: c["name"])
def test_reply_vectors(case: dict[str, Any]) -> None:
    body = ice_servers_reply_body(
        tuple(case["urls"]), case["secret"], case["ttl_s"], case["wall_s"], case["user"]
    )
    assert body == case["reply"]


def test_credential_is_hmac_sha1_base64() -> None:
    # computed independently: printf %s 1767229200:p2p | openssl dgst -sha1 -hmac SECRET -binary
    assert turn_rest_credential(SECRET, "1767229200:p2p") == "sjTK5Jzppn9pFvmHwdH2Fd4fKxk="


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"ice_urls": ("http://x",)}, "must start with"),
        ({"ice_urls": ("turn:u:p@host:3478",)}, "credentials"),
        ({"ice_urls": ("turn:host:3478",)}, "need turn_secret"),
        ({"ice_urls": URLS, "turn_secret": "short"}, "at least 16"),
        ({"ice_urls": URLS, "turn_secret": SECRET, "turn_credential_ttl_s": 0}, "positive"),
        ({"ice_urls": ("stun:h:1",) * 9}, "at most 8"),
    ],
)
def test_bad_ice_config_rejected(overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        SignalingConfig(**overrides)


def test_secret_not_in_repr() -> None:
    assert SECRET not in repr(SignalingConfig(ice_urls=URLS, turn_secret=SECRET))


async def test_live_server_hands_out_fresh_credentials(start_server: ServerFactory) -> None:
    server = await start_server(ice_urls=URLS, turn_secret=SECRET, turn_credential_ttl_s=600)
    client = await connect(server.url, "ice")
    before = int(time.time())
    await client.send({"action": "ice_servers"})
    reply = await client.recv_where(lambda m: m.get("action") == "ice_servers")
    assert "failure reason" not in reply
    stun, turn = reply["ice_servers"]
    assert stun == {"urls": [URLS[0]]}
    assert turn["urls"] == [URLS[1]]
    expires = int(turn["username"].split(":")[0])
    assert before + 600 <= expires <= int(time.time()) + 600
    assert reply["expires"] == expires
    assert turn["credential"] == turn_rest_credential(SECRET, turn["username"])
    assert await server.metric("p2p_signaling_messages_total", action="ice_servers") == 1
    await exchange_works(server)  # announces and relays are unaffected


async def test_unconfigured_server_fails_clearly(start_server: ServerFactory) -> None:
    server = await start_server()
    client = await connect(server.url, "no-ice")
    await client.send({"action": "ice_servers"})
    reply = await client.recv_where(lambda m: "failure reason" in m)
    assert reply["reason"] == "ice_unavailable"
    assert reply["action"] == "ice_servers"
    assert await server.rejections("ice_unavailable") == 1
    ok = await client.announce("k" * 20)  # the socket keeps working
    assert ok["incomplete"] >= 1
