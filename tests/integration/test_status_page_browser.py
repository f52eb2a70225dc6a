"""
The status page in a real browser (headless Chromium, driven over the
DevTools protocol): signed in with the token, it shows a backend up,
drains and enables it with its button, turns it red without being
reloaded once the backend is killed and the health checks find it down,
and reads on a phone's width.  Screenshots are saved in the test's
directory.
"""

from __future__ import annotations

import pytest
from twisted.internet import reactor
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web import server

from ..support.admin_client import AdminClient
from ..support.devtools import chromium, open_page
from ..support.loopback import Echo
from ..support.processes import SOURCE_ROOT

CONFIG = """\
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[listeners.websecure]
endpoint = "tcp:0:interface=127.0.0.1"
tls = "default"

[tls.default]
certificates = [
  {{ names = ["localhost"], cert = "{certs}/localhost.pem", key = "{certs}/localhost-key.pem" }},
]

[caches.pages]

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:{backend}" }}]

[upstreams.app.health]
interval = "0.2s"
timeout = "1s"
rise = 1
fall = 1

[[routes]]
name = "shop"
upstream = "app"
cache = "pages"

[admin]
endpoint = "tcp:0:interface=127.0.0.1"
token = "s3cret"
"""

#: The backend's state as the page shows it.
STATE = (
    "(document.querySelector('[data-backend=\"%s\"]')"
    " || {getAttribute: () => null}).getAttribute('data-state')"
)


class StatusPageBrowserTests(AdminClient, TestCase):
    timeout = 120

    @pytest.fixture(autouse=True)
    def directory(self, tmp_path):
        # pytest keeps its last runs' directories: the screenshots stay.
        self.directory = tmp_path

    def setUp(self):
        if chromium() is None:
            raise SkipTest("chromium is not installed (apt-get install chromium)")

    @inlineCallbacks
    def test_a_killed_backend_turns_red_without_reloading_the_page(self):
        endpoint = TCP4ServerEndpoint(reactor, 0, interface="127.0.0.1")
        backend = yield endpoint.listen(server.Site(Echo()))
        self.addCleanup(backend.stopListening)
        self.start_with(
            CONFIG.format(backend=backend.getHost().port, certs=SOURCE_ROOT / "certs")
        )
        url = "http://127.0.0.1:%d" % (backend.getHost().port,)
        for _ in range(5):
            self.assertEqual((yield self.proxied()), 200)
        directory = self.directory

        browser = yield open_page(
            reactor, self, self.admin_url + "/?token=s3cret", directory / "profile"
        )
        state = STATE % (url,)
        self.assertEqual((yield browser.wait_for(state, "up")), "up")
        self.assertEqual(
            (yield browser.evaluate("location.pathname + location.search")), "/"
        )
        yield browser.screenshot(directory / "up.png")

        # Its button drains it, and then enables it again.
        click = "document.querySelector('[data-backend] button').click()"
        yield browser.evaluate(click)
        self.assertEqual((yield browser.wait_for(state, "draining")), "draining")
        self.assertTrue(self.proxy.runtime.balancers["app"].backends[0].draining)
        yield browser.evaluate(click)
        self.assertEqual((yield browser.wait_for(state, "up")), "up")

        # Kill the backend: its health checks are refused from now on.
        yield backend.stopListening()
        self.assertEqual((yield browser.wait_for(state, "down")), "down")
        # The same page, never reloaded: the polling turned it red.
        self.assertEqual(
            (yield browser.evaluate("performance.getEntriesByType('navigation').length")), 1
        )
        color = yield browser.evaluate(
            "getComputedStyle(document.querySelector('[data-backend] .state')).backgroundColor"
        )
        self.assertEqual(color, "rgb(207, 34, 46)")
        yield browser.screenshot(directory / "down.png")

        # A phone's width: one column, nothing wider than the screen.
        yield browser.send(
            "Emulation.setDeviceMetricsOverride",
            {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True},
        )
        yield browser.wait_for("document.body.getAttribute('data-updated') !== null", True)
        width = yield browser.evaluate("document.documentElement.scrollWidth")
        self.assertLessEqual(width, 390)
        # The backend's button is on the screen, not scrolled away.
        right = yield browser.evaluate(
            "document.querySelector('[data-backend] button').getBoundingClientRect().right"
        )
        self.assertLessEqual(right, 390)
        yield browser.screenshot(directory / "phone.png")
