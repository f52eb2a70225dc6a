"""
The admin API over a real socket: status, drain and enable, reload,
metrics that prometheus_client parses and that count the requests sent,
the bearer token, and JSON errors.
"""

from __future__ import annotations

import sys

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.defer import inlineCallbacks
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase
from twisted.web import server

from ..support.admin_client import AdminClient
from ..support.loopback import Echo, listen, raw_exchange

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

CONFIG = """\
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:{backend}" }}, {{ url = "http://127.0.0.1:9" }}]

[[routes]]
upstream = "app"

[[routes]]
path = "/fixed"
respond = {{ status = 204 }}

[admin]
endpoint = "tcp:0:interface=127.0.0.1"
{token}
"""


class AdminTests(AdminClient, TestCase):
    @inlineCallbacks
    def start(self, token: str = ""):
        self.backend = yield listen(server.Site(Echo()), self)
        self.start_with(
            CONFIG.format(
                backend=self.backend, token='token = "%s"' % token if token else ""
            )
        )
        # The second backend refuses connections: drain it so that every
        # request goes to the first.
        self.proxy.set_draining("app", 1, True)

    @inlineCallbacks
    def test_status_describes_listeners_and_upstreams(self):
        yield self.start()
        code, status = yield self.json("GET", "/status")
        self.assertEqual(code, 200)
        self.assertEqual(status["config"]["file"], str(self.path))
        self.assertEqual(len(status["config"]["sha256"]), 64)
        self.assertEqual(status["listeners"]["web"]["port"], self.port)
        backends = status["upstreams"]["app"]["backends"]
        self.assertEqual(
            [(b["url"], b["draining"], b["healthy"]) for b in backends],
            [
                ("http://127.0.0.1:%d" % self.backend, False, True),
                ("http://127.0.0.1:9", True, True),
            ],
        )
        self.assertGreaterEqual(status["uptime"], 0)

    @inlineCallbacks
    def test_drain_and_enable_a_backend(self):
        yield self.start()
        code, state = yield self.json("POST", "/backends/app/0/drain")
        self.assertEqual((code, state["draining"]), (200, True))
        self.assertEqual((yield self.proxied()), 503)
        url = "http%3A%2F%2F127.0.0.1%3A" + str(self.backend)
        code, state = yield self.json("POST", "/backends/app/%s/enable" % url)
        self.assertEqual((code, state["draining"]), (200, False))
        self.assertEqual((yield self.proxied()), 200)

    @inlineCallbacks
    def test_errors_are_json_with_their_status(self):
        yield self.start()
        code, body = yield self.json("POST", "/backends/nosuch/0/drain")
        self.assertEqual((code, body), (404, {"error": "no upstream named nosuch"}))
        code, body = yield self.json("POST", "/backends/app/7/drain")
        self.assertEqual((code, body), (404, {"error": "upstream app has no server 7"}))
        code, body = yield self.json("GET", "/reload")
        self.assertEqual((code, body), (405, {"error": "use POST"}))
        code, body = yield self.json("GET", "/nothing")
        self.assertEqual((code, body), (404, {"error": "no such admin operation: /nothing"}))

    @inlineCallbacks
    def head(self, request: bytes):
        """
        The status line and the field names and values of the admin API's
        answer to C{request}, read off the wire.
        """
        answer = yield raw_exchange(self.admin.port.getHost().port, request)
        head = answer.partition(b"\r\n\r\n")[0].split(b"\r\n")
        return head[0], dict(line.split(b": ", 1) for line in head[1:])

    @inlineCallbacks
    def test_answers_carry_date_and_request_id_and_no_twisted_banner(self):
        yield self.start()
        status, fields = yield self.head(
            b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        self.assertNotIn(b"Server", fields)
        self.assertRegex(fields[b"X-Request-ID"], rb"\A[0-9a-f]{16}\Z")
        self.assertTrue(fields[b"Date"].endswith(b" GMT"))
        # The reason phrase of RFC 9110, not Twisted's older one.
        self.path.write_text("[nonsense")
        status, fields = yield self.head(
            b"POST /reload HTTP/1.1\r\nHost: a\r\nConnection: close\r\n"
            b"Content-Length: 0\r\n\r\n"
        )
        self.assertEqual(status, b"HTTP/1.1 422 Unprocessable Content")
        self.assertIn(b"X-Request-ID", fields)

    @inlineCallbacks
    def test_a_request_twisted_cannot_parse_gets_the_proxys_400(self):
        yield self.start()
        status, fields = yield self.head(
            b"GET /health HTTP/1.1\r\nHost: a\r\nContent-Length: x\r\n\r\n"
        )
        self.assertEqual(status, b"HTTP/1.1 400 Bad Request")
        self.assertIn(b"X-Request-ID", fields)
        self.assertIn(b"Date", fields)

    @inlineCallbacks
    def test_answers_carry_the_proxys_own_server_header(self):
        self.backend = yield listen(server.Site(Echo()), self)
        self.start_with(
            '[server]\nserver_header = "edge"\n'
            + CONFIG.format(backend=self.backend, token="")
        )
        status, fields = yield self.head(
            b"GET /health HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
        )
        self.assertEqual(fields[b"Server"], b"edge")

    @inlineCallbacks
    def test_token_is_required_when_configured(self):
        yield self.start(token="s3cret")
        code, body = yield self.json("GET", "/status")
        self.assertEqual((code, body), (401, {"error": "a valid bearer token is required"}))
        code, body = yield self.json("GET", "/status", token="wrong")
        self.assertEqual(code, 401)
        code, body = yield self.json("GET", "/status", token="s3cret")
        self.assertEqual(code, 200)

    @inlineCallbacks
    def test_reload_reports_problems_and_keeps_the_old_configuration(self):
        yield self.start()
        good = self.path.read_text()
        self.path.write_text(good.replace('upstream = "app"', 'upstream = "api"', 1))
        code, body = yield self.json("POST", "/reload")
        self.assertEqual(
            (code, body),
            (422, {"reloaded": False, "problems": ['routes[0].upstream: no upstream named "api"; did you mean "app"?']}),
        )
        self.assertEqual((yield self.proxied()), 200)
        self.path.write_text(good.replace('path = "/fixed"', 'path = "/fixed2"'))
        code, body = yield self.json("POST", "/reload")
        self.assertEqual((code, body), (200, {"reloaded": True}))
        self.assertEqual((yield self.proxied("/fixed2")), 204)
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_config_is_the_served_configuration_with_secrets_redacted(self):
        """
        C{GET /config} answers the effective configuration the proxy
        serves, as TOML: not the file as edited since, until a reload.
        """
        yield self.start(token="s3cret")
        response, _ = yield self.call("GET", "/config")
        self.assertEqual(response.code, 401)
        self.path.write_text(self.path.read_text().replace("/fixed", "/fixed2"))
        response, body = yield self.call("GET", "/config", token="s3cret")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"),
            ["application/toml; charset=utf-8"],
        )
        served = tomllib.loads(body.decode("utf-8"))
        self.assertEqual(served["admin"]["token"], "<redacted>")
        self.assertEqual(served["routes"][1]["path"], "/fixed")
        self.assertEqual(served["upstreams"]["app"]["balance"], "round_robin")
        self.assertNotIn(b"s3cret", body)
        yield self.call("POST", "/reload", token="s3cret")
        _, body = yield self.call("GET", "/config", token="s3cret")
        self.assertEqual(tomllib.loads(body.decode("utf-8"))["routes"][1]["path"], "/fixed2")

    @inlineCallbacks
    def test_backend_connections_leave_no_factory_lines_in_the_log(self):
        yield self.start()
        events = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        self.assertEqual((yield self.proxied()), 200)
        # The pool's factory is a plain Factory (the test's own client
        # logs through another).
        self.assertEqual(
            [
                e["log_format"]
                for e in events
                if e.get("log_namespace") == "twisted.internet.protocol.Factory"
            ],
            [],
        )

    @inlineCallbacks
    def test_metrics_parse_and_count_the_requests_sent(self):
        yield self.start()
        for _ in range(3):
            self.assertEqual((yield self.proxied()), 200)
        self.assertEqual((yield self.proxied("/fixed")), 204)
        response, body = yield self.call("GET", "/metrics")
        self.assertEqual(response.code, 200)
        families = {
            family.name: family
            for family in text_string_to_metric_families(body.decode("utf-8"))
        }
        requests = {
            (s.labels["route"], s.labels["upstream"], s.labels["status"]): s.value
            for s in families["txrevproxy_requests"].samples
            if s.value
        }
        self.assertEqual(requests, {("0", "app", "2xx"): 3.0, ("1", "", "2xx"): 1.0})
        durations = {
            s.labels["route"]: s.value
            for s in families["txrevproxy_request_duration_seconds"].samples
            if s.name.endswith("_count")
        }
        # Series are made on first use: no request went unrouted.
        self.assertEqual(durations, {"0": 3.0, "1": 1.0})
        upstream = [
            s.value
            for s in families["txrevproxy_upstream_response_seconds"].samples
            if s.name.endswith("_count")
        ]
        self.assertEqual(upstream, [3.0])
        healthy = {
            s.labels["backend"]: s.value
            for s in families["txrevproxy_backend_healthy"].samples
        }
        self.assertEqual(set(healthy.values()), {1.0})
        self.assertEqual(
            [s.labels for s in families["txrevproxy_client_connections"].samples],
            [{"listener": "web"}],
        )


