"""
Cleartext HTTP/2 (h2c) without a network: the C{h2c} keys, the choice of
protocol from a connection's first bytes, and C{Upgrade: h2c}, which is
never a protocol to tunnel.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from txrevproxy.config.model import ServerSettings
from txrevproxy.http.h2c import h2c_upgrade
from txrevproxy.http.headers import requested_upgrade
from txrevproxy.server.channel import ProxyChannel
from txrevproxy.server.http2 import PREFACE, PriorKnowledgeSite, ProxyH2Connection

from ..support.configs import document, parse, problems


def test_h2c_is_off_by_default_and_set_on_a_plain_listener():
    assert parse(document()).listeners["web"].h2c is False
    config = parse(document(listener='endpoint = "tcp:8080"\nh2c = true'))
    assert config.listeners["web"].h2c is True


def test_h2c_on_a_tls_listener_is_a_problem_with_its_key():
    text = document(
        listener='endpoint = "tcp:8443"\ntls = "t"\nh2c = true',
        extra='[tls.t]\ncertificates = [{ cert = "c.pem", key = "k.pem" }]\n',
    )
    assert (
        "listeners.web.h2c: h2c is HTTP/2 without TLS: a listener with tls "
        "offers HTTP/2 through ALPN (http2 = true)"
    ) in problems(text)


def test_h2c_must_be_a_boolean():
    assert problems(document(listener='endpoint = "tcp:8080"\nh2c = "yes"'))[0].startswith(
        "listeners.web.h2c:"
    )


def test_upgrade_to_h2c_is_never_requested_of_a_backend():
    for value in (b"h2c", b"H2C", b" h2c "):
        headers = [(b"Upgrade", value), (b"Connection", b"Upgrade, HTTP2-Settings")]
        assert requested_upgrade(b"GET", b"HTTP/1.1", headers) is None
    headers = [(b"Upgrade", b"websocket"), (b"Connection", b"Upgrade")]
    assert requested_upgrade(b"GET", b"HTTP/1.1", headers) == b"websocket"


def connect(site=None):
    if site is None:
        site = PriorKnowledgeSite(
            Resource(), reactor=MemoryReactorClock(), settings=ServerSettings()
        )
    protocol = site.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 4321))
    protocol.makeConnection(transport)
    return site, protocol, transport


def test_preface_in_pieces_makes_an_http2_connection():
    site, protocol, transport = connect()
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    sent = client.data_to_send()
    assert sent.startswith(PREFACE)
    for piece in (sent[:3], sent[3:20], sent[20:]):
        assert transport.value() == b""
        protocol.dataReceived(piece)
    assert isinstance(protocol._channel, ProxyH2Connection)
    assert site.channels == set() and len(site.h2_connections) == 1
    events = client.receive_data(transport.value())
    assert isinstance(events[0], h2.events.RemoteSettingsChanged)


def test_client_over_its_connection_limit_gets_no_http2():
    site = PriorKnowledgeSite(
        Resource(),
        reactor=MemoryReactorClock(),
        settings=ServerSettings(max_connections_per_ip=1),
    )
    connect(site)
    _, protocol, transport = connect(site)
    assert transport.value().startswith(b"HTTP/1.1 429 ")
    protocol.dataReceived(PREFACE)
    assert site.h2_connections == set()


def test_request_that_starts_like_the_preface_is_http11():
    site, protocol, transport = connect()
    protocol.dataReceived(b"P")
    protocol.dataReceived(b"RX / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(protocol._channel, ProxyChannel)
    assert site.h2_connections == set()
    assert transport.value().startswith(b"HTTP/1.1 ")


def test_h2c_upgrade_needs_h2c():
    text = document(listener='endpoint = "tcp:8080"\nh2c_upgrade = true')
    assert problems(text) == [
        "listeners.web.h2c_upgrade: the upgrade to h2c needs h2c = true on the listener"
    ]
    config = parse(document(listener='endpoint = "tcp:8080"\nh2c = true\nh2c_upgrade = true'))
    assert config.listeners["web"].h2c_upgrade is True


CURL_UPGRADE = (
    b"GET /x?y=1 HTTP/1.1\r\nHost: example.test:8080\r\nUser-Agent: curl/7.88.1\r\n"
    b"Accept: */*\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
    b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA"
)


def test_upgrade_request_becomes_stream_one():
    upgrade = h2c_upgrade(CURL_UPGRADE)
    assert upgrade.settings == b"AAMAAABkAAQCAAAAAAIAAAAA"
    assert upgrade.headers == [
        (b":method", b"GET"),
        (b":scheme", b"http"),
        (b":authority", b"example.test:8080"),
        (b":path", b"/x?y=1"),
        (b"user-agent", b"curl/7.88.1"),
        (b"accept", b"*/*"),
    ]


def test_settings_without_padding_are_padded_for_h2():
    head = CURL_UPGRADE.replace(b"AAMAAABkAAQCAAAAAAIAAAAA", b"AAMAAABk")
    assert h2c_upgrade(head).settings == b"AAMAAABk"
    head = CURL_UPGRADE.replace(b"AAMAAABkAAQCAAAAAAIAAAAA", b"AAMAAAB")
    assert h2c_upgrade(head) is None


def test_upgrades_not_taken():
    for old, new in [
        (b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA", b"X: y"),
        (b"Connection: Upgrade, HTTP2-Settings", b"Connection: Upgrade"),
        (b"Upgrade: h2c", b"Upgrade: websocket"),
        (b"Upgrade: h2c", b"Upgrade: h2c\r\nUpgrade: h2c"),
        (b"Accept: */*", b"Content-Length: 3"),
        (b"Accept: */*", b"Transfer-Encoding: chunked"),
        (b"HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA", b"HTTP2-Settings: AA*AAABk"),
        (b"GET /x?y=1 HTTP/1.1", b"GET /x?y=1 HTTP/1.0"),
        (b"GET /x?y=1", b"GET http://example.test/x"),
        (b"Host: example.test:8080\r\n", b""),
        (b"Accept: */*", b"Accept : */*"),
    ]:
        assert new != old
        assert h2c_upgrade(CURL_UPGRADE.replace(old, new)) is None, new
    head = CURL_UPGRADE.replace(b"Accept: */*", b"Content-Length: 0")
    assert h2c_upgrade(head) is not None


def test_first_head_held_for_the_upgrade_is_timed_as_any_head():
    clock = MemoryReactorClock()
    site = PriorKnowledgeSite(
        Resource(), reactor=clock, settings=ServerSettings(header_timeout=10), upgrade=True
    )
    site.doStart()
    _, protocol, transport = connect(site)
    protocol.dataReceived(b"GET / HTTP/1.1\r\nHost: h\r\n")
    assert transport.value() == b""
    clock.advance(11)
    site.doStop()
    assert transport.value().startswith(b"HTTP/1.1 408 ")
