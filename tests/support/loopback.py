"""
Real servers and clients on 127.0.0.1 for the integration tests: a raw
byte client, backend resources with known behaviour, and a proxy started
from a config model.
"""

from __future__ import annotations

from typing import List, Optional, Tuple

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP4ServerEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.web import resource, server

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import (
    BackendServer,
    Config,
    Listener,
    Route,
    ServerSettings,
    Upstream,
)


class RawClient(Protocol):
    """
    Sends bytes and collects every byte received until the connection
    closes; C{closed} fires with them.
    """

    def __init__(self, to_send: bytes = b"") -> None:
        self.to_send = to_send
        self.received = b""
        self.closed: Deferred = Deferred()
        self.connected_d: Deferred = Deferred()

    def connectionMade(self) -> None:
        if self.to_send:
            self.transport.write(self.to_send)
        self.connected_d.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason=None) -> None:
        self.closed.callback(self.received)


def connect_raw(port: int, data: bytes = b"") -> Deferred:
    """
    Connect a L{RawClient} to 127.0.0.1:port and send C{data}.

    @return: a Deferred firing with the connected L{RawClient}.
    """
    client = RawClient(data)
    endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", port)
    return endpoint.connect(Factory.forProtocol(lambda: client))


def raw_exchange(port: int, data: bytes) -> Deferred:
    """
    Send raw bytes, return (a Deferred of) all bytes received until close.
    """
    return connect_raw(port, data).addCallback(lambda client: client.closed)


class CountingSite(server.Site):
    """
    A site that counts the connections it accepted and tells when each
    one closes.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.connections = 0
        self.lost: List[Deferred] = []

    def buildProtocol(self, addr):
        channel = super().buildProtocol(addr)
        self.connections += 1
        lost = Deferred()
        self.lost.append(lost)
        original = channel.connectionLost

        def connectionLost(reason):
            original(reason)
            lost.callback(None)

        channel.connectionLost = connectionLost
        return channel

    def log(self, request) -> None:
        pass


class Echo(resource.Resource):
    """
    Answers with what it received: method, URI, headers and body size.
    """

    isLeaf = True

    def render(self, request):
        body = request.content.read()
        lines = [b"%s %s %d" % (request.method, request.uri, len(body))]
        for name, values in request.requestHeaders.getAllRawHeaders():
            for value in values:
                lines.append(name.lower() + b": " + value)
        request.setHeader(b"content-type", b"text/plain")
        return b"\n".join(lines) + b"\n"


def echoed_headers(body: bytes) -> dict:
    """
    The request headers an L{Echo} backend reports, by lower-case name.
    """
    headers: dict = {}
    for line in body.split(b"\n")[1:]:
        if line:
            name, _, value = line.partition(b": ")
            headers.setdefault(name, []).append(value)
    return headers


class Recording(Protocol):
    """
    A backend connection that records every byte it gets, splits it into
    requests (framed by Content-Length or chunking, as the proxy sends
    them) and answers each with a short 200.
    """

    def connectionMade(self) -> None:
        self._buffer = b""
        self.factory.connections += 1

    def dataReceived(self, data: bytes) -> None:
        self.factory.received.append(data)
        self._buffer += data
        while True:
            request = _split_request(self._buffer)
            if request is None:
                return
            head, body, self._buffer = request
            self.factory.requests.append((head, body))
            self.transport.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")


def _split_request(data: bytes) -> Optional[Tuple[bytes, bytes, bytes]]:
    """
    The first whole request in C{data}: its head (without the empty line),
    its decoded body and what follows; L{None} until it is all there.
    """
    head, found, rest = data.partition(b"\r\n\r\n")
    if not found:
        return None
    fields = [line.lower() for line in head.split(b"\r\n")[1:]]
    if b"transfer-encoding: chunked" in fields:
        body = b""
        while True:
            size_line, found, after = rest.partition(b"\r\n")
            if not found:
                return None
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                if after.startswith(b"\r\n"):
                    return head, body, after[2:]
                trailers, found, after = after.partition(b"\r\n\r\n")
                return (head, body, after) if found else None
            if len(after) < size + 2:
                return None
            body += after[:size]
            rest = after[size + 2 :]
    length = 0
    for field in fields:
        if field.startswith(b"content-length:"):
            length = int(field[15:])
    if len(rest) < length:
        return None
    return head, rest[:length], rest[length:]


class RecordingFactory(Factory):
    """
    A backend that records the raw bytes it receives (C{received}), the
    requests they make (C{requests}, C{(head, body)} pairs) and how many
    connections it was made (C{connections}).
    """

    protocol = Recording

    def __init__(self) -> None:
        self.connections = 0
        self.received: List[bytes] = []
        self.requests: List[Tuple[bytes, bytes]] = []


class Silent(Protocol):
    """
    A backend connection that never answers.
    """

    def connectionMade(self) -> None:
        self.factory.connected.append(self)

    def connectionLost(self, reason=None) -> None:
        self.factory.lost.append(self)


class SilentFactory(Factory):
    """
    A backend that accepts connections and never answers; it records the
    connections made and lost.
    """

    protocol = Silent

    def __init__(self) -> None:
        self.connected: List[Silent] = []
        self.lost: List[Silent] = []


def listen(factory, testcase) -> Deferred:
    """
    Listen on 127.0.0.1:0; stopped at the end of the test.

    @return: a Deferred firing with the port number.
    """
    endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")

    def listening(port):
        testcase.addCleanup(port.stopListening)
        return port.getHost().port

    return endpoint.listen(factory).addCallback(listening)


def backend_server(port: int) -> BackendServer:
    return BackendServer("http://127.0.0.1:%d" % port, "http", "127.0.0.1", port)


def proxy_config(
    backend_ports,
    server: Optional[ServerSettings] = None,
    endpoint: str = "tcp:0:interface=127.0.0.1",
    **upstream_options,
) -> Config:
    """
    A config with one listener (on a free port by default) and one
    upstream.
    """
    return Config(
        server=server or ServerSettings(),
        listeners={"web": Listener("web", endpoint)},
        upstreams={
            "app": Upstream(
                "app",
                tuple(backend_server(p) for p in backend_ports),
                **upstream_options,
            )
        },
        routes=(Route(0, "app", "/"),),
    )


def start_proxy(config: Config, testcase) -> int:
    """
    Start a L{ProxyService}; stopped at the end of the test.

    @return: the port it listens on.
    """
    service = ProxyService(config, reactor)
    service.startService()
    testcase.addCleanup(service.stopService)
    return service.ports[0].getHost().port
