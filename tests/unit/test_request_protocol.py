"""
Tests for what L{txrevproxy.server.request.ProxyRequest} offers the modules
a request passes through: the interfaces it and its body sinks provide, and
the methods those modules record their decisions with.
"""

from __future__ import annotations

from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import TestCase
from zope.interface.verify import verifyObject

from txrevproxy.config.model import ServerSettings
from txrevproxy.filters.chain import BodyHold
from txrevproxy.interfaces import IProxiedRequest, IRequestHandler
from txrevproxy.server.http2 import HTTP2ProxyRequest
from txrevproxy.server.request import DISCARD, ProxyRequest

from ..support.channels import connect


class _Stream:
    """
    What a request reads of its HTTP/2 stream when it is made.
    """

    def __init__(self, site) -> None:
        self.site = site
        self.transport = StringTransport()

    def getPeer(self):
        return IPv4Address("TCP", "192.0.2.1", 4321)

    def getHost(self):
        return IPv4Address("TCP", "127.0.0.1", 443)


def request_on_a_channel():
    _, site, channel, transport = connect(ServerSettings())
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    return site.resource.requests[0], transport


class InterfaceTests(TestCase):
    def test_proxy_request_provides_iproxiedrequest(self):
        request, _ = request_on_a_channel()
        self.assertTrue(verifyObject(IProxiedRequest, request))

    def test_http2_request_provides_iproxiedrequest(self):
        _, site, channel, _ = connect(ServerSettings())
        request = HTTP2ProxyRequest(_Stream(site), channel)
        self.assertTrue(verifyObject(IProxiedRequest, request))

    def test_discard_provides_irequesthandler(self):
        self.assertTrue(verifyObject(IRequestHandler, DISCARD))

    def test_body_hold_provides_irequesthandler(self):
        request, _ = request_on_a_channel()
        self.assertTrue(verifyObject(IRequestHandler, BodyHold(request)))


class RecordingTests(TestCase):
    def test_routed_records_router_and_route(self):
        request, _ = request_on_a_channel()
        router = object()
        request.routed(router, 3)
        self.assertIs(request.router, router)
        self.assertEqual(request.route_index, 3)

    def test_passed_filters_add_up_in_order(self):
        request, _ = request_on_a_channel()
        request.passedFilters(["a"])
        request.passedFilters(())
        request.passedFilters(["b", "c"])
        self.assertEqual(request.response_filters, ("a", "b", "c"))

    def test_error_pages_are_the_routes(self):
        request, _ = request_on_a_channel()
        pages = {502: (b"<p>down", b"text/html")}
        request.useErrorPages(pages)
        self.assertIs(request.error_pages, pages)

    def test_released_handler_falls_back_to_discard(self):
        request, _ = request_on_a_channel()
        request.handler = handler = BodyHold(request)
        self.assertIs(request.handler, handler)
        request.releaseHandler()
        self.assertIs(request.handler, DISCARD)
        self.assertNotIn("handler", vars(request))
        request.releaseHandler()
        self.assertIs(request.handler, DISCARD)

    def test_disconnected_says_whether_the_client_went(self):
        request, transport = request_on_a_channel()
        self.assertFalse(request.disconnected)
        request.connectionLost(None)
        self.assertTrue(request.disconnected)


def test_proxy_request_class_declares_iproxiedrequest():
    assert IProxiedRequest.implementedBy(ProxyRequest)
    assert IProxiedRequest.implementedBy(HTTP2ProxyRequest)
