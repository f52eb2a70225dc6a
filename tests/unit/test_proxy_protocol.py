"""
The PROXY protocol: reading and making headers (L{txrevproxy.http.proxy_protocol})
and the listener's wrapper that reads them (L{txrevproxy.server.proxy_protocol}).
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.protocol import Factory, Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransportWithDisconnection

from txrevproxy.http.proxy_protocol import (
    V1_MAX_LENGTH,
    V2_SIGNATURE,
    MalformedProxyHeader,
    ProxyHeader,
    proxy_header_v1,
    proxy_header_v2,
    read_proxy_header,
)
from txrevproxy.server.proxy_protocol import ProxyHeaderFactory

V1_TCP4 = b"PROXY TCP4 203.0.113.9 192.0.2.1 56324 443\r\n"


def v2(command, family, body):
    return V2_SIGNATURE + struct.pack("!BBH", command, family, len(body)) + body


# Reading -------------------------------------------------------------------


@pytest.mark.parametrize(
    "data, header, size",
    [
        (V1_TCP4, ProxyHeader(1, ("203.0.113.9", 56324), ("192.0.2.1", 443)), 44),
        (
            b"PROXY TCP6 2001:db8::1 2001:DB8::2 1 65535\r\nGET",
            ProxyHeader(1, ("2001:db8::1", 1), ("2001:db8::2", 65535)),
            44,
        ),
        (b"PROXY UNKNOWN\r\n", ProxyHeader(1), 15),
        (b"PROXY UNKNOWN ff:: 1.2.3.4 what ever\r\n", ProxyHeader(1), 38),
        (
            v2(0x21, 0x11, bytes([203, 0, 113, 9, 192, 0, 2, 1]) + struct.pack("!HH", 56324, 443)),
            ProxyHeader(2, ("203.0.113.9", 56324), ("192.0.2.1", 443)),
            28,
        ),
        (
            # TLVs after the addresses (AWS's VPC endpoint ID, say) are skipped.
            v2(0x21, 0x11, bytes(4) + bytes([127, 0, 0, 1]) + struct.pack("!HH", 1, 2) + b"\xea\x00\x01x"),
            ProxyHeader(2, ("0.0.0.0", 1), ("127.0.0.1", 2)),
            32,
        ),
        (v2(0x20, 0x11, bytes(12)), ProxyHeader(2), 28),  # LOCAL: a check
        (v2(0x21, 0x00, b""), ProxyHeader(2), 16),  # UNSPEC
        (v2(0x21, 0x31, bytes(216)), ProxyHeader(2), 232),  # Unix socket
    ],
)
def test_reads_a_header_and_says_how_long_it_was(data, header, size):
    assert read_proxy_header(data) == (header, size)


@pytest.mark.parametrize(
    "data",
    [
        b"GET / HTTP/1.1\r\n",
        b"PROXY TCP4 203.0.113.9 192.0.2.1 56324 443\n",  # LF alone
        b"PROXY TCP5 203.0.113.9 192.0.2.1 56324 443\r\n",
        b"PROXY TCP4 203.0.113.9 192.0.2.1 56324\r\n",
        b"PROXY TCP4 203.0.113.9  192.0.2.1 56324 443\r\n",
        b"PROXY TCP4 2001:db8::1 192.0.2.1 56324 443\r\n",  # family mismatch
        b"PROXY TCP6 fe80::1%eth0 fe80::2 1 2\r\n",
        b"PROXY TCP4 203.0.113.09 192.0.2.1 56324 443\r\n",
        b"PROXY TCP4 203.0.113.9 192.0.2.1 056324 443\r\n",
        b"PROXY TCP4 203.0.113.9 192.0.2.1 65536 443\r\n",
        b"PROXY TCP4 203.0.113.9 192.0.2.1 -1 443\r\n",
        b"PROXY UNKNOWNX\r\n",
        b"PROXY " + b"x" * (V1_MAX_LENGTH - 6),  # no CRLF within 107 bytes
        v2(0x11, 0x11, bytes(12)),  # version 1 in a version 2 header
        v2(0x22, 0x11, bytes(12)),  # command 2
        v2(0x21, 0x12, bytes(12)),  # UDP
        v2(0x21, 0x41, bytes(12)),  # family 4
        v2(0x21, 0x11, bytes(11)),  # too short for TCP4's addresses
        v2(0x21, 0x21, bytes(35)),
    ],
)
def test_malformed_headers_are_refused(data):
    with pytest.raises(MalformedProxyHeader):
        read_proxy_header(data)


def test_a_line_of_107_bytes_is_the_longest_allowed():
    line = b"PROXY UNKNOWN " + b"x" * (V1_MAX_LENGTH - 16) + b"\r\n"
    assert len(line) == V1_MAX_LENGTH
    assert read_proxy_header(line + b"GET") == (ProxyHeader(1), V1_MAX_LENGTH)
    with pytest.raises(MalformedProxyHeader):
        read_proxy_header(line[:-2] + b"x\r\n")


def test_the_v2_length_field_says_where_the_header_ends():
    header = v2(0x21, 0x11, bytes(12) + bytes(1000))
    assert read_proxy_header(header[:-1]) is None
    assert read_proxy_header(header + b"GET")[1] == 16 + 1012


ADDRESSES = st.one_of(
    st.tuples(
        st.ip_addresses(v=4).map(str),
        st.integers(0, 65535),
        st.ip_addresses(v=4).map(str),
        st.integers(0, 65535),
    ),
    st.tuples(
        st.ip_addresses(v=6).map(str),
        st.integers(0, 65535),
        st.ip_addresses(v=6).map(str),
        st.integers(0, 65535),
    ),
)


@pytest.mark.parametrize("make, version", [(proxy_header_v1, 1), (proxy_header_v2, 2)])
@given(addresses=ADDRESSES)
def test_headers_made_read_back_whole_and_not_before(make, version, addresses):
    source_host, source_port, destination_host, destination_port = addresses
    header = make((source_host, source_port), (destination_host, destination_port))
    for end in range(len(header)):
        assert read_proxy_header(header[:end]) is None
    assert read_proxy_header(header + b"GET / HTTP/1.1\r\n") == (
        ProxyHeader(
            version, (source_host, source_port), (destination_host, destination_port)
        ),
        len(header),
    )


@given(st.binary(max_size=300))
def test_any_bytes_are_a_header_a_beginning_or_refused(data):
    try:
        read = read_proxy_header(data)
    except MalformedProxyHeader:
        return
    if read is None:
        assert len(data) < 16 + 65535
    else:
        header, size = read
        assert 0 < size <= len(data)
        assert header.version in (1, 2)


@given(st.binary(max_size=120))
def test_mangled_v1_lines_are_refused_or_read_within_107_bytes(tail):
    data = b"PROXY " + tail
    try:
        read = read_proxy_header(data)
    except MalformedProxyHeader:
        return
    if read is None:
        assert len(data) < V1_MAX_LENGTH and b"\n" not in data
    else:
        assert read[1] <= V1_MAX_LENGTH


@given(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=60))
def test_mangled_v2_headers_are_refused_or_read_to_their_length(command, family, body):
    data = v2(command, family, body)
    try:
        read = read_proxy_header(data)
    except MalformedProxyHeader:
        return
    assert read is not None and read[1] == len(data)


# Making --------------------------------------------------------------------


def test_v1_header_of_an_ipv4_client():
    assert proxy_header_v1(("203.0.113.9", 56324), ("192.0.2.1", 443)) == V1_TCP4


def test_mixed_families_are_sent_as_ipv6_with_the_ipv4_one_mapped():
    assert (
        proxy_header_v1(("203.0.113.9", 1), ("2001:db8::2", 2))
        == b"PROXY TCP6 ::ffff:203.0.113.9 2001:db8::2 1 2\r\n"
    )
    assert read_proxy_header(proxy_header_v2(("2001:db8::1", 1), ("192.0.2.1", 2)))[0] == ProxyHeader(
        2, ("2001:db8::1", 1), ("::ffff:c000:201", 2)
    )


def test_a_connection_without_a_client_is_unknown_or_local():
    assert proxy_header_v1(None, None) == b"PROXY UNKNOWN\r\n"
    assert proxy_header_v2(None, ("192.0.2.1", 2)) == V2_SIGNATURE + b"\x20\x00\x00\x00"


# The listener's wrapper ----------------------------------------------------


class Collecting(Protocol):
    def __init__(self):
        self.received = b""
        self.made = False
        self.lost = False

    def connectionMade(self):
        self.made = True

    def dataReceived(self, data):
        self.received += data

    def connectionLost(self, reason):
        self.lost = True


def wrapped_connection(clock, timeout=10.0, admits=None):
    inner = Collecting()
    factory = ProxyHeaderFactory(
        Factory.forProtocol(lambda: inner), clock, timeout, admits
    )
    protocol = factory.buildProtocol(IPv4Address("TCP", "10.0.0.1", 40000))
    transport = StringTransportWithDisconnection(
        hostAddress=IPv4Address("TCP", "10.0.0.2", 8080),
        peerAddress=IPv4Address("TCP", "10.0.0.1", 40000),
    )
    transport.protocol = protocol
    protocol.makeConnection(transport)
    return protocol, inner, transport


def test_wrapped_protocol_sees_the_headers_addresses_and_the_rest_of_the_bytes():
    clock = Clock()
    protocol, inner, transport = wrapped_connection(clock)
    assert inner.made
    for byte in V1_TCP4 + b"GET":
        protocol.dataReceived(bytes([byte]))
    protocol.dataReceived(b" / HTTP/1.1\r\n")
    assert inner.received == b"GET / HTTP/1.1\r\n"
    assert inner.transport.getPeer() == IPv4Address("TCP", "203.0.113.9", 56324)
    assert inner.transport.getHost() == IPv4Address("TCP", "192.0.2.1", 443)
    clock.advance(60)
    assert transport.connected


def test_ipv6_addresses_and_a_header_without_addresses():
    protocol, inner, _ = wrapped_connection(Clock())
    protocol.dataReceived(proxy_header_v2(("2001:db8::1", 5), ("2001:db8::2", 443)))
    assert inner.transport.getPeer() == IPv6Address("TCP", "2001:db8::1", 5)
    protocol, inner, _ = wrapped_connection(Clock())
    protocol.dataReceived(proxy_header_v2(None, None) + b"x")
    assert inner.transport.getPeer() == IPv4Address("TCP", "10.0.0.1", 40000)
    assert inner.received == b"x"


def test_malformed_header_closes_the_connection_and_passes_nothing_on():
    protocol, inner, transport = wrapped_connection(Clock())
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert not transport.connected
    assert inner.received == b""
    assert inner.lost


def test_a_header_not_in_within_the_timeout_closes_the_connection():
    clock = Clock()
    protocol, inner, transport = wrapped_connection(clock, timeout=10.0)
    protocol.dataReceived(V1_TCP4[:10])
    clock.advance(9.9)
    assert transport.connected
    clock.advance(0.1)
    assert not transport.connected
    assert inner.received == b""
    assert clock.getDelayedCalls() == []


def test_a_connection_lost_before_its_header_leaves_no_timer():
    clock = Clock()
    protocol, inner, transport = wrapped_connection(clock)
    transport.loseConnection()
    assert clock.getDelayedCalls() == []
    assert inner.lost


def test_a_header_from_a_peer_not_admitted_is_never_read():
    """
    With C{trusted_proxies}, only those peers may name another client: a
    connection from anyone else is closed before its first byte is read.
    """
    clock = Clock()
    protocol, inner, transport = wrapped_connection(
        clock, admits=lambda host: host == "10.0.0.9"
    )
    protocol.dataReceived(V1_TCP4 + b"GET / HTTP/1.1\r\n")
    assert not transport.connected
    assert inner.received == b""
    assert inner.lost
    assert clock.getDelayedCalls() == []


def test_a_header_from_an_admitted_peer_is_read():
    protocol, inner, transport = wrapped_connection(
        Clock(), admits=lambda host: host == "10.0.0.1"
    )
    protocol.dataReceived(V1_TCP4 + b"GET")
    assert transport.connected
    assert inner.received == b"GET"
    assert inner.transport.getPeer() == IPv4Address("TCP", "203.0.113.9", 56324)
