"""
HTTP/2 in memory for the unit tests: an h2c connection of the proxy's
site to a resource, and a client on the C{h2} package, with no network.
"""

from __future__ import annotations

import h2.config
import h2.connection
import h2.settings
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.web.resource import Resource

from txrevproxy.config.model import ServerSettings
from txrevproxy.server.http2 import PriorKnowledgeSite


def connected(resource: Resource, window: int = 65535):
    """
    An h2c connection to C{resource} with its client's h2 connection
    (whose streams get C{window} bytes of initial window), the transport
    and the clock.
    """
    clock = MemoryReactorClock()
    site = PriorKnowledgeSite(resource, reactor=clock, settings=ServerSettings())
    protocol = site.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 4321))
    protocol.makeConnection(transport)
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    client.initiate_connection()
    client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
    protocol.dataReceived(client.data_to_send())
    return protocol, client, transport, clock
