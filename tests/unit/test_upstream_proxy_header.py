"""
PROXY protocol headers to backends (L{txrevproxy.upstream.proxy_header} and
the pool's C{proxy_protocol}), in memory: the header goes first, once per
connection, and a connection serves only the client its header names.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.internet.testing import MemoryReactorClock

from txrevproxy.http.proxy_protocol import V2_SIGNATURE
from txrevproxy.net.sized_reads import SizedReadsTLSEndpoint
from txrevproxy.upstream.pool import ConnectionPool
from txrevproxy.upstream.proxy_header import HeaderFirstEndpoint, with_proxy_header

from ..support.configs import document, parse, problems
from ..support.endpoints import FakeEndpoint
from ..support.exchanges import RecordingExchange

LISTENER = IPv4Address("TCP", "192.0.2.1", 443)
ALICE = IPv4Address("TCP", "203.0.113.9", 40000)
BOB = IPv4Address("TCP", "203.0.113.10", 40001)

GET = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"


def make_pool(proxy_protocol="v1"):
    endpoint = FakeEndpoint()
    pool = ConnectionPool(
        MemoryReactorClock(),
        endpoint,
        "http://backend",
        10.0,
        4,
        proxy_protocol=proxy_protocol,
    )
    return endpoint, pool


def connection_for(pool, client):
    """
    A connection for a request of C{client}, as an exchange takes one: an
    idle one of that client, or a new one.
    """
    header = pool.proxy_header(client, LISTENER)
    connection = pool.take_idle(header)
    if connection is None:
        made = []
        pool.connect(None, header).addCallback(made.append)
        connection = made[0]
    return connection


def exchange_on(connection):
    """
    Carry one GET and its response on C{connection}, which then goes back
    to its pool.
    """
    connection.sendHead(RecordingExchange(), GET, False, None)
    connection.dataReceived(OK)


def test_header_goes_first_and_once_per_connection():
    endpoint, pool = make_pool()
    first = connection_for(pool, ALICE)
    exchange_on(first)
    again = connection_for(pool, ALICE)
    assert again is first
    exchange_on(again)
    assert first.transport.value() == (
        b"PROXY TCP4 203.0.113.9 192.0.2.1 40000 443\r\n" + GET + GET
    )
    assert len(endpoint.connections) == 1


def test_a_connection_is_reused_only_for_its_own_client():
    endpoint, pool = make_pool("v2")
    alices = connection_for(pool, ALICE)
    exchange_on(alices)
    bobs = connection_for(pool, BOB)
    assert bobs is not alices
    exchange_on(bobs)
    # Alice's is not the most recent idle one, and is still found.
    assert connection_for(pool, ALICE) is alices
    assert connection_for(pool, BOB) is bobs
    assert len(endpoint.connections) == 2
    assert bobs.transport.value().startswith(V2_SIGNATURE + b"\x21\x11\x00\x0c")
    assert bobs.transport.value()[16:20] == bytes([203, 0, 113, 10])


def test_another_port_of_the_same_address_is_another_client_connection():
    _, pool = make_pool()
    first = connection_for(pool, ALICE)
    exchange_on(first)
    other_port = IPv4Address("TCP", ALICE.host, ALICE.port + 1)
    assert connection_for(pool, other_port) is not first


def test_ipv6_client_and_a_unix_socket_client():
    _, pool = make_pool()
    listener6 = IPv6Address("TCP", "2001:db8::1", 443)
    assert (
        pool.proxy_header(IPv6Address("TCP", "2001:db8::7", 5), listener6)
        == b"PROXY TCP6 2001:db8::7 2001:db8::1 5 443\r\n"
    )
    assert pool.proxy_header(UNIXAddress(b"/run/proxy.sock"), LISTENER) == (
        b"PROXY UNKNOWN\r\n"
    )


def test_a_connection_without_a_client_sends_local_or_unknown():
    for version, header in [
        ("v1", b"PROXY UNKNOWN\r\n"),
        ("v2", V2_SIGNATURE + b"\x20\x00\x00\x00"),
    ]:
        _, pool = make_pool(version)
        made = []
        pool.connect().addCallback(made.append)
        exchange_on(made[0])
        assert made[0].transport.value() == header + GET
        # Not for a client's request.
        assert pool.take_idle(pool.proxy_header(ALICE, LISTENER)) is None


def test_without_proxy_protocol_nothing_is_sent_first():
    endpoint, pool = make_pool(None)
    assert pool.proxy_header(ALICE, LISTENER) is None
    assert pool.connection_endpoint() is endpoint
    connection = connection_for(pool, ALICE)
    exchange_on(connection)
    assert connection.transport.value() == GET
    assert connection_for(pool, BOB) is connection


def test_the_header_goes_under_tls():
    tcp = FakeEndpoint()
    creator = object()
    endpoint = with_proxy_header(SizedReadsTLSEndpoint(creator, tcp), b"PROXY UNKNOWN\r\n")
    assert isinstance(endpoint, SizedReadsTLSEndpoint)
    assert endpoint.creator is creator
    assert isinstance(endpoint.endpoint, HeaderFirstEndpoint)
    assert endpoint.endpoint.endpoint is tcp


def test_upstream_key_takes_v1_or_v2():
    base = 'servers = [{ url = "http://127.0.0.1:9001" }]\n'
    config = parse(document(upstream=base + 'proxy_protocol = "v2"'))
    assert config.upstreams["app"].proxy_protocol == "v2"
    assert parse(document(upstream=base)).upstreams["app"].proxy_protocol is None
    [problem] = problems(document(upstream=base + 'proxy_protocol = "v3"'))
    assert problem.startswith("upstreams.app.proxy_protocol: ")
    assert '"v1"' in problem and '"v2"' in problem
