"""
The admin API's probes: C{GET /health} (liveness) and C{GET /ready}
(readiness), answered without the token the other operations need, and
C{/ready} answering 503 with its reasons while the proxy drains.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from ..support.admin_client import AdminClient
from ..support.processes import free_port

CONFIG = """
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.app]
servers = [{ url = "http://127.0.0.1:9" }]

[[routes]]
upstream = "app"

[admin]
endpoint = "tcp:%d:interface=127.0.0.1"
token = "s3cret"
"""


class ProbeTests(AdminClient, TestCase):
    @inlineCallbacks
    def test_health_answers_ok_without_the_token(self):
        self.start_with(CONFIG % (free_port(),))
        response, body = yield self.call("GET", "/health")
        self.assertEqual((response.code, body), (200, b"ok\n"))
        code, _ = yield self.json("GET", "/status")
        self.assertEqual(code, 401)

    @inlineCallbacks
    def test_ready_while_serving_and_503_with_reasons_while_stopping(self):
        self.start_with(CONFIG % (free_port(),))
        code, body = yield self.json("GET", "/ready")
        self.assertEqual((code, body), (200, {"ready": True}))
        # What stopService does first: the proxy no longer runs, and drains.
        self.proxy.running = False
        self.addCleanup(setattr, self.proxy, "running", True)
        code, body = yield self.json("GET", "/ready")
        self.assertEqual(
            (code, body),
            (503, {"ready": False, "reasons": ["stopping: finishing the requests in flight"]}),
        )

    @inlineCallbacks
    def test_a_wrong_method_on_a_probe_is_405(self):
        self.start_with(CONFIG % (free_port(),))
        code, body = yield self.json("POST", "/health")
        self.assertEqual(code, 405)
