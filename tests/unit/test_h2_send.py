"""
The sending loop of the HTTP/2 server connection without a network: the
streams take turns, responses go out in one turn of the reactor, and a
stream without flow-control window stalls alone until the client opens
it.
"""

from __future__ import annotations

import h2.connection
import h2.events
import h2.settings
import priority
import pytest
from twisted.web.http_headers import Headers
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txrevproxy.net.h2_send import TURN_BYTES, RoundRobin

from ..support import memory_h2

BODY = b"x" * 100


class Body(Resource):
    isLeaf = True

    def render(self, request):
        request.setHeader(b"X-Request-ID", b"a-new-one-each-time")
        return BODY


def test_round_robin_gives_the_unblocked_streams_in_turns():
    streams = RoundRobin()
    for stream_id in (1, 3, 5):
        streams.insert_stream(stream_id)
    streams.unblock(1)
    streams.unblock(3)
    assert [streams.next_stream() for _ in range(4)] == [1, 3, 1, 3]
    streams.block(1)
    assert [streams.next_stream() for _ in range(2)] == [3, 3]


def test_round_robin_without_unblocked_stream_gives_none():
    streams = RoundRobin()
    streams.insert_stream(1)
    assert not streams.ready()
    assert streams.next_stream() is None
    streams.unblock(1)
    streams.remove_stream(1)
    streams.unblock(1)
    assert streams.next_stream() is None


def test_round_robin_refuses_a_stream_twice_and_ignores_priorities():
    streams = RoundRobin()
    streams.reprioritize(1, weight=32)
    streams.insert_stream(1)
    with pytest.raises(priority.DuplicateStreamError):
        streams.insert_stream(1)


def connected(window: int = 65535, resource: Resource = Body()):
    return memory_h2.connected(resource, window)


def request(client, stream_id: int) -> None:
    client.send_headers(
        stream_id,
        [(":method", "GET"), (":scheme", "http"), (":authority", "a"), (":path", "/")],
        end_stream=True,
    )


def exchange(protocol, client, transport, clock):
    """
    Send what the client has queued, let the server send in its turn, and
    return the body bytes each stream received and the streams that ended.
    """
    protocol.dataReceived(client.data_to_send())
    clock.advance(0)
    events = client.receive_data(transport.value())
    transport.clear()
    bodies = {}
    ended = []
    for event in events:
        if isinstance(event, h2.events.DataReceived):
            bodies[event.stream_id] = bodies.get(event.stream_id, b"") + event.data
        elif isinstance(event, h2.events.StreamEnded):
            ended.append(event.stream_id)
    return bodies, ended


def test_responses_of_many_streams_are_sent_in_one_turn():
    protocol, client, transport, clock = connected()
    streams = list(range(1, 200, 2))
    for stream_id in streams:
        request(client, stream_id)
    bodies, ended = exchange(protocol, client, transport, clock)
    assert sorted(ended) == streams
    assert all(bodies[stream_id] == BODY for stream_id in streams)


def test_stream_without_window_stalls_alone_until_the_client_opens_it():
    protocol, client, transport, clock = connected(window=10)
    request(client, 1)
    request(client, 3)
    bodies, ended = exchange(protocol, client, transport, clock)
    assert bodies == {1: BODY[:10], 3: BODY[:10]}
    assert ended == []
    client.increment_flow_control_window(1000, stream_id=1)
    bodies, ended = exchange(protocol, client, transport, clock)
    assert bodies == {1: BODY[10:]}
    assert ended == [1]
    client.increment_flow_control_window(1000, stream_id=3)
    bodies, ended = exchange(protocol, client, transport, clock)
    assert bodies == {3: BODY[10:]}
    assert ended == [3]


def test_response_heads_stay_out_of_the_hpack_dynamic_table():
    protocol, client, transport, clock = connected()
    heads = []
    for stream_id in (1, 3):
        request(client, stream_id)
        protocol.dataReceived(client.data_to_send())
        clock.advance(0)
        heads += [
            event.headers
            for event in client.receive_data(transport.value())
            if isinstance(event, h2.events.ResponseReceived)
        ]
        transport.clear()
    first, second = (dict(head) for head in heads)
    assert first[b":status"] == second[b":status"] == b"200"
    assert first[b"x-request-id"] == second[b"x-request-id"] == b"a-new-one-each-time"
    assert len(client.decoder.header_table.dynamic_entries) == 0


