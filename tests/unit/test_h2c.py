"""
Cleartext HTTP/2 (h2c) without a network: the C{h2c} key, the choice of
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


def connect():
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


def test_request_that_starts_like_the_preface_is_http11():
    site, protocol, transport = connect()
    protocol.dataReceived(b"P")
    protocol.dataReceived(b"RX / HTTP/1.1\r\nHost: h\r\n\r\n")
    assert isinstance(protocol._channel, ProxyChannel)
    assert site.h2_connections == set()
    assert transport.value().startswith(b"HTTP/1.1 ")
