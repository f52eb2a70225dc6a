"""
A client connection to a site over an in-memory transport.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.interfaces import IPushProducer
from twisted.internet.testing import MemoryReactorClock, StringTransport
from zope.interface import directlyProvides

from txrevproxy.config.model import ServerSettings
from txrevproxy.server.site import ProxySite

from .resources import Recorder


def connect(settings: ServerSettings, resource=None, producer: bool = False):
    """
    A site with C{settings} over a L{MemoryReactorClock}, and one
    connection to it from 192.0.2.1: C{(clock, site, channel, transport)}.

    @param producer: whether the transport says it is an L{IPushProducer}
        as a TCP transport does (Twisted's channel pauses and resumes only
        such a transport; its C{producerState} tells).
    """
    clock = MemoryReactorClock()
    site = ProxySite(resource or Recorder(), reactor=clock, settings=settings)
    site.startFactory()
    channel = site.buildProtocol(None)
    transport = StringTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 4321))
    if producer:
        directlyProvides(transport, IPushProducer)
    channel.makeConnection(transport)
    return clock, site, channel, transport
