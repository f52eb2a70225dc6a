"""
Tests of L{txrevproxy.net.h2_stream}: a stream's request gets the
client's header block as Twisted's stream gives it, the fields put in at
once.
"""

from __future__ import annotations

import h2.events
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txrevproxy.net.h2_stream import FieldsStream
from txrevproxy.net.http_request import RequestFields

from ..support.memory_h2 import connected


class Kept(Resource):
    """
    Keeps the requests it gets, unanswered.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests = []

    def render(self, request):
        self.requests.append(request)
        return NOT_DONE_YET


def send(headers, end_stream: bool = True):
    """
    Send C{headers} as stream 1 of an h2c connection to L{Kept}; return
    the resource, the connection and the events of what it answered.
    """
    resource = Kept()
    protocol, client, transport, clock = connected(resource)
    client.send_headers(1, headers, end_stream=end_stream)
    protocol.dataReceived(client.data_to_send())
    clock.advance(0)
    return resource, protocol, client.receive_data(transport.value())


def test_request_gets_method_path_and_fields_with_authority_as_first_host():
    resource, protocol, _ = send(
        [
            (":method", "GET"),
            (":scheme", "http"),
            (":authority", "example.com"),
            (":path", "/a?b"),
            ("host", "example.com"),
            ("accept", "text/plain"),
            ("accept", "text/html"),
        ]
    )
    [request] = resource.requests
    assert isinstance(protocol._channel.streams[1], FieldsStream)
    assert isinstance(request.requestHeaders, RequestFields)
    assert (request.method, request.uri) == (b"GET", b"/a?b")
    # :authority and a Host field that agree make one Host field.
    assert list(request.requestHeaders.getAllRawHeaders()) == [
        (b"Host", [b"example.com"]),
        (b"Accept", [b"text/plain", b"text/html"]),
    ]


def test_request_gets_the_length_of_its_body():
    resource, _, _ = send(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "example.com"),
            (":path", "/"),
            ("content-length", "4"),
        ],
        end_stream=False,
    )
    [request] = resource.requests
    assert request.bodyLength == 4


def test_client_expecting_continue_gets_it():
    _, _, events = send(
        [
            (":method", "POST"),
            (":scheme", "http"),
            (":authority", "example.com"),
            (":path", "/"),
            ("content-length", "4"),
            ("expect", "100-continue"),
        ],
        end_stream=False,
    )
    [event] = [e for e in events if isinstance(e, h2.events.InformationalResponseReceived)]
    assert (b":status", b"100") in event.headers
