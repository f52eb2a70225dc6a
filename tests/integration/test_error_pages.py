"""
Error pages, interception of backend errors, maintenance and backup
servers over real loopback sockets: a legacy backend's 500 with a stack
trace, a listener's 404 page for an unrouted path, a 400 page for a
malformed request line, a route put in maintenance through the admin API
and back, and a backup server that takes over from a refused primary.
"""

from __future__ import annotations

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web import resource

from ..support.admin_client import AdminClient
from ..support.loopback import CountingSite, Echo, listen, raw_exchange
from ..support.processes import free_port, temporary_directory

TRACE = b"Traceback (most recent call last):\n  File \"/srv/app/views.py\", line 42\nKeyError: 'db'\n"


class LegacyApp(resource.Resource):
    """
    A legacy backend: C{/boom} fails with a stack trace in its body, any
    other path answers.
    """

    isLeaf = True

    def render(self, request):
        request.setHeader(b"content-type", b"text/plain")
        if request.path.endswith(b"/boom"):
            request.setResponseCode(500)
            return TRACE
        return b"legacy ok\n"


CONFIG = """\
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"
error_pages = {{ 404 = "{pages}/404.html", 400 = "{pages}/400.html", 503 = "{pages}/503.html" }}

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:{backend}" }}]

[upstreams.failover]
servers = [
  {{ url = "http://127.0.0.1:{refused}" }},
  {{ url = "http://127.0.0.1:{spare}", backup = true }},
]
outlier = {{ consecutive_failures = 1, ejection_time = "1h", max_ejection_time = "1h" }}

[[routes]]
name = "legacy"
path = "/app"
upstream = "app"
intercept_errors = [500, 502, 503]
error_pages = {{ 500 = "{pages}/500.html" }}
maintenance_retry_after = "2m"

[[routes]]
path = "/spare"
upstream = "failover"

[admin]
endpoint = "tcp:0:interface=127.0.0.1"
"""

PAGES = {
    "400.html": b"<h1>Bad request</h1>\n",
    "404.html": b"<h1>Nothing here</h1>\n",
    "500.html": b"<h1>Sorry, the shop is broken</h1>\n",
    "503.html": b"<h1>Back soon</h1>\n",
}


class ErrorPageTests(AdminClient, TestCase):
    @inlineCallbacks
    def start(self):
        self.site = CountingSite(LegacyApp())
        backend = yield listen(self.site, self)
        spare = yield listen(CountingSite(Echo()), self)
        pages = temporary_directory(self)
        for name, body in PAGES.items():
            (pages / name).write_bytes(body)
        self.start_with(
            CONFIG.format(backend=backend, refused=free_port(), spare=spare, pages=pages)
        )

    @inlineCallbacks
    def get(self, path: str, **kwargs):
        response = yield treq.get(
            "http://127.0.0.1:%d%s" % (self.port, path), persistent=False, **kwargs
        )
        body = yield treq.content(response)
        return response, body

    @inlineCallbacks
    def test_backend_stack_trace_is_replaced_by_the_route_page(self):
        yield self.start()
        response, body = yield self.get("/app/boom")
        self.assertEqual(response.code, 500)
        self.assertEqual(body, PAGES["500.html"])
        self.assertNotIn(b"Traceback", body)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["text/html; charset=utf-8"]
        )
        [request_id] = response.headers.getRawHeaders("x-request-id")
        self.assertEqual(len(request_id), 16)
        # The backend's body was read to its end: its connection is reused.
        response, body = yield self.get("/app/fine")
        self.assertEqual((response.code, body), (200, b"legacy ok\n"))
        self.assertEqual(self.site.connections, 1)

    @inlineCallbacks
    def test_listener_page_for_an_unrouted_path(self):
        yield self.start()
        response, body = yield self.get("/nowhere")
        self.assertEqual((response.code, body), (404, PAGES["404.html"]))
        self.assertTrue(response.headers.hasHeader("x-request-id"))

    @inlineCallbacks
    def test_listener_page_for_a_malformed_request_line(self):
        yield self.start()
        received = yield raw_exchange(self.port, b"GET /app HTTP/1.1 extra\r\nHost: x\r\n\r\n")
        head, _, body = received.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 400 "), head)
        self.assertIn(b"\r\nX-Request-ID: ", head)
        self.assertIn(b"\r\nContent-Type: text/html; charset=utf-8", head)
        self.assertEqual(body, PAGES["400.html"])

    @inlineCallbacks
    def test_maintenance_through_the_admin_api_without_reload(self):
        yield self.start()
        code, state = yield self.json("POST", "/routes/legacy/maintenance")
        self.assertEqual((code, state["maintenance"], state["index"]), (200, True, 0))
        response, body = yield self.get("/app/fine")
        self.assertEqual((response.code, body), (503, PAGES["503.html"]))
        self.assertEqual(response.headers.getRawHeaders("retry-after"), ["120"])
        self.assertTrue(response.headers.hasHeader("x-request-id"))
        code, listing = yield self.json("GET", "/routes")
        self.assertEqual(
            [(r["name"], r["maintenance"]) for r in listing["routes"]],
            [("legacy", True), (None, False)],
        )
        # A named route stays in maintenance across a reload.
        self.assertEqual(self.proxy.reload(), [])
        response, _ = yield self.get("/app/fine")
        self.assertEqual(response.code, 503)
        code, state = yield self.json("DELETE", "/routes/legacy/maintenance")
        self.assertEqual((code, state["maintenance"]), (200, False))
        response, body = yield self.get("/app/fine")
        self.assertEqual((response.code, body), (200, b"legacy ok\n"))
        # By index, and off with POST ?off.
        code, state = yield self.json("POST", "/routes/0/maintenance")
        self.assertEqual((code, state["maintenance"]), (200, True))
        code, state = yield self.json("POST", "/routes/0/maintenance?off")
        self.assertEqual((code, state["maintenance"]), (200, False))
        code, body = yield self.json("POST", "/routes/nosuch/maintenance")
        self.assertEqual((code, body), (404, {"error": "no route named nosuch"}))

    @inlineCallbacks
    def test_backup_server_takes_traffic_only_once_the_primary_is_down(self):
        yield self.start()
        code, status = yield self.json("GET", "/status")
        failover = status["upstreams"]["failover"]["backends"]
        self.assertEqual([b["backup"] for b in failover], [False, True])
        # The primary refuses: it is ejected, and the retry goes to the
        # backup, which then takes every request.
        for _ in range(3):
            response, body = yield self.get("/spare/x")
            self.assertEqual(response.code, 200)
            self.assertTrue(body.startswith(b"GET /spare/x "))
        code, status = yield self.json("GET", "/status")
        failover = status["upstreams"]["failover"]["backends"]
        self.assertEqual([b["ejected"] for b in failover], [True, False])
