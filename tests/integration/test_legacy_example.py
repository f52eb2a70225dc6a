"""
C{examples/legacy.toml} (the recipe of C{docs/legacy.rst}) in front of a
real HTTP/1.0 backend written here on a raw socket: it answers
C{HTTP/1.0} without C{Content-Length} and closes, redirects to its own
address and to the Host it was sent, and scopes its cookies to its
internal name and context path.  The configuration is the example file
itself, with only its ports and the backend's address changed.
"""

from __future__ import annotations

import base64
import sys
from typing import List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config import parse_config

from ..support.loopback import listen, raw_exchange
from ..support.origins import parse_response
from ..support.processes import SOURCE_ROOT
from ..support.tls_clients import ProbingClientTLS, connect_tls

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

EXAMPLE = SOURCE_ROOT / "examples" / "legacy.toml"

#: The public name of the example, covered by its *.example.test certificate.
PUBLIC = b"legacy.example.test"

#: The example's user and password (examples/legacy/users.htpasswd).
ALICE = b"Basic " + base64.b64encode(b"alice:legacy-demo")

#: The legacy app's report: 200 KB, sent without Content-Length.
REPORT = b"".join(b"line %06d\n" % (n,) for n in range(20000))


class HTTP10App(Protocol):
    """
    One connection of the legacy app: reads one request head (and a body
    framed by Content-Length), records it, writes what C{factory.answer}
    makes of it, and closes, as an HTTP/1.0 server does.  With
    C{factory.keep_open}, it does not close after answering.
    """

    def connectionMade(self) -> None:
        self.factory.connections += 1
        self.lost: Deferred = Deferred()
        self.factory.open.append(self)
        self._buffer = b""

    def connectionLost(self, reason=None) -> None:
        self.lost.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        head, found, body = self._buffer.partition(b"\r\n\r\n")
        if not found:
            return
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            fields.setdefault(name.strip().lower(), []).append(value.strip())
        length = int(fields.get(b"content-length", [b"0"])[0])
        if len(body) < length:
            return
        body = body[:length]
        self._buffer = b""
        self.factory.requests.append((head.split(b"\r\n")[0], fields))
        self.transport.write(self.factory.answer(head.split(b" ")[1], fields, body))
        if not self.factory.keep_open:
            self.transport.loseConnection()


class LegacyApp(Factory):
    """
    The legacy app, answering by path: a large page without
    Content-Length, a redirect to its own address with a cookie for its
    internal name, a redirect built from the Host it was sent (with a
    Content-Length and HTTP/1.0's C{Connection: keep-alive}), a form that
    counts what it was sent, and a 500 with a stack trace for anything
    else.

    @ivar port: the port it listens on, which its own redirects name.
    @ivar keep_open: whether to leave the connection open after answering.
    @ivar connections: how many connections the proxy opened to it.
    @ivar open: the L{HTTP10App} of each of them, whose C{lost} fires when
        it closes.
    @ivar requests: the request line and fields of each request it got.
    """

    protocol = HTTP10App

    def __init__(self) -> None:
        self.port = 0
        self.keep_open = False
        self.connections = 0
        self.open: List[HTTP10App] = []
        self.requests: List[tuple] = []

    def answer(self, path: bytes, fields: dict, body: bytes) -> bytes:
        banners = b"Server: Apache/1.3.42 (Unix)\r\nX-Powered-By: PHP/4.4.9\r\n"
        if path == b"/app/report":
            return (
                b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n" + banners + b"\r\n"
                + REPORT
            )
        if path == b"/app/logout":
            return (
                b"HTTP/1.0 302 Found\r\n"
                b"Location: http://127.0.0.1:%d/app/login\r\n"
                b"Set-Cookie: sid=deleted; Domain=legacy.internal; Path=/app/; HttpOnly\r\n"
                b"\r\n" % (self.port,)
            )
        if path == b"/app/form":
            return b"HTTP/1.0 200 OK\r\n\r\nsaved %d bytes\n" % (len(body),)
        if path == b"/app/home":
            return (
                b"HTTP/1.0 302 Found\r\nLocation: http://%s/app/account\r\n"
                b"Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"
                % (fields[b"host"][0],)
            )
        return (
            b"HTTP/1.0 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n"
            b"Traceback (most recent call last): secret.py line 42\n"
        )


class LegacyExampleTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def setUp(self):
        self.app = LegacyApp()
        self.app.port = yield listen(self.app, self)
        self.start_proxy(self.app.port)

    def start_proxy(self, backend: int) -> None:
        with EXAMPLE.open("rb") as file:
            data = tomllib.load(file)
        for listener in data["listeners"].values():
            listener["endpoint"] = "tcp:0:interface=127.0.0.1"
        data["upstreams"]["legacy"]["servers"] = [{"url": "http://127.0.0.1:%d" % (backend,)}]
        # The admin API is not what is tested, and its port is fixed.
        del data["admin"]
        service = ProxyService(parse_config(data, source=str(EXAMPLE)), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.web = service.runtime.ports["web"]
        self.websecure = service.runtime.ports["websecure"]

    @inlineCallbacks
    def https(
        self,
        target: bytes,
        authorization: bytes = ALICE,
        extra: bytes = b"",
        method: bytes = b"GET",
    ):
        """
        One request over HTTPS to the public name, the connection closed
        after it: the status, the headers and the whole body.  C{extra} is
        sent after the proxy's fields: more fields, or with a blank line, a
        body.
        """
        client = yield connect_tls(
            self.websecure, ProbingClientTLS(server_name=PUBLIC.decode("ascii"))
        )
        fields = b"Host: %s:%d\r\nConnection: close\r\n" % (PUBLIC, self.websecure)
        if authorization:
            fields += b"Authorization: " + authorization + b"\r\n"
        request = b"%s %s HTTP/1.1\r\n%s%s" % (method, target, fields, extra)
        if b"\r\n\r\n" not in extra:
            request += b"\r\n"
        client.transport.write(request)
        received = yield client.closed
        return parse_response(received)

    @inlineCallbacks
    def test_close_delimited_http10_body_reaches_the_client_whole(self):
        status, headers, body = yield self.https(b"/report")

        self.assertEqual(status, 200)
        self.assertEqual(body, REPORT)
        self.assertNotIn(b"server", headers)
        self.assertNotIn(b"x-powered-by", headers)
        self.assertEqual(headers[b"strict-transport-security"], [b"max-age=31536000"])

    @inlineCallbacks
    def test_backend_sees_public_host_and_prefix_but_no_authorization(self):
        yield self.https(b"/report", extra=b"X-Remote-User: mallory\r\n")

        ((request_line, fields),) = self.app.requests
        self.assertEqual(request_line, b"GET /app/report HTTP/1.1")
        self.assertEqual(fields[b"host"], [b"legacy.example.test:%d" % (self.websecure,)])
        self.assertNotIn(b"authorization", fields)
        self.assertEqual(fields[b"x-remote-user"], [b"alice"])
        self.assertEqual(fields[b"x-forwarded-for"], [b"127.0.0.1"])
        self.assertEqual(fields[b"x-forwarded-proto"], [b"https"])
        self.assertEqual(
            fields[b"forwarded"],
            [b'for=127.0.0.1;proto=https;host="legacy.example.test:%d"' % (self.websecure,)],
        )

    @inlineCallbacks
    def test_redirect_to_the_apps_own_address_and_its_cookie_are_rewritten(self):
        status, headers, body = yield self.https(b"/logout")

        self.assertEqual(status, 302)
        self.assertEqual(headers[b"location"], [b"/login"])
        self.assertEqual(
            headers[b"set-cookie"],
            [b"sid=deleted; Domain=legacy.example.test; Path=/; HttpOnly"],
        )

    @inlineCallbacks
    def test_redirect_built_from_host_loses_its_wrong_scheme_and_prefix(self):
        status, headers, body = yield self.https(b"/home")

        self.assertEqual(status, 302)
        self.assertEqual(headers[b"location"], [b"/account"])

    @inlineCallbacks
    def test_http10_keep_alive_connection_is_not_reused(self):
        self.app.keep_open = True
        first = yield self.https(b"/home")
        second = yield self.https(b"/home")

        self.assertEqual((first[0], second[0]), (302, 302))
        self.assertEqual(self.app.connections, 2)
        # The proxy closes each one itself rather than keep it idle.
        yield DeferredList([each.lost for each in self.app.open]).addTimeout(30, reactor)

    @inlineCallbacks
    def test_without_valid_credentials_the_app_is_not_asked(self):
        missing = yield self.https(b"/report", authorization=b"")
        wrong = yield self.https(
            b"/report", authorization=b"Basic " + base64.b64encode(b"alice:guess")
        )

        for status, headers, body in (missing, wrong):
            self.assertEqual(status, 401)
            self.assertEqual(
                headers[b"www-authenticate"], [b'Basic realm="Legacy app", charset="UTF-8"']
            )
        self.assertEqual(self.app.requests, [])

    @inlineCallbacks
    def test_the_apps_stack_trace_is_replaced_by_the_error_page(self):
        status, headers, body = yield self.https(b"/crash")

        self.assertEqual(status, 500)
        self.assertEqual(body, (EXAMPLE.parent / "legacy" / "500.html").read_bytes())

    @inlineCallbacks
    def test_chunked_upload_is_refused_before_the_app(self):
        status, headers, body = yield self.https(
            b"/form",
            method=b"POST",
            extra=b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
        )

        self.assertEqual(status, 411)
        self.assertEqual(self.app.requests, [])

    @inlineCallbacks
    def test_upload_with_content_length_reaches_the_app(self):
        status, headers, body = yield self.https(
            b"/form", method=b"POST", extra=b"Content-Length: 5\r\n\r\nhello"
        )

        self.assertEqual((status, body), (200, b"saved 5 bytes\n"))

    @inlineCallbacks
    def test_plain_http_is_redirected_to_https(self):
        received = yield raw_exchange(
            self.web,
            b"GET /report?x=1 HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (PUBLIC,),
        )
        status, headers, body = parse_response(received)

        self.assertEqual(status, 308)
        self.assertEqual(
            headers[b"location"],
            [b"https://legacy.example.test:%d/report?x=1" % (self.websecure,)],
        )
        self.assertEqual(self.app.requests, [])
