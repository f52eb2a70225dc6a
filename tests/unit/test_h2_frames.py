"""
Tests for the frame handling of L{txrevproxy.net.h2.TrailingConnection}:
C{h2}'s, without the trace log that formats every frame.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import pytest
from h2.exceptions import ProtocolError
from hyperframe.frame import Frame

from txrevproxy.net.h2 import TrailingConnection

REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"https"),
    (b":authority", b"example.com"),
    (b":path", b"/"),
]


def client_and_servers():
    """
    An C{h2} client, and a L{TrailingConnection} and C{h2}'s own server
    connection that have both received its preface.
    """
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    preface = client.data_to_send()
    config = h2.config.H2Configuration(client_side=False)
    servers = [TrailingConnection(config), h2.connection.H2Connection(config)]
    for server in servers:
        server.initiate_connection()
        server.receive_data(preface)
        server.data_to_send()
    return client, servers


def outcome(server, data):
    """
    What C{server} makes of C{data}: the kinds of its events (or the
    error it raises), and the bytes it answers with.
    """
    try:
        result = [type(event) for event in server.receive_data(data)]
    except ProtocolError as e:
        result = type(e)
    return result, server.data_to_send()


def test_a_frame_is_handled_without_being_formatted(monkeypatch):
    """
    No frame's C{repr} is built: Twisted's configuration logs nothing.
    """
    client, (server, _) = client_and_servers()

    def refuse(frame):
        raise AssertionError("frame formatted")

    monkeypatch.setattr(Frame, "__repr__", refuse)
    client.send_headers(1, REQUEST, end_stream=True)
    events = server.receive_data(client.data_to_send())
    assert [type(event) for event in events] == [
        h2.events.RequestReceived,
        h2.events.StreamEnded,
    ]


def data_on_a_stream_reset(client, server):
    client.send_headers(1, REQUEST)
    server.receive_data(client.data_to_send())
    server.reset_stream(1)
    server.data_to_send()
    client.send_data(1, b"late")
    return client.data_to_send()


def data_on_a_stream_reset_and_forgotten(client, server):
    late = data_on_a_stream_reset(client, server)
    client.send_headers(3, REQUEST)
    server.receive_data(client.data_to_send())
    server.open_inbound_streams  # h2 forgets closed streams as it counts
    assert 1 not in server.streams
    return late


def data_on_a_stream_the_client_ended(client, server):
    client.send_headers(1, REQUEST, end_stream=True)
    server.receive_data(client.data_to_send())
    # What h2's client refuses to send: a DATA frame after END_STREAM.
    return bytes.fromhex("000004000000000001") + b"late"


def data_on_a_stream_the_client_ended_and_forgotten(client, server):
    late = data_on_a_stream_the_client_ended(client, server)
    server.send_headers(1, [(b":status", b"204")], end_stream=True)
    server.data_to_send()
    client.send_headers(3, REQUEST)
    server.receive_data(client.data_to_send())
    server.open_inbound_streams
    assert 1 not in server.streams
    return late


def data_on_a_stream_implicitly_closed(client, server):
    client.send_headers(3, REQUEST)
    server.receive_data(client.data_to_send())
    return bytes.fromhex("000004000000000001") + b"late"


@pytest.mark.parametrize(
    "late_frame",
    [
        data_on_a_stream_reset,
        data_on_a_stream_reset_and_forgotten,
        data_on_a_stream_the_client_ended,
        data_on_a_stream_the_client_ended_and_forgotten,
        data_on_a_stream_implicitly_closed,
    ],
)
def test_a_frame_of_a_closed_stream_is_answered_as_h2_answers_it(late_frame):
    """
    A frame of a stream closed (by either side, known or forgotten, or
    implicitly by a higher one) gets the events and the answer C{h2}'s own
    connection gives it.
    """
    outcomes = []
    for index in range(2):
        client, servers = client_and_servers()
        late = late_frame(client, servers[index])
        outcomes.append(outcome(servers[index], late))
    ours, h2s = outcomes
    assert ours == h2s
    assert ours[1]

