"""
Twisted's HTTP/1.1 server connection, with the private parts the proxy's
channels need behind public names.

Twisted's parser calls a private hook on a malformed request, which
L{HTTPChannelBase} turns into a public method a subclass overrides (the
admin listener's channel, which reads with Twisted's parser).  The proxy's own channel (L{txrevproxy.server.channel.ProxyChannel})
reads requests itself and keeps the rest of Twisted's channel: the
responses' writes, and the producer and consumer between the transport and
the response, which decide from Twisted's private flags when the client is
read; L{HTTPChannelBase} sets and reads those through methods.
"""

from __future__ import annotations

from twisted.web import http

TWISTED_PRIVATE = (
    "twisted.web.http.HTTPChannel._send100Continue",
    "twisted.web.http.HTTPChannel._respondToBadRequestAndDisconnect",
    "twisted.web.http.HTTPChannel._handlingRequest",
    "twisted.web.http.HTTPChannel._waitingForTransport",
    "twisted.web.http.HTTPChannel._networkProducer",
)


class HTTPChannelBase(http.HTTPChannel):
    """
    An L{http.HTTPChannel} whose private hook calls a public method,
    L{badRequest}, which does what Twisted does unless a subclass
    overrides it; and that offers Twisted's private state the proxy's
    channel needs through methods.
    """

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.badRequest()

    def badRequest(self) -> None:
        """
        Twisted's parser found a malformed head or body (a bad header name,
        a second Content-Length, a bad chunk): answer 400 and close.
        """
        http.HTTPChannel._respondToBadRequestAndDisconnect(self)

    def startAnswering(self) -> None:
        """
        A request is read whole and its response is being made: until
        L{stopAnswering}, the transport's pauses (a full send buffer) leave
        the client's reading alone, which they otherwise pause too.
        """
        self._handlingRequest = True

    def stopAnswering(self) -> None:
        """
        The response ended (see L{startAnswering}).
        """
        self._handlingRequest = False

    def pauseReadingClient(self) -> bool:
        """
        Stop reading the client, unless the transport is paused already
        until its send buffer drains.

        @return: whether the client was paused.
        """
        if self._waitingForTransport:
            return False
        self._networkProducer.pauseProducing()
        return True

    def resumeReadingClient(self) -> None:
        """
        Read the client again, unless the transport is paused until its
        send buffer drains (it resumes then).
        """
        if not self._waitingForTransport:
            self._networkProducer.resumeProducing()

    def sendContinue(self) -> None:
        """
        Write an interim C{100 Continue} response (RFC 9110 section 15.2.1).
        """
        self._send100Continue()
