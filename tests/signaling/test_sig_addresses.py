"""Per-address keys and limits (pure)."""

from __future__ import annotations

import pytest

from signaling.addresses import (
    AddressLimits,
    AddressTable,
    AttemptTable,
    BadForwardedFor,
    address_key,
    client_ip,
    parse_networks,
)

PROXIES = parse_networks(["10.0.0.0/8", "fd00::/8"])


def test_ipv4_is_its_own_key_and_ipv6_groups_by_64() -> None:
    assert address_key("192.0.2.1") == "192.0.2.1"
    assert address_key("2001:db8:1:2:aaaa::1") == address_key("2001:db8:1:2:bbbb::2")
    assert address_key("2001:db8:1:2::1") == "2001:db8:1:2::/64"
    assert address_key("2001:db8:1:3::1") != address_key("2001:db8:1:2::1")
    assert address_key("::ffff:192.0.2.1") == "192.0.2.1"


def test_forwarded_for_only_from_trusted_proxies() -> None:
    assert client_ip("192.0.2.5", "203.0.113.1", PROXIES) == "192.0.2.5"
    assert client_ip("10.1.1.1", "203.0.113.1", PROXIES) == "203.0.113.1"
    # the rightmost hop not a proxy: a client cannot choose by writing to the left
    assert client_ip("10.1.1.1", "1.2.3.4, 203.0.113.1, 10.2.2.2", PROXIES) == "203.0.113.1"
    assert client_ip("10.1.1.1", None, PROXIES) == "10.1.1.1"
    assert client_ip("10.1.1.1", "[2001:db8::1]", PROXIES) == "2001:db8::1"
    assert client_ip("192.0.2.5", "garbage", PROXIES) == "192.0.2.5"  # untrusted: ignored
    with pytest.raises(BadForwardedFor):
        client_ip("10.1.1.1", "203.0.113.1, garbage", PROXIES)


def test_table_caps_connections_and_rate_and_forgets_idle_addresses() -> None:
    table = AddressTable(AddressLimits(max_connections=2, rate_per_s=1.0, rate_burst=4))
    assert table.open("a", "c1", 0.0) is None
    assert table.open("a", "c2", 0.0) is None
    assert table.open("a", "c3", 0.0) == "too_many_connections_per_address"
    assert table.open("b", "c4", 0.0) is None
    assert table.take("a", 0.0) and table.take("a", 0.0)
    assert not table.take("a", 0.0)  # 2 connects + 2 messages = the burst of 4
    assert table.take("b", 0.0)
    table.close("a", "c1")
    table.close("a", "c2")
    assert table.prune(1.0) == 0  # its bucket has not refilled: reconnecting won't reset it
    assert table.prune(10.0) == 1 and len(table) == 1


def test_loopback_is_exempt_by_default() -> None:
    from signaling.addresses import is_exempt
    from signaling.config import SignalingConfig

    exempt = parse_networks(SignalingConfig().address_limits_exempt)
    assert is_exempt("127.0.0.5", exempt) and is_exempt("::1", exempt)
    assert not is_exempt("192.0.2.1", exempt) and not is_exempt("2001:db8::1", exempt)


def test_connection_attempts_have_a_bucket_per_address() -> None:
    table = AttemptTable(rate_per_s=2.0, burst=3)
    assert [table.admit("a", 0.0) for _ in range(4)] == [True, True, True, False]
    assert table.admit("b", 0.0)  # another address has its own bucket
    assert not table.admit("a", 0.2)  # 0.4 of a token: still refused
    assert table.admit("a", 0.5) and not table.admit("a", 0.5)  # one token refilled
    assert table.prune(1.0) == 1 and len(table) == 1  # b refilled: forgotten; a has not
    assert table.prune(2.5) == 1 and len(table) == 0


def test_a_full_attempt_table_admits_new_addresses_untracked() -> None:
    table = AttemptTable(rate_per_s=1.0, burst=1, max_tracked=2)
    assert table.admit("a", 0.0) and table.admit("b", 0.0)
    assert table.admit("c", 0.0) and table.admit("c", 0.0)  # full: c is not tracked
    assert not table.admit("a", 0.0)  # tracked addresses keep their budget
    assert table.admit("c", 0.5) and len(table) == 2  # a pass was done < 1 s ago: none
    assert table.admit("c", 2.0) and not table.admit("c", 2.0)  # pruned a and b: c tracked
    assert len(table) == 1
