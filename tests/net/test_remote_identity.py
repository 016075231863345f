"""The remote identity keys a link gives the exchange for bans that stick (docs/exchange.md,
"Reputation"): the remote ICE address and the DTLS certificate fingerprint, over real aiortc with
each peer on its own loopback address."""

from __future__ import annotations

from types import SimpleNamespace

from peer_agent.core.events import HelloReceived
from peer_agent.net.rtc import PeerLink, remote_identity_keys
from tests.net.conftest import Recorder, ident, link_config


def _link(name: str, remote: str, address: str, events: Recorder) -> PeerLink:
    return PeerLink(
        swarm_id=b"swarm-identity-keys-",
        local_peer_id=ident(name).encode(),
        on_event=events,
        config=link_config(host_addresses=(address,)),
        remote_peer_id=ident(remote),
    )


async def test_identity_keys_name_the_remote_address_and_its_certificate() -> None:
    a_ev, b_ev = Recorder(), Recorder()
    a = _link("peer-a", "peer-b", "127.0.0.2", a_ev)
    b = _link("peer-b", "peer-a", "127.0.0.3", b_ev)
    try:
        assert a.identity_keys() == ()  # nothing negotiated yet
        offer = await a.create_offer()
        answer = await b.accept_offer(offer)
        assert answer is not None
        await a.accept_answer(answer)
        await a_ev.wait_for(lambda: a_ev.of(HelloReceived, a))
        await b_ev.wait_for(lambda: b_ev.of(HelloReceived, b))

        def cert_of(link: PeerLink) -> str:
            assert link.pc.sctp is not None
            fingerprints = link.pc.sctp.transport.getLocalParameters().fingerprints
            sha = [f for f in fingerprints if f.algorithm.lower() == "sha-256"]
            return f"cert:sha-256 {sha[0].value.upper()}"

        a_keys, b_keys = a.identity_keys(), b.identity_keys()
        assert "addr:127.0.0.3" in a_keys and cert_of(b) in a_keys
        assert "addr:127.0.0.2" in b_keys and cert_of(a) in b_keys
        assert cert_of(a) != cert_of(b)
        assert all(k.startswith(("addr:", "cert:")) for k in a_keys + b_keys)
    finally:
        await a.close()
        await b.close()


def _nominated(remote_type: str, remote_ip: str) -> SimpleNamespace:
    """The attributes remote_identity_keys reads of an aiortc RTCPeerConnection (pure shape:
    a relayed pair needs coturn, which the bed's matrix test runs: tests/netbed/test_matrix)."""
    candidate = SimpleNamespace(type=remote_type)
    pair = SimpleNamespace(remote_candidate=candidate, remote_addr=(remote_ip, 49170))
    connection = SimpleNamespace(_nominated={1: pair})
    ice = SimpleNamespace(_connection=connection)
    sctp = SimpleNamespace(transport=SimpleNamespace(transport=ice))
    sdp = "v=0\r\na=fingerprint:sha-256 ab:cd\r\n"
    return SimpleNamespace(sctp=sctp, remoteDescription=SimpleNamespace(sdp=sdp))


def test_a_relay_remote_candidate_gives_no_address_key() -> None:
    """A relay candidate's address is the TURN server's, shared by every peer it relays: their
    offences would add up on it (docs/exchange.md 8b). A server-reflexive one is the peer's."""
    relayed = remote_identity_keys(_nominated("relay", "10.241.0.1"))  # type: ignore[arg-type]
    assert relayed == ("cert:sha-256 AB:CD",)
    srflx = remote_identity_keys(_nominated("srflx", "10.241.0.9"))  # type: ignore[arg-type]
    assert srflx == ("addr:10.241.0.9", "cert:sha-256 AB:CD")