def test_stream_whose_window_went_negative_waits_for_a_positive_one():
    """
    A smaller SETTINGS_INITIAL_WINDOW_SIZE can leave a stream's window
    below zero (RFC 9113 section 6.9.2); a WINDOW_UPDATE that leaves it
    there unblocks the stream, which must send nothing yet rather than
    break the connection's sending loop.
    """
    protocol, client, transport, clock = connected(window=10)
    request(client, 1)
    bodies, _ = exchange(protocol, client, transport, clock)
    assert bodies == {1: BODY[:10]}
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0})
    exchange(protocol, client, transport, clock)
    client.increment_flow_control_window(5, stream_id=1)
    assert exchange(protocol, client, transport, clock) == ({}, [])
    client.increment_flow_control_window(1000, stream_id=1)
    bodies, ended = exchange(protocol, client, transport, clock)
    assert bodies == {1: BODY[10:]}
    assert ended == [1]


def test_stream_without_window_goes_on_when_the_client_settings_open_it():
    """
    A larger SETTINGS_INITIAL_WINDOW_SIZE opens the window of every
    stream (RFC 9113 section 6.9.2), as a WINDOW_UPDATE would.
    """
    protocol, client, transport, clock = connected(window=10)
    request(client, 1)
    bodies, _ = exchange(protocol, client, transport, clock)
    assert bodies == {1: BODY[:10]}
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    bodies, ended = exchange(protocol, client, transport, clock)
    assert bodies == {1: BODY[10:]}
    assert ended == [1]


class Large(Resource):
    isLeaf = True

    def render(self, request):
        return b"y" * (2 * TURN_BYTES)


def received_now(client, data: bytes):
    """
    The body bytes the client got of C{data}, and the streams that ended.
    """
    events = client.receive_data(data)
    body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
    ended = [e.stream_id for e in events if isinstance(e, h2.events.StreamEnded)]
    return body, ended


def test_a_connection_sends_turn_bytes_a_reactor_turn():
    """
    Past L{TURN_BYTES} in one turn of the reactor, a connection lets the
    others have theirs, and goes on in the next turn: one write a turn.
    """
    protocol, client, transport, clock = connected(window=2**31 - 1, resource=Large())
    client.increment_flow_control_window(2**30)
    client.receive_data(transport.value())
    transport.clear()
    written = []
    write = transport.write
    transport.write = lambda data: (written.append(received_now(client, data)), write(data))
    request(client, 1)
    protocol.dataReceived(client.data_to_send())
    clock.advance(0)
    turns = [data for data, _ in written if data]
    assert [len(data) for data in turns] == [TURN_BYTES, TURN_BYTES]
    assert [ended for _, ended in written if ended] == [[1]]


def test_a_lone_stream_answered_at_once_still_waits_a_turn_past_turn_bytes():
    protocol, client, transport, clock = connected(window=2**31 - 1, resource=Large())
    client.increment_flow_control_window(2**30)
    # The sending loop runs once, and waits for data.
    clock.advance(0)
    client.receive_data(transport.value())
    transport.clear()
    request(client, 1)
    protocol.dataReceived(client.data_to_send())
    body, ended = received_now(client, transport.value())
    assert (len(body), ended) == (TURN_BYTES, [])
    transport.clear()
    clock.advance(0)
    body, ended = received_now(client, transport.value())
    assert (len(body), ended) == (TURN_BYTES, [1])


def test_nothing_is_sent_while_the_transport_pauses_the_connection():
    protocol, client, transport, clock = connected()
    transport.producer.pauseProducing()
    request(client, 1)
    assert exchange(protocol, client, transport, clock) == ({}, [])
    transport.producer.resumeProducing()
    clock.advance(0)
    assert received_now(client, transport.value()) == (BODY, [1])


def test_a_response_ends_its_stream_with_its_last_data_frame():
    protocol, client, transport, clock = connected()
    request(client, 1)
    protocol.dataReceived(client.data_to_send())
    clock.advance(0)
    assert_one_frame_ends_the_body(client, transport.value())


def assert_one_frame_ends_the_body(client, data: bytes) -> None:
    """
    C{data} brings the client the response body in one DATA frame, which
    ends the stream (no empty frame after it).
    """
    frames = [
        event
        for event in client.receive_data(data)
        if isinstance(event, h2.events.DataReceived)
    ]
    assert [frame.data for frame in frames] == [BODY]
    assert frames[0].stream_ended is not None


