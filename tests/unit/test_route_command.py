"""
Tests for C{txrevproxy route} (L{txrevproxy.tools.explain}): the explanation of
several requests, word for word, and the errors it reports.
"""

from __future__ import annotations

import re
import textwrap

from twisted.trial.unittest import TestCase

from ..support.commands import run
from ..support.processes import SOURCE_ROOT, temporary_directory

CONFIG = """\
[listeners.web]
endpoint = "tcp:8080:interface=127.0.0.1"

[listeners.secure]
endpoint = "tcp:8443"
tls = "default"
http2 = false

[listeners.redirector]
endpoint = "tcp:8000"
redirect_to_https = "secure"

[tls.default]
certificates = [{ names = ["localhost"], cert = "%(certs)s/localhost.pem", key = "%(certs)s/localhost-key.pem" }]

[upstreams.app]
servers = [{ url = "http://127.0.0.1:9001" }, { url = "http://127.0.0.1:9002" }]

[upstreams.api]
servers = [{ url = "http://127.0.0.1:9101" }]
preserve_host = false

[[routes]]
upstream = "app"

[[routes]]
host = "shop.example.test"
path = "/api/"
upstream = "api"
strip_prefix = true
add_prefix = "/v2"
request_headers = { set = { "X-Client" = "{client_ip}" }, remove = ["Cookie"] }
cookie_path = { "/v2/" = "/api/" }

[[routes]]
path = "/api"
methods = ["POST"]
upstream = "api"

[[routes]]
path = "/old"
redirect = { to = "https://{host}/new{uri}", status = 301 }

[[routes]]
path = "/maintenance"
respond = { status = 503, body = "back soon\\n" }
response_headers = { set = { "Retry-After" = "120" } }
"""


def masked(text: str) -> str:
    """
    The output with the parts that change from run to run masked.
    """
    text = re.sub(r"X-Request-I[Dd]: [0-9a-f]{16}", "X-Request-ID: *", text)
    return re.sub(r"Date: .* GMT", "Date: *", text)


