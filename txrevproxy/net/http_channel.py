"""
Twisted's HTTP/1.1 server connection, with the private parts the proxy's
channel (L{txrevproxy.server.channel.ProxyChannel}) needs behind public
names.

Twisted's parser calls private hooks (a malformed request, a protocol
switch) and keeps the bytes it has not parsed in private attributes; the
proxy reads strictly, streams bodies with its own decoder and splices
connections into tunnels, so it needs both.  L{HTTPChannelBase} turns the
hooks into public methods a subclass overrides, and offers the rest as
methods; L{take_over_for_tunnel} hands a channel's connection to another
protocol.
"""

from __future__ import annotations

from typing import Callable

from twisted.web import http

TWISTED_PRIVATE = (
    "twisted.protocols.basic.LineReceiver._buffer",
    "twisted.web.http.HTTPChannel._dataBuffer",
    "twisted.web.http.HTTPChannel._transferDecoder",
    "twisted.web.http.HTTPChannel._finishRequestBody",
    "twisted.web.http.HTTPChannel._send100Continue",
    "twisted.web.http.HTTPChannel._respondToBadRequestAndDisconnect",
    "twisted.web.http.HTTPChannel._protocolUpgradeForWebsockets",
)


class HTTPChannelBase(http.HTTPChannel):
    """
    An L{http.HTTPChannel} whose private hooks call public methods:
    L{badRequest} and L{switchProtocol}, which do what Twisted does unless
    a subclass overrides them.
    """

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.badRequest()

    def badRequest(self) -> None:
        """
        Twisted's parser found a malformed head or body (a bad header name,
        a second Content-Length, a bad chunk): answer 400 and close.
        """
        http.HTTPChannel._respondToBadRequestAndDisconnect(self)

    def _protocolUpgradeForWebsockets(self, protocol) -> None:
        self.switchProtocol(protocol)

    def switchProtocol(self, protocol) -> None:
        """
        The connection stops carrying HTTP: C{protocol} receives what the
        client sends from now on, and learns when the connection is lost.
        """
        http.HTTPChannel._protocolUpgradeForWebsockets(self, protocol)

    def partialLine(self) -> bytes:
        """
        What was read of a head line whose end has not come yet.
        """
        return self._buffer

    def sendContinue(self) -> None:
        """
        Write an interim C{100 Continue} response (RFC 9110 section 15.2.1).
        """
        self._send100Continue()

    def decodeBodyWith(
        self, factory: Callable[[Callable[[bytes], None], Callable[[bytes], None]], object]
    ) -> None:
        """
        Read the current request's body with a decoder of the proxy's own,
        in place of the one Twisted chose from the head.

        @param factory: called with what receives each body chunk (the
            request's C{handleContentChunk}) and what is called with the
            bytes after the body once it ended; returns an object with a
            C{dataReceived} method, fed the body's bytes as they come.
        """
        self._transferDecoder = factory(
            self.requests[-1].handleContentChunk, self._finishRequestBody
        )


def take_over_for_tunnel(channel: http.HTTPChannel, protocol) -> bytes:
    """
    Hand the connection of C{channel}, whose current response switched
    protocols, to C{protocol} (the client side of a tunnel), which is
    connected to its transport.

    @return: the bytes the client sent after the request, which the channel
        held unparsed while it answered.
    """
    pending = b"".join(channel._dataBuffer)
    channel._dataBuffer = []
    channel._protocolUpgradeForWebsockets(protocol)
    return pending