def test_a_stream_without_window_for_its_last_bytes_ends_once_they_are_sent():
    protocol, client, transport, clock = connected(window=len(BODY) - 1)
    request(client, 1)
    bodies, ended = exchange(protocol, client, transport, clock)
    assert (bodies, ended) == ({1: BODY[:-1]}, [])
    client.increment_flow_control_window(10, stream_id=1)
    bodies, ended = exchange(protocol, client, transport, clock)
    assert (bodies, ended) == ({1: BODY[-1:]}, [1])


def test_responses_finished_in_one_turn_go_out_in_one_write():
    # Stream 1 stays open, its response waiting for window.
    protocol, client, transport, clock = connected(window=10)
    request(client, 1)
    exchange(protocol, client, transport, clock)
    written = []
    write = transport.write
    transport.write = lambda data: (written.append(received_now(client, data)), write(data))
    for stream_id in (3, 5, 7):
        request(client, stream_id)
        client.increment_flow_control_window(1000, stream_id=stream_id)
    protocol.dataReceived(client.data_to_send())
    clock.advance(0)
    bodies = [(body, ended) for body, ended in written if body]
    assert bodies == [(BODY * 3, [3, 5, 7])]


def test_the_only_stream_of_a_connection_is_answered_at_once():
    protocol, client, transport, clock = connected()
    clock.advance(0)
    client.receive_data(transport.value())
    transport.clear()
    request(client, 1)
    protocol.dataReceived(client.data_to_send())
    assert received_now(client, transport.value()) == (BODY, [1])


class HeldBody(Resource):
    """
    Answers as the proxy answers what it read of a backend at once: its
    writes held (C{holdWrites}, twice over, as when several backend
    streams are read together), the body and the end written, then
    released; C{releases} keeps what releases them for the test.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.releases = []

    def render(self, request):
        self.releases += [request.holdWrites(), request.holdWrites()]
        request.write(BODY)
        request.finish()
        return NOT_DONE_YET


def test_a_lone_stream_sends_what_was_held_at_the_last_release_in_one_frame():
    resource = HeldBody()
    protocol, client, transport, clock = connected(resource=resource)
    clock.advance(0)
    client.receive_data(transport.value())
    transport.clear()
    request(client, 1)
    protocol.dataReceived(client.data_to_send())
    first, last = resource.releases
    first()
    # The head only.
    assert received_now(client, transport.value()) == (b"", [])
    transport.clear()
    last()
    assert_one_frame_ends_the_body(client, transport.value())


class Pending(Resource):
    """
    Keeps its request unanswered (C{request}), for the test to answer as
    the proxy answers what it read of a backend.
    """

    isLeaf = True

    def render(self, request):
        self.request = request
        return NOT_DONE_YET


def pending_request():
    """
    A connection with one stream waiting for its response, nothing of it
    sent yet; the request and the client's writes from now on.
    """
    resource = Pending()
    protocol, client, transport, clock = connected(resource=resource)
    request(client, 1)
    protocol.dataReceived(client.data_to_send())
    clock.advance(0)
    client.receive_data(transport.value())
    transport.clear()
    written = []
    write = transport.write
    transport.write = lambda data: (written.append(data), write(data))
    return resource.request, client, written


def test_a_head_written_while_held_goes_out_with_the_body_in_one_write():
    """
    While the writes are held, the response's HEADERS frame waits in
    C{h2}'s buffer too: the release sends it and the body, whose one DATA
    frame ends the stream, in one write.
    """
    answer, client, written = pending_request()
    release = answer.holdWrites()
    answer.write(BODY)
    answer.finish()
    assert written == []
    release()
    [data] = written
    kinds = [type(event) for event in client.receive_data(data)]
    assert kinds == [h2.events.ResponseReceived, h2.events.DataReceived, h2.events.StreamEnded]


def test_a_head_held_without_a_body_goes_out_at_the_release():
    answer, client, written = pending_request()
    release = answer.holdWrites()
    answer.channel.writeHeaders(b"HTTP/2", b"200", b"OK", Headers())
    assert written == []
    release()
    [data] = written
    kinds = [type(event) for event in client.receive_data(data)]
    assert kinds == [h2.events.ResponseReceived]
