"""
The C{cors} filter from a configuration file, over real loopback sockets:
preflights answered by the proxy, actual requests forwarded with the CORS
fields added, credentials, wildcard subdomains, the merge of C{Vary}, and
a cached route where two origins get their own fields from one stored
response.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from ..support.configs import parse
from ..support.loopback import listen, raw_exchange, start_proxy
from ..support.origins import Scripted, parse_response


def backend_answer(request):
    request.setHeader(b"Content-Type", b"text/plain")
    request.setHeader(b"Vary", b"Accept-Encoding")
    request.setHeader(b"Cache-Control", b"max-age=60")
    request.setHeader(b"Access-Control-Allow-Origin", b"*")
    request.setHeader(b"X-Total", b"3")
    return b"hello"


def request(method=b"GET", origin=None, headers=()):
    lines = [b"%s /page HTTP/1.1" % (method,), b"Host: localhost", b"Connection: close"]
    if origin is not None:
        lines.append(b"Origin: " + origin)
    lines += [b"%s: %s" % field for field in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n"


class CORSIntegrationTests(TestCase):
    timeout = 15

    @inlineCallbacks
    def start(self, options, route="", filters='"cors"', extra=""):
        self.backend = Scripted(backend_answer)
        backend_port = yield listen(Site(self.backend), self)
        self.port = start_proxy(
            parse(
                """
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.app]
servers = [{ url = "http://127.0.0.1:%d" }]

[caches.pages]

[[routes]]
upstream = "app"
filters = [%s]
%s

[filters.cors]
type = "cors"
allow_origins = ["https://app.example.com", "https://*.example.com"]
%s

%s
"""
                % (backend_port, filters, route, options, extra)
            ),
            self,
        )

    def fetch(self, *args, **kwargs):
        return raw_exchange(self.port, request(*args, **kwargs)).addCallback(
            parse_response
        )

    @inlineCallbacks
    def test_preflight_is_answered_by_the_proxy(self):
        yield self.start(
            'allow_methods = ["GET", "PUT"]\nallow_headers = ["X-Token"]\nmax_age = "10m"'
        )
        status, headers, body = yield self.fetch(
            b"OPTIONS",
            b"https://a.example.com",
            [(b"Access-Control-Request-Method", b"PUT"),
             (b"Access-Control-Request-Headers", b"x-token")],
        )
        self.assertEqual((status, body), (204, b""))
        self.assertEqual(headers[b"access-control-allow-origin"], [b"https://a.example.com"])
        self.assertEqual(headers[b"access-control-allow-methods"], [b"GET, PUT"])
        self.assertEqual(headers[b"access-control-allow-headers"], [b"x-token"])
        self.assertEqual(headers[b"access-control-max-age"], [b"600"])
        self.assertEqual(headers[b"vary"], [b"Origin"])
        self.assertEqual(self.backend.requests, [])

    @inlineCallbacks
    def test_preflight_from_a_look_alike_origin_is_refused(self):
        yield self.start('allow_methods = ["PUT"]')
        for origin in (b"https://example.com.evil.com", b"http://a.example.com"):
            status, headers, _ = yield self.fetch(
                b"OPTIONS", origin, [(b"Access-Control-Request-Method", b"PUT")]
            )
            self.assertEqual(status, 403)
            self.assertNotIn(b"access-control-allow-origin", headers)
        self.assertEqual(self.backend.requests, [])

    @inlineCallbacks
    def test_actual_request_with_credentials_gets_the_fields_and_merged_vary(self):
        yield self.start('allow_credentials = true\nexpose_headers = ["X-Total"]')
        status, headers, body = yield self.fetch(origin=b"https://app.example.com")
        self.assertEqual((status, body), (200, b"hello"))
        self.assertEqual(headers[b"access-control-allow-origin"], [b"https://app.example.com"])
        self.assertEqual(headers[b"access-control-allow-credentials"], [b"true"])
        self.assertEqual(headers[b"access-control-expose-headers"], [b"X-Total"])
        self.assertEqual(headers[b"vary"], [b"Accept-Encoding, Origin"])

    @inlineCallbacks
    def test_other_origin_reaches_the_backend_but_gets_no_cors_fields(self):
        yield self.start("")
        status, headers, _ = yield self.fetch(origin=b"https://evil.test")
        self.assertEqual(status, 200)
        # The backend's own "*" is replaced by the proxy's policy.
        self.assertNotIn(b"access-control-allow-origin", headers)
        self.assertEqual(len(self.backend.requests), 1)

    @inlineCallbacks
    def test_cached_response_gets_each_origins_own_fields(self):
        yield self.start("", route='cache = "pages"')
        first = yield self.fetch(origin=b"https://a.example.com")
        second = yield self.fetch(origin=b"https://b.example.com")
        third = yield self.fetch(origin=b"https://evil.test")
        self.assertEqual(len(self.backend.requests), 1)
        self.assertTrue(second[1][b"cache-status"][0].startswith(b"txrevproxy; hit"))
        self.assertEqual(
            [answer[1].get(b"access-control-allow-origin") for answer in (first, second, third)],
            [[b"https://a.example.com"], [b"https://b.example.com"], None],
        )
        for answer in (first, second, third):
            self.assertEqual(answer[1][b"vary"], [b"Accept-Encoding, Origin"])

    @inlineCallbacks
    def test_refusal_of_a_later_filter_is_readable_and_preflight_needs_no_credentials(self):
        yield self.start(
            'allow_methods = ["PUT"]\nallow_headers = ["Authorization"]',
            filters='"cors", "keys"',
            extra='[filters.keys]\ntype = "api_key"\nkeys = ["secret-key-1"]',
        )
        status, _, _ = yield self.fetch(
            b"OPTIONS",
            b"https://app.example.com",
            [(b"Access-Control-Request-Method", b"PUT"),
             (b"Access-Control-Request-Headers", b"authorization")],
        )
        self.assertEqual(status, 204)
        status, headers, _ = yield self.fetch(origin=b"https://app.example.com")
        self.assertEqual(status, 401)
        self.assertEqual(headers[b"access-control-allow-origin"], [b"https://app.example.com"])
        self.assertEqual(self.backend.requests, [])
