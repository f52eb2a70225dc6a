"""
Filters from the configuration file, over real loopback sockets: rate
limiting, IP filtering on a listener, security headers, basic
authentication through the thread pool, and forward authentication
against a real loopback auth service, with a request body held while it
decides.
"""

from __future__ import annotations

import bcrypt
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from ..support.configs import parse
from ..support.loopback import (
    CountingSite,
    Echo,
    echoed_headers,
    listen,
    raw_exchange,
    start_proxy,
)
from ..support.processes import free_port, temporary_directory


def config(backend_port: int, listener: str = "", route: str = "", extra: str = ""):
    return parse(
        """
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"
%s

[upstreams.app]
servers = [{ url = "http://127.0.0.1:%d" }]

[[routes]]
upstream = "app"
%s

%s
"""
        % (listener, backend_port, route, extra)
    )


def request(method=b"GET", path=b"/", headers=(), body=b""):
    lines = [
        b"%s %s HTTP/1.1" % (method, path),
        b"Host: localhost",
        b"Connection: close",
    ]
    lines += [b"%s: %s" % field for field in headers]
    if body:
        lines.append(b"Content-Length: %d" % (len(body),))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def parse_response(raw: bytes):
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ")[1])
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        fields[name.lower()] = value
    return status, fields, body


class FilterIntegrationTests(TestCase):
    @inlineCallbacks
    def setUp(self):
        self.backend = CountingSite(Echo())
        self.backend_port = yield listen(self.backend, self)

    @inlineCallbacks
    def fetch(self, port, *args, **kwargs):
        raw = yield raw_exchange(port, request(*args, **kwargs))
        return parse_response(raw)

    @inlineCallbacks
    def test_rate_limit(self):
        port = start_proxy(
            config(
                self.backend_port,
                route='filters = ["limit"]',
                extra='[filters.limit]\ntype = "rate_limit"\nrate = "1/m"\nburst = 2',
            ),
            self,
        )
        statuses = []
        for _ in range(3):
            status, fields, _ = yield self.fetch(port)
            statuses.append((status, fields.get(b"ratelimit-remaining")))
        self.assertEqual(statuses, [(200, b"1"), (200, b"0"), (429, b"0")])
        self.assertEqual(fields[b"retry-after"], b"60")

    @inlineCallbacks
    def test_ip_filter_on_a_listener_runs_before_routing(self):
        port = start_proxy(
            config(
                self.backend_port,
                listener='filters = ["office"]',
                extra='[filters.office]\ntype = "ip_filter"\nallow = ["10.0.0.0/8"]',
            ),
            self,
        )
        status, fields, body = yield self.fetch(port, path=b"/anything")
        self.assertEqual(status, 403)
        self.assertIn(fields[b"x-request-id"], body)
        self.assertEqual(self.backend.connections, 0)

    @inlineCallbacks
    def test_security_headers(self):
        port = start_proxy(
            config(
                self.backend_port,
                route='filters = ["secure"]',
                extra='[filters.secure]\ntype = "security_headers"\ncontent_security_policy = "default-src \'self\'"',
            ),
            self,
        )
        status, fields, _ = yield self.fetch(port)
        self.assertEqual(status, 200)
        self.assertNotIn(b"server", fields)
        self.assertEqual(fields[b"x-content-type-options"], b"nosniff")
        self.assertEqual(fields[b"content-security-policy"], b"default-src 'self'")
        # Plain HTTP: no HSTS.
        self.assertNotIn(b"strict-transport-security", fields)

    @inlineCallbacks
    def test_api_key_and_waf_from_the_configuration(self):
        port = start_proxy(
            config(
                self.backend_port,
                route='filters = ["waf", "key"]',
                extra='[filters.key]\ntype = "api_key"\nkeys = ["k-0123456789"]\n\n'
                '[filters.waf]\ntype = "waf"\nblock_scanners = true\n'
                'rules = [{ name = "traversal", field = "path", contains = "../" }]',
            ),
            self,
        )
        status, _, _ = yield self.fetch(port)
        self.assertEqual(status, 401)
        status, _, body = yield self.fetch(port, headers=[(b"X-API-Key", b"k-0123456789")])
        self.assertEqual(status, 200)
        self.assertNotIn(b"x-api-key", echoed_headers(body))
        status, _, _ = yield self.fetch(
            port, path=b"/a/%2e%2e/b", headers=[(b"X-API-Key", b"k-0123456789")]
        )
        self.assertEqual(status, 403)
        status, _, _ = yield self.fetch(
            port, headers=[(b"X-API-Key", b"k-0123456789"), (b"User-Agent", b"Nikto/2.5")]
        )
        self.assertEqual(status, 403)
        self.assertEqual(self.backend.connections, 1)

    @inlineCallbacks
    def test_basic_auth(self):
        directory = temporary_directory(self)
        hashed = bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4))
        (directory / "users").write_bytes(b"alice:" + hashed + b"\n")
        port = start_proxy(
            config(
                self.backend_port,
                route='filters = ["login"]',
                extra='[filters.login]\ntype = "basic_auth"\nusers_file = "%s"\nuser_header = "X-User"'
                % (directory / "users",),
            ),
            self,
        )
        status, fields, _ = yield self.fetch(port)
        self.assertEqual(status, 401)
        self.assertIn(b"Basic", fields[b"www-authenticate"])
        status, _, body = yield self.fetch(
            port, headers=[(b"Authorization", b"Basic YWxpY2U6cHc=")]
        )
        self.assertEqual(status, 200)
        self.assertEqual(echoed_headers(body)[b"x-user"], [b"alice"])