class Cacheable(Echo):
    """
    An Echo whose answers may be cached for a minute; counts its requests.
    """

    def __init__(self):
        super().__init__()
        self.count = 0

    def render(self, request):
        self.count += 1
        request.setHeader(b"cache-control", b"max-age=60")
        return super().render(request)


CACHED = """\
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:{backend}" }}]

[[routes]]
upstream = "app"
cache = "pages"

[caches.pages]

[admin]
endpoint = "tcp:0:interface=127.0.0.1"
"""


class PurgeTests(AdminClient, TestCase):
    @inlineCallbacks
    def start(self, token: str = ""):
        self.origin = Cacheable()
        self.backend = yield listen(server.Site(self.origin), self)
        self.start_with(CACHED.format(backend=self.backend))

    @inlineCallbacks
    def test_purge_by_url_and_by_prefix(self):
        yield self.start()
        for _ in range(2):
            yield self.proxied("/a/1")
        yield self.proxied("/a/2")
        self.assertEqual(self.origin.count, 2)
        code, answer = yield self.json("POST", "/cache/purge?url=http://127.0.0.1/a/1")
        self.assertEqual((code, answer), (200, {"purged": 1}))
        yield self.proxied("/a/1")
        self.assertEqual(self.origin.count, 3)
        code, answer = yield self.json(
            "POST", "/cache/purge?prefix=http://127.0.0.1/a/&cache=pages"
        )
        self.assertEqual((code, answer), (200, {"purged": 2}))
        yield self.proxied("/a/2")
        self.assertEqual(self.origin.count, 4)

    @inlineCallbacks
    def test_purge_problems(self):
        yield self.start()
        code, answer = yield self.json("POST", "/cache/purge?url=http://x/&cache=nope")
        self.assertEqual((code, answer), (404, {"error": "no cache named nope"}))
        code, answer = yield self.json("POST", "/cache/purge?url=/relative")
        self.assertEqual(code, 400)
        code, answer = yield self.json("POST", "/cache/purge")
        self.assertEqual((code, answer), (400, {"error": "give exactly one of url and prefix"}))
        code, _ = yield self.json("GET", "/cache/purge?url=http://x/")
        self.assertEqual(code, 405)
