"""
Routing end to end over loopback sockets: rewritten paths and header rules
reach the backend and the client, redirects and fixed responses are
answered without a backend, a route's error page replaces the proxy's, and
a dot segment cannot take a request past a route.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config import load_config

from ..support.loopback import CountingSite, Echo, echoed_headers, listen, raw_exchange
from ..support.processes import free_port, temporary_directory
from ..support.responses import split_response

CONFIG = """\
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.app]
servers = [{ url = "http://127.0.0.1:%(backend)d" }]

[upstreams.down]
servers = [{ url = "http://127.0.0.1:%(refusing)d" }]

[[routes]]
upstream = "app"
response_headers = { remove = ["Server"], set = { "X-Frame-Options" = "DENY" }, add = { "X-Served-For" = "{client_ip} {method} {path}" } }

[[routes]]
path = "/api/"
upstream = "app"
strip_prefix = true
add_prefix = "/v2"
request_headers = { set = { "X-Scheme" = "{scheme}", Host = "internal.test" }, add = { "X-Id" = "{request_id}" }, remove = ["Cookie"] }

[[routes]]
path = "/legacy"
upstream = "app"
rewrite = { pattern = "^/legacy/(\\\\w+)\\\\.php$", replacement = "/new/$1" }

[[routes]]
path = "/old"
redirect = { to = "https://{host}/new{uri}", status = 308 }

[[routes]]
host = "old.test"
redirect = { to = "{uri}", status = 301 }

[[routes]]
path = "/admin"
respond = { status = 403, body = "no\\n" }

[[routes]]
path = "/down"
upstream = "down"
error_pages = { 502 = "502.html" }
"""


class RoutingEndToEndTests(TestCase):
    timeout = 15

    @inlineCallbacks
    def setUp(self):
        self.backend = CountingSite(Echo())
        backend_port = yield listen(self.backend, self)
        directory = temporary_directory(self)
        (directory / "502.html").write_bytes(b"<p>We are fixing it.</p>\n")
        path = directory / "proxy.toml"
        path.write_text(CONFIG % {"backend": backend_port, "refusing": free_port()})
        service = ProxyService(load_config(str(path)), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.port = service.ports[0].getHost().port

    def get(self, target: bytes, headers: bytes = b"", host: bytes = b"shop.test"):
        return raw_exchange(
            self.port,
            b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n%s\r\n"
            % (target, host, headers),
        ).addCallback(split_response)

    @inlineCallbacks
    def test_stripped_and_prefixed_path_and_request_header_rules(self):
        status, headers, body = yield self.get(
            b"/api/users/../items?q=1", b"Cookie: a=b\r\nX-Kept: 1\r\n"
        )
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertTrue(body.startswith(b"GET /v2/items?q=1 0\n"), body)
        sent = echoed_headers(body)
        self.assertEqual(sent[b"host"], [b"internal.test"])
        self.assertEqual(sent[b"x-scheme"], [b"http"])
        self.assertEqual(sent[b"x-id"], headers[b"x-request-id"])
        self.assertEqual(sent[b"x-kept"], [b"1"])
        self.assertNotIn(b"cookie", sent)
        self.assertEqual(sent[b"x-forwarded-host"], [b"shop.test"])

    @inlineCallbacks
    def test_regex_rewrite(self):
        status, headers, body = yield self.get(b"/legacy/cart.php?id=3")
        self.assertTrue(body.startswith(b"GET /new/cart?id=3 0\n"), body)
        status, headers, body = yield self.get(b"/legacy/a/b.php")
        self.assertTrue(body.startswith(b"GET /legacy/a/b.php 0\n"), body)

    @inlineCallbacks
    def test_path_without_rewrite_is_sent_as_the_client_sent_it(self):
        status, headers, body = yield self.get(b"/x/%2e/y//z?a=%41")
        self.assertTrue(body.startswith(b"GET /x/%2e/y//z?a=%41 0\n"), body)

    @inlineCallbacks
    def test_response_header_rules(self):
        status, headers, body = yield self.get(b"/page")
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertNotIn(b"server", headers)
        self.assertEqual(headers[b"x-frame-options"], [b"DENY"])
        self.assertEqual(headers[b"x-served-for"], [b"127.0.0.1 GET /page"])

    @inlineCallbacks
    def test_redirect_and_respond_need_no_backend(self):
        status, headers, body = yield self.get(b"/old/a?b=1")
        self.assertEqual(status, b"HTTP/1.1 308 Permanent Redirect")
        self.assertEqual(headers[b"location"], [b"https://shop.test/new/old/a?b=1"])
        status, headers, body = yield self.get(b"/admin/x")
        self.assertEqual((status, body), (b"HTTP/1.1 403 Forbidden", b"no\n"))
        self.assertEqual(headers[b"content-type"], [b"text/plain; charset=utf-8"])
        self.assertEqual(len(headers[b"x-request-id"][0]), 16)
        self.assertEqual(self.backend.connections, 0)

    @inlineCallbacks
    def test_redirect_is_never_protocol_relative(self):
        status, headers, body = yield self.get(b"//evil.test/x?y", host=b"old.test")
        self.assertEqual(status, b"HTTP/1.1 301 Moved Permanently")
        self.assertEqual(headers[b"location"], [b"/evil.test/x?y"])
        status, headers, body = yield self.get(b"/a", host=b"old.test")
        self.assertEqual(headers[b"location"], [b"/a"])

    @inlineCallbacks
    def test_dot_segments_cannot_dodge_a_route(self):
        for target in [b"/page/../admin", b"/page/%2e%2E/admin/", b"//admin", b"/%61dmin"]:
            status, headers, body = yield self.get(target)
            self.assertEqual(status, b"HTTP/1.1 403 Forbidden", target)
        status, headers, body = yield self.get(b"/page/..%2Fadmin")
        self.assertEqual(status, b"HTTP/1.1 400 Bad Request")
        self.assertEqual(self.backend.connections, 0)

    @inlineCallbacks
    def test_route_error_page(self):
        status, headers, body = yield self.get(b"/down/x")
        self.assertEqual(status, b"HTTP/1.1 502 Bad Gateway")
        self.assertEqual(body, b"<p>We are fixing it.</p>\n")
        self.assertEqual(headers[b"content-type"], [b"text/html; charset=utf-8"])
        self.assertEqual(len(headers[b"x-request-id"][0]), 16)

    @inlineCallbacks
    def test_invalid_host_is_400(self):
        raw = yield raw_exchange(
            self.port, b"GET / HTTP/1.1\r\nHost: a/b\r\nConnection: close\r\n\r\n"
        )
        self.assertTrue(raw.startswith(b"HTTP/1.1 400 Bad Request\r\n"), raw)
