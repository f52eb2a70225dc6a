"""
The answers a route gives without a backend: a redirect (C{redirect}) or
a fixed response (C{respond}), such as a maintenance page or a health
endpoint, and the redirect of a listener with C{redirect_to_https}.  All
are leaves of the resource tree; their bytes are worked out when the
configuration is loaded, and a redirect's Location expanded per request.
Each is written by L{txrevproxy.server.answers.send_answer}, the one writer
of the proxy's own responses.
"""

from __future__ import annotations

from typing import Callable, List, Optional

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ..config.model import Redirect, Respond
from ..http.target import request_host
from ..server.answers import Header, send_answer
from .rewrite import HeaderRewrite


class _Answer(Resource):
    """
    A leaf that answers every request itself, with the route's response
    header rules applied.
    """

    isLeaf = True

    def __init__(self, code: int, response_rules: Optional[HeaderRewrite]) -> None:
        super().__init__()
        self.code = code
        self.response_rules = response_rules

    def answer(self, request, body: bytes, headers: List[Header]):
        if self.response_rules is not None:
            headers = self.response_rules.apply(headers, request)
        send_answer(request, self.code, body, headers)
        return NOT_DONE_YET


class RedirectResource(_Answer):
    """
    A route's C{redirect}: the status and a Location expanded from the
    route's template, with an empty body.
    """

    def __init__(
        self, redirect: Redirect, response_rules: Optional[HeaderRewrite] = None
    ) -> None:
        super().__init__(redirect.status, response_rules)
        self.to = redirect.to

    def render(self, request):
        location = self.to.expand(request)
        if location[:2] in (b"//", b"/\\"):
            # A path variable at the start of a relative Location must not
            # make it protocol-relative (//evil.test/), an open redirect.
            location = b"/" + location.lstrip(b"/\\")
        return self.answer(request, b"", [(b"Location", location)])


class RespondResource(_Answer):
    """
    A route's C{respond}: a fixed status, body and Content-Type.
    """

    def __init__(
        self, respond: Respond, response_rules: Optional[HeaderRewrite] = None
    ) -> None:
        super().__init__(respond.status, response_rules)
        self.body = respond.body.encode("utf-8")
        self.content_type = respond.content_type.encode("utf-8")

    def render(self, request):
        headers = [(b"Content-Type", self.content_type)] if self.body else []
        return self.answer(request, self.body, headers)


class HttpsRedirect(Resource):
    """
    The root of a listener with C{redirect_to_https}: every request gets a
    308 (method and body kept, RFC 9110 section 15.4.9) to the same host
    and target on the HTTPS listener's port.

    @param https_port: returns the port the HTTPS listener listens on,
        known once it listens.
    """

    isLeaf = True

    def __init__(self, https_port: Callable[[], int]) -> None:
        super().__init__()
        self._https_port = https_port

    def render(self, request):
        port = self._https_port()
        authority = request_host(request)
        if port != 443:
            authority += b":%d" % (port,)
        location = b"https://" + authority + request.uri
        send_answer(request, 308, b"", [(b"Location", location)])
        return NOT_DONE_YET
