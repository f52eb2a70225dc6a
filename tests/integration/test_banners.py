"""
Hiding the backend over loopback: a legacy backend that names its stack
(C{Server: Apache/2.2.3 (CentOS)}, C{X-Powered-By: PHP/5.2.17}) is not
named to clients unless its route passes banners on, cached answers
included; the proxy's own Server is what C{[server] server_header} says,
on its own answers too, and none by default.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from ..support.configs import parse
from ..support.loopback import listen, raw_exchange, start_proxy
from ..support.origins import parse_response

CONFIG = """\
[server]
{server}

[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.legacy]
servers = [{{ url = "http://127.0.0.1:{port}" }}]

[upstreams.gone]
servers = [{{ url = "http://127.0.0.1:1" }}]

[caches.pages]

[[routes]]
path = "/app"
upstream = "legacy"

[[routes]]
path = "/kept"
upstream = "legacy"
pass_backend_banners = true

[[routes]]
path = "/cached"
upstream = "legacy"
cache = "pages"

[[routes]]
path = "/gone"
upstream = "gone"
"""


class LegacyApp(resource.Resource):
    """
    A backend that names its software stack on every answer, as old PHP
    on Apache does.
    """

    isLeaf = True

    def render(self, request):
        request.setHeader(b"Server", b"Apache/2.2.3 (CentOS)")
        request.setHeader(b"X-Powered-By", b"PHP/5.2.17")
        request.setHeader(b"X-App-Version", b"7")
        request.setHeader(b"Cache-Control", b"max-age=60")
        return b"legacy"


def get(port: int, path: bytes):
    request = b"GET %s HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n" % (path,)
    return raw_exchange(port, request).addCallback(parse_response)


class BannerTests(TestCase):
    timeout = 15

    @inlineCallbacks
    def proxy(self, server_table: str = ""):
        backend = yield listen(server.Site(LegacyApp()), self)
        config = parse(CONFIG.format(server=server_table, port=backend))
        return start_proxy(config, self)

    @inlineCallbacks
    def test_backend_banners_are_hidden_by_default(self):
        port = yield self.proxy()
        status, headers, body = yield get(port, b"/app/")
        self.assertEqual((status, body), (200, b"legacy"))
        self.assertNotIn(b"server", headers)
        self.assertNotIn(b"x-powered-by", headers)
        self.assertEqual(headers[b"x-app-version"], [b"7"])
        self.assertEqual(headers[b"cache-control"], [b"max-age=60"])

    @inlineCallbacks
    def test_a_route_that_passes_banners_shows_both(self):
        port = yield self.proxy()
        _, headers, _ = yield get(port, b"/kept/")
        self.assertEqual(headers[b"server"], [b"Apache/2.2.3 (CentOS)"])
        self.assertEqual(headers[b"x-powered-by"], [b"PHP/5.2.17"])

    @inlineCallbacks
    def test_server_wide_pass_backend_banners_shows_both(self):
        port = yield self.proxy("pass_backend_banners = true")
        _, headers, _ = yield get(port, b"/app/")
        self.assertEqual(headers[b"server"], [b"Apache/2.2.3 (CentOS)"])
        self.assertEqual(headers[b"x-powered-by"], [b"PHP/5.2.17"])

    @inlineCallbacks
    def test_a_cached_answer_is_hidden_too(self):
        port = yield self.proxy()
        yield get(port, b"/cached/page")
        _, headers, body = yield get(port, b"/cached/page")
        self.assertEqual(body, b"legacy")
        self.assertIn(b"hit", headers[b"cache-status"][0])
        self.assertNotIn(b"server", headers)
        self.assertNotIn(b"x-powered-by", headers)

    @inlineCallbacks
    def test_the_proxy_sends_no_server_of_its_own_by_default(self):
        port = yield self.proxy()
        for path, code in ((b"/nowhere", 404), (b"/gone/", 502)):
            status, headers, _ = yield get(port, path)
            self.assertEqual(status, code)
            self.assertNotIn(b"server", headers)

    @inlineCallbacks
    def test_server_header_names_the_proxy_instead_of_the_backend(self):
        port = yield self.proxy('server_header = "txrevproxy"')
        for path in (b"/app/", b"/nowhere", b"/gone/"):
            _, headers, _ = yield get(port, path)
            self.assertEqual(headers[b"server"], [b"txrevproxy"], path)
        # A backend Server passed on is not doubled by the proxy's.
        _, headers, _ = yield get(port, b"/kept/")
        self.assertEqual(headers[b"server"], [b"Apache/2.2.3 (CentOS)"])

    @inlineCallbacks
    def test_server_header_false_is_none(self):
        port = yield self.proxy("server_header = false")
        _, headers, _ = yield get(port, b"/nowhere")
        self.assertNotIn(b"server", headers)