class AuthService(resource.Resource):
    """
    Lets through C{Bearer good} (as alice), sends everyone else to a login
    page; answers on the next turn of the reactor, so the proxy has to
    hold the request meanwhile.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.seen = []

    def render(self, request):
        self.seen.append(request)
        reactor.callLater(0, self._answer, request)
        return server.NOT_DONE_YET

    def _answer(self, request):
        if request.getHeader(b"authorization") == b"Bearer good":
            request.setHeader(b"X-User", b"alice")
            request.write(b"")
        else:
            request.setResponseCode(302)
            request.setHeader(b"Location", b"https://login.example.test/")
            request.write(b"please log in")
        request.finish()


class ForwardAuthTests(TestCase):
    @inlineCallbacks
    def setUp(self):
        self.backend = CountingSite(Echo())
        self.backend_port = yield listen(self.backend, self)
        self.auth = AuthService()
        self.auth_port = yield listen(server.Site(self.auth), self)

    def start(self, auth_port):
        return start_proxy(
            config(
                self.backend_port,
                route='filters = ["sso"]',
                extra='[filters.sso]\ntype = "forward_auth"\nurl = "http://127.0.0.1:%d/check"\n'
                'copy_headers = ["X-User"]' % (auth_port,),
            ),
            self,
        )

    @inlineCallbacks
    def test_allowed_request_goes_through_with_copied_headers_and_body(self):
        port = self.start(self.auth_port)
        body = b"b" * 200000
        raw = yield raw_exchange(
            port,
            request(
                b"POST",
                b"/upload?x=1",
                headers=[(b"Authorization", b"Bearer good"), (b"X-User", b"forged")],
                body=body,
            ),
        )
        status, _, echoed = parse_response(raw)
        self.assertEqual(status, 200)
        self.assertTrue(echoed.startswith(b"POST /upload?x=1 200000\n"))
        self.assertEqual(echoed_headers(echoed)[b"x-user"], [b"alice"])
        seen = self.auth.seen[0]
        self.assertEqual(seen.method, b"GET")
        self.assertEqual(seen.getHeader(b"x-forwarded-method"), b"POST")
        self.assertEqual(seen.getHeader(b"x-forwarded-uri"), b"/upload?x=1")
        self.assertEqual(seen.getHeader(b"x-forwarded-host"), b"localhost")

    @inlineCallbacks
    def test_the_client_cannot_forge_what_the_service_or_the_backend_trust(self):
        """
        The fields the proxy writes for the service, and those it copies
        from the service's answer for the backend, reach them only with
        the proxy's values, however the client spells its own.
        """
        port = self.start(self.auth_port)
        forged = [
            (b"X-Original-URI", b"/public"),
            (b"X_Original_URI", b"/public"),
            (b"X_Forwarded_Uri", b"/public"),
            (b"X_Forwarded_Method", b"GET"),
            (b"X_User", b"admin"),
            (b"Connection", b"X-User"),
        ]
        raw = yield raw_exchange(
            port,
            request(
                b"DELETE",
                b"/admin",
                headers=[(b"Authorization", b"Bearer good")] + forged,
            ),
        )
        status, _, echoed = parse_response(raw)
        self.assertEqual(status, 200)
        seen = self.auth.seen[0].requestHeaders
        self.assertEqual(
            [name for name, _ in seen.getAllRawHeaders() if b"_" in name], [b"X_user"]
        )
        self.assertEqual(seen.getRawHeaders(b"x-original-uri"), [b"/admin"])
        self.assertEqual(seen.getRawHeaders(b"x-forwarded-method"), [b"DELETE"])
        backend = echoed_headers(echoed)
        self.assertEqual(backend[b"x-user"], [b"alice"])
        self.assertNotIn(b"x_user", backend)

    @inlineCallbacks
    def test_body_complete_before_the_answer_goes_through(self):
        """
        A small body is all in before the service answers (on the next
        turn of the reactor): the backend still gets it, framed by its
        length.
        """
        port = self.start(self.auth_port)
        raw = yield raw_exchange(
            port,
            request(
                b"POST",
                b"/form",
                headers=[(b"Authorization", b"Bearer good")],
                body=b"name=alice",
            ),
        )
        status, _, echoed = parse_response(raw)
        self.assertEqual(status, 200)
        self.assertTrue(echoed.startswith(b"POST /form 10\n"), echoed)

    @inlineCallbacks
    def test_refused_request_gets_the_auth_answer(self):
        port = self.start(self.auth_port)
        raw = yield raw_exchange(
            port, request(headers=[(b"Authorization", b"Bearer bad")])
        )
        status, fields, body = parse_response(raw)
        self.assertEqual(status, 302)
        self.assertEqual(fields[b"location"], b"https://login.example.test/")
        self.assertEqual(body, b"please log in")
        self.assertEqual(self.backend.connections, 0)

    @inlineCallbacks
    def test_unreachable_auth_service_is_a_502(self):
        port = self.start(free_port())
        raw = yield raw_exchange(
            port, request(headers=[(b"Authorization", b"Bearer good")])
        )
        self.assertEqual(parse_response(raw)[0], 502)
        self.assertEqual(self.backend.connections, 0)


class ProxyProtocolTests(TestCase):
    @inlineCallbacks
    def test_the_proxy_header_names_the_client(self):
        backend_port = yield listen(CountingSite(Echo()), self)
        port = start_proxy(
            config(
                backend_port,
                listener='proxy_protocol = true\nfilters = ["lb-only"]',
                extra='[filters.lb-only]\ntype = "ip_filter"\nallow = ["203.0.113.0/24"]',
            ),
            self,
        )
        raw = yield raw_exchange(
            port, b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 80\r\n" + request()
        )
        status, _, body = parse_response(raw)
        self.assertEqual(status, 200)
        self.assertEqual(echoed_headers(body)[b"x-forwarded-for"], [b"203.0.113.9"])
        raw = yield raw_exchange(
            port, b"PROXY TCP4 198.51.100.1 127.0.0.1 5555 80\r\n" + request()
        )
        self.assertEqual(parse_response(raw)[0], 403)
