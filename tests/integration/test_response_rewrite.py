"""
Response rewriting over loopback sockets: a legacy app that redirects to
its own address and scopes its cookies to its own host and path, behind
routes that add or strip a prefix, keep everything, or give explicit
rules; a cached route stores the rewritten response; C{txrevproxy route}
lists the rewrites and C{txrevproxy check} reports a bad rule.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config import load_config

from ..support.commands import run
from ..support.loopback import CountingSite, listen, raw_exchange
from ..support.origins import Scripted, parse_response
from ..support.processes import temporary_directory

CONFIG = """\
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.legacy]
servers = [{ url = "http://127.0.0.1:%(backend)d" }]

[caches.pages]
store_set_cookie = true

[[routes]]
host = "shop.example.test"
upstream = "legacy"
add_prefix = "/app"
cookie_domain = { "backend.internal" = "shop.example.test" }
cookie_path = { "/app/" = "/" }

[[routes]]
host = "strip.test"
path = "/legacy"
upstream = "legacy"
strip_prefix = true

[[routes]]
host = "keep.test"
upstream = "legacy"
preserve_host = true

[[routes]]
host = "explicit.test"
upstream = "legacy"
add_prefix = "/app"
redirect_rewrite = [{ from = "http://127.0.0.1:%(backend)d/app/", to = "https://www.example.test/" }]

[[routes]]
host = "cached.test"
upstream = "legacy"
add_prefix = "/app"
cache = "pages"
"""


def legacy_app(request):
    """
    An app that believes it lives at C{/app} on its own address: it sends
    every visitor to its login page by absolute URL, or, when it is sent
    a path outside C{/app}, to C{/login} (outside any prefix).
    """
    port = request.getHost().port
    inside = request.path.startswith(b"/app/")
    request.setResponseCode(302)
    if inside:
        request.setHeader(b"Location", b"http://127.0.0.1:%d/app/login" % (port,))
    else:
        request.setHeader(b"Location", b"/login")
    request.setHeader(b"Content-Location", b"http://127.0.0.1:%d/app/start" % (port,))
    request.setHeader(b"Refresh", b"0; url=http://127.0.0.1:%d/app/login" % (port,))
    request.setHeader(b"Cache-Control", b"max-age=60")
    request.responseHeaders.addRawHeader(
        b"Set-Cookie", b"sid=42; Domain=backend.internal; Path=/app/; HttpOnly"
    )
    return b"see /app/login\n"


class ResponseRewriteTests(TestCase):
    timeout = 15

    @inlineCallbacks
    def setUp(self):
        self.app = Scripted(legacy_app)
        self.backend_port = yield listen(CountingSite(self.app), self)
        path = temporary_directory(self) / "proxy.toml"
        path.write_text(CONFIG % {"backend": self.backend_port})
        self.config_path = str(path)
        service = ProxyService(load_config(self.config_path), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.port = service.ports[0].getHost().port

    def get(self, host: bytes, target: bytes = b"/start"):
        return raw_exchange(
            self.port,
            b"GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n" % (target, host),
        ).addCallback(parse_response)

    @inlineCallbacks
    def test_redirect_to_the_backends_own_address_comes_back_to_the_client(self):
        status, headers, body = yield self.get(b"shop.example.test")
        self.assertEqual(self.app.requests[-1].uri, b"/app/start")
        self.assertEqual(status, 302)
        self.assertEqual(headers[b"location"], [b"/login"])
        self.assertEqual(headers[b"content-location"], [b"/start"])
        self.assertEqual(headers[b"refresh"], [b"0; url=/login"])
        self.assertEqual(body, b"see /app/login\n")

    @inlineCallbacks
    def test_set_cookie_domain_and_path_are_rewritten_by_rule(self):
        _, headers, _ = yield self.get(b"shop.example.test")
        self.assertEqual(
            headers[b"set-cookie"], [b"sid=42; Domain=shop.example.test; Path=/; HttpOnly"]
        )

    @inlineCallbacks
    def test_a_path_outside_a_stripped_prefix_gets_the_prefix_back(self):
        _, headers, _ = yield self.get(b"strip.test", b"/legacy/start")
        self.assertEqual(self.app.requests[-1].uri, b"/start")
        self.assertEqual(headers[b"location"], [b"/legacy/login"])
        # No cookie rules on this route: the cookie is passed on as it came.
        self.assertEqual(
            headers[b"set-cookie"], [b"sid=42; Domain=backend.internal; Path=/app/; HttpOnly"]
        )

    @inlineCallbacks
    def test_a_route_that_preserves_host_and_path_leaves_location_alone(self):
        _, headers, _ = yield self.get(b"keep.test", b"/app/start")
        own = b"http://127.0.0.1:%d/app/" % (self.backend_port,)
        self.assertEqual(headers[b"location"], [own + b"login"])
        self.assertEqual(headers[b"content-location"], [own + b"start"])
        self.assertEqual(headers[b"refresh"], [b"0; url=" + own + b"login"])

    @inlineCallbacks
    def test_explicit_rules_replace_the_default(self):
        _, headers, _ = yield self.get(b"explicit.test")
        self.assertEqual(headers[b"location"], [b"https://www.example.test/login"])
        self.assertEqual(headers[b"content-location"], [b"https://www.example.test/start"])

    @inlineCallbacks
    def test_a_cached_route_stores_the_rewritten_response(self):
        first = yield self.get(b"cached.test")
        second = yield self.get(b"cached.test")
        self.assertEqual(len(self.app.requests), 1)
        self.assertIn(b"hit", second[1][b"cache-status"][0])
        for _, headers, _ in (first, second):
            self.assertEqual(headers[b"location"], [b"/login"])
            self.assertEqual(headers[b"content-location"], [b"/start"])

    def test_route_command_lists_the_rewrites(self):
        status, out, err = run(
            ["route", "--config", self.config_path, "GET", "http://shop.example.test/start"]
        )
        self.assertEqual((status, err), (0, ""))
        self.assertEqual(
            out.split("response rewrites:\n", 1)[1].splitlines(),
            [
                "  Location, Content-Location, Refresh: default: http(s)://127.0.0.1:%d"
                " or the Host sent -> the client's own scheme and host" % (self.backend_port,),
                "  Location, Content-Location, Refresh: default: paths under /app -> under /"
                " (relative ones too)",
                "  Set-Cookie Domain: backend.internal -> shop.example.test",
                "  Set-Cookie Path: /app -> /",
            ],
        )
        status, out, err = run(
            ["route", "--config", self.config_path, "GET", "http://keep.test/start"]
        )
        self.assertIn("response rewrites: none\n", out)

    def test_check_reports_a_bad_rule_with_its_key_path(self):
        path = temporary_directory(self) / "bad.toml"
        path.write_text(
            CONFIG.replace('to = "https://www.example.test/"', 'to = ""').replace(
                '"/app/" = "/"', '"app" = "/"'
            )
            % {"backend": self.backend_port}
        )
        status, out, err = run(["check", "--config", str(path)])
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(
            err.splitlines(),
            [
                'routes[0].cookie_path.app: a path must start with "/", got "app"',
                'routes[3].redirect_rewrite[0].to: expected a URL or a path such as "/"'
                ' (printable ASCII, no spaces), got ""',
            ],
        )
