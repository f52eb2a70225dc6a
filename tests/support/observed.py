"""
A proxy started from TOML with a JSON access log, in front of a backend
that answers when the test says so, and what a test reads of it: the lines
it logged, its metrics, and clients that leave the way real ones do (a
reset, a half-close).
"""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path
from typing import List

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.web import resource, server

from txrevproxy.app.service import ProxyService
from txrevproxy.config import load_config

from .loopback import CountingSite, listen
from .processes import temporary_directory
from .tls_clients import CertificateMaker


class Held(resource.Resource):
    """
    A backend resource that answers nothing until the test calls
    L{answer}; C{requests} are those waiting.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: List = []

    def render(self, request):
        self.requests.append(request)
        return server.NOT_DONE_YET

    def answer(self, body: bytes) -> None:
        """
        Answer the oldest waiting request with C{body}.
        """
        request = self.requests.pop(0)
        request.setHeader(b"content-length", b"%d" % (len(body),))
        request.write(body)
        request.finish()


def reset(transport) -> None:
    """
    Close a client's TCP connection with a reset (SO_LINGER 0), as a
    client that is gone for good: nothing it was sent can be delivered.
    """
    transport.getHandle().setsockopt(
        socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
    )
    transport.abortConnection()


class ObservedProxy:
    """
    A mixin of L{twisted.trial.unittest.TestCase}s: L{start} runs a proxy
    with listener C{web} (plain) and, with C{tls}, C{websecure} (TLS, h2
    offered), both routed to C{self.backend_port}; L{logged} and L{gauge}
    read what it observed.
    """

    def start(self, server: str = "", tls: bool = False, backend_port=None) -> None:
        directory = Path(temporary_directory(self))
        self.log_path = directory / "access.log"
        text = (
            "[server]\n%s\n"
            '[log]\naccess = "%s"\nformat = "json"\n'
            '[listeners.web]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
            '[upstreams.app]\nservers = [{ url = "http://127.0.0.1:%d" }]\n'
            '[[routes]]\nupstream = "app"\n'
            % (server, self.log_path, backend_port or self.backend_port)
        )
        if tls:
            cert, key = CertificateMaker(directory).write("localhost", ["localhost"])
            text += (
                '[listeners.websecure]\nendpoint = "tcp:0:interface=127.0.0.1"\n'
                'tls = "main"\nhttp2 = true\n'
                '[tls.main]\ndefault = "localhost"\n'
                'certificates = [{ cert = "%s", key = "%s" }]\n' % (cert, key)
            )
        path = directory / "proxy.toml"
        path.write_text(text)
        self.service = ProxyService(load_config(str(path)), reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.port = self.service.ports[0].getHost().port
        if tls:
            self.tls_port = self.service.ports[1].getHost().port

    @inlineCallbacks
    def start_held_backend(self):
        """
        Listen with a L{Held} backend, as C{self.held} on C{self.backend_port};
        its site is C{self.backend_site}.
        """
        self.held = Held()
        self.backend_site = CountingSite(self.held)
        self.backend_port = yield listen(self.backend_site, self)

    def logged(self) -> List[dict]:
        """
        Every access log line so far, as JSON objects.
        """
        self.service.access_log.flush()
        if not self.log_path.exists():
            return []
        return [json.loads(line) for line in self.log_path.read_text().splitlines()]

    def gauge(self, family: str, listener: str = "web"):
        """
        A metric's value now, for one listener (or upstream/backend key).
        """
        return self.service.metrics.snapshot()[family].get(listener, 0)

    def backend_gauges(self) -> dict:
        """
        The backend gauges that count work in progress, summed over the
        backends: in flight, active connections, queued.
        """
        snapshot = self.service.metrics.snapshot()
        return {
            family: sum(snapshot[family].values())
            for family in ("backend_in_flight", "backend_connections_active", "queue_length")
        }

    def channels(self, listener: int = 0):
        """
        The open HTTP/1.x channels of a listener's current site.
        """
        return self.service.ports[listener].factory.current.channels