class RouteCommandTests(TestCase):
    def setUp(self):
        path = temporary_directory(self) / "proxy.toml"
        path.write_text(CONFIG % {"certs": SOURCE_ROOT / "certs"})
        self.path = str(path)

    def route(self, *arguments: str) -> str:
        status, out, err = run(["route", "--config", self.path] + list(arguments))
        self.assertEqual((status, err), (0, ""))
        return masked(out)

    def expect(self, output: str, expected: str) -> None:
        self.assertEqual(output.splitlines(), textwrap.dedent(expected).strip("\n").splitlines())

    def test_a_rewritten_request_to_an_upstream(self):
        self.expect(
            self.route("GET", "http://shop.example.test:8080/api/users?x=1", "-H", "Cookie: a=b", "-H", "Accept: */*"),
            """
            request:  GET http://shop.example.test:8080/api/users?x=1
            listener: web (tcp:8080:interface=127.0.0.1; http on port 8080)
            host:     shop.example.test -> the routes for host "shop.example.test"
            path:     /api/users
            route:    routes[1] (host "shop.example.test", path "/api") -> upstream "api"
                      matched: prefix "/api", its host
            other routes:
              routes[0] (path "/") -> upstream "app"
                  routes[1] has a longer prefix ("/api")
              routes[2] (path "/api", methods POST) -> upstream "api"
                  does not match: method is POST
              routes[3] (path "/old") -> redirect 301 to "https://{host}/new{uri}"
                  path "/api/users" is not under "/old"
              routes[4] (path "/maintenance") -> respond 503
                  path "/api/users" is not under "/maintenance"
            upstream: api (balance round_robin)
            backends: http://127.0.0.1:9101
            sent to http://127.0.0.1:9101:
              GET /v2/users?x=1 HTTP/1.1
              Host: 127.0.0.1:9101
              Accept: */*
              X-Forwarded-For: 127.0.0.1
              X-Forwarded-Proto: http
              X-Forwarded-Host: shop.example.test:8080
              X-Forwarded-Port: 8080
              X-Forwarded-Prefix: /api
              Via: 1.1 txrevproxy
              X-Request-ID: *
              X-Client: 127.0.0.1
            response rewrites:
              Location, Content-Location, Refresh: default: http(s)://127.0.0.1:9101 -> the client's own scheme and host
              Location, Content-Location, Refresh: default: paths under /v2 -> under /api (relative ones too)
              Set-Cookie Path: /v2 -> /api
            """,
        )

    def test_matchers_and_the_backends_of_an_upstream(self):
        self.expect(
            self.route("DELETE", "https://www.example.test/api/../api/x", "--client-ip", "192.0.2.9"),
            """
            request:  DELETE https://www.example.test/api/../api/x
            listener: secure (tcp:8443; the first https listener (none listens on port 443))
            host:     www.example.test -> the routes for any host
            path:     /api/x
            route:    routes[0] (path "/") -> upstream "app"
                      matched: prefix "/", any host
            other routes:
              routes[1] (host "shop.example.test", path "/api") -> upstream "api"
                  host "shop.example.test" does not match
              routes[2] (path "/api", methods POST) -> upstream "api"
                  does not match: method is POST
              routes[3] (path "/old") -> redirect 301 to "https://{host}/new{uri}"
                  path "/api/x" is not under "/old"
              routes[4] (path "/maintenance") -> respond 503
                  path "/api/x" is not under "/maintenance"
            upstream: app (balance round_robin)
            backends: http://127.0.0.1:9001, http://127.0.0.1:9002
            sent to http://127.0.0.1:9001:
              DELETE /api/../api/x HTTP/1.1
              Host: www.example.test
              X-Forwarded-For: 192.0.2.9
              X-Forwarded-Proto: https
              X-Forwarded-Host: www.example.test
              X-Forwarded-Port: 8443
              Via: 1.1 txrevproxy
              X-Request-ID: *
            response rewrites: none
            """,
        )

    def test_a_redirect(self):
        output = self.route("GET", "http://example.test:8080/old/page?q=1", "--listener", "web")
        self.assertIn("listener: web (tcp:8080:interface=127.0.0.1; named with --listener)\n", output)
        self.assertIn(
            'route:    routes[3] (path "/old") -> redirect 301 to "https://{host}/new{uri}"\n',
            output,
        )
        self.assertTrue(
            output.endswith(
                "answer:\n"
                "  HTTP/1.1 301 Moved Permanently\n"
                "  Location: https://example.test/new/old/page?q=1\n"
                "  Content-Length: 0\n"
                "  X-Request-ID: *\n"
                "  Date: *\n"
            ),
            output,
        )

    def test_a_fixed_response(self):
        output = self.route("HEAD", "http://example.test:8080/maintenance/")
        self.assertTrue(
            output.endswith(
                "answer:\n"
                "  HTTP/1.1 503 Service Unavailable\n"
                "  Content-Type: text/plain; charset=utf-8\n"
                "  Retry-After: 120\n"
                "  Content-Length: 10\n"
                "  X-Request-ID: *\n"
                "  Date: *\n"
            ),
            output,
        )

    def test_a_path_that_cannot_be_routed(self):
        output = self.route("GET", "http://example.test:8080/a/..%2Fadmin")
        self.assertIn(
            "route:    none: 400 Bad Request (the path has a malformed % escape, "
            "or a dot segment behind an encoded slash)\n",
            output,
        )
        self.assertIn("answer:\n  HTTP/1.1 400 Bad Request\n", output)

    def test_a_listener_that_redirects_to_https(self):
        self.expect(
            self.route("GET", "http://example.test:8000/x?y"),
            """
            request:  GET http://example.test:8000/x?y
            listener: redirector (tcp:8000; http on port 8000)
            answer:   redirect_to_https = "secure" (every request on this listener)
              HTTP/1.1 308 Permanent Redirect
              Location: https://example.test:8443/x?y
              Content-Length: 0
              X-Request-ID: *
              Date: *
            """,
        )

    def test_an_unknown_host_without_host_less_routes(self):
        path = temporary_directory(self) / "hosts.toml"
        path.write_text(
            '[listeners.web]\nendpoint = "tcp:80"\n'
            '[upstreams.app]\nservers = [{ url = "http://127.0.0.1:9001" }]\n'
            '[[routes]]\nhost = "example.test"\nupstream = "app"\n'
        )
        status, out, err = run(["route", "-c", str(path), "GET", "http://other.test/"])
        self.assertEqual(status, 0)
        self.assertIn(
            "route:    none: 421 Misdirected Request (no route names this host, "
            "and none is for any host)\n"
            "other routes:\n"
            '  routes[0] (host "example.test", path "/") -> upstream "app"\n'
            '      host "example.test" does not match\n',
            out,
        )

    def test_errors(self):
        for arguments, message in [
            (["GET", "ftp://x/"], "ftp://x/: expected an http:// or https:// URL\n"),
            (["GET", "http://x/", "-H", "nocolon"], "nocolon: expected a header such as 'X-Env: beta'\n"),
            (["GET", "http://x/", "--listener", "nope"], 'no listener named "nope" (listeners: web, secure, redirector)\n'),
        ]:
            status, out, err = run(["route", "--config", self.path] + arguments)
            self.assertEqual((status, out, err), (1, "", message))
