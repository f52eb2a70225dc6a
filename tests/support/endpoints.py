"""
Endpoints for tests that need connections without sockets.
"""

from __future__ import annotations

from twisted.internet.defer import succeed
from twisted.internet.testing import StringTransport


class FakeEndpoint:
    """
    Connects each new protocol to a L{StringTransport} at once.
    """

    def __init__(self):
        self.connections = []

    def connect(self, factory):
        protocol = factory.buildProtocol(None)
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.connections.append(protocol)
        return succeed(protocol)
