"""
The admin API's status page over a real socket: C{GET /status.json} and
its figures of the last minute, the page itself, and how a browser signs
in when a token is set (a cookie the API takes like the bearer token).
"""

from __future__ import annotations

import json

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web import server

from txrevproxy.app.status_page import COOKIE

from ..support.admin_client import AdminClient
from ..support.loopback import Echo, listen

CONFIG = """\
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:{backend}" }}]

[[routes]]
name = "shop"
upstream = "app"

[admin]
endpoint = "tcp:0:interface=127.0.0.1"
{token}
"""


class StatusPageTests(AdminClient, TestCase):
    @inlineCallbacks
    def start(self, token: str = ""):
        self.backend = yield listen(server.Site(Echo()), self)
        self.start_with(self.config(token))

    def config(self, token: str) -> str:
        return CONFIG.format(
            backend=self.backend, token='token = "%s"' % token if token else ""
        )

    @inlineCallbacks
    def fetch(self, method: str, path: str, cookie: bytes = b"", body: bytes = b""):
        headers = {b"Cookie": [cookie]} if cookie else {}
        if body:
            headers[b"Content-Type"] = [b"application/x-www-form-urlencoded"]
        response = yield treq.request(
            method,
            self.admin_url + path,
            headers=headers,
            data=body or None,
            allow_redirects=False,
            persistent=False,
        )
        content = yield treq.content(response)
        return response, content

    def session_of(self, response) -> bytes:
        """
        The cookie C{response} sets, checked to be the sign-in cookie with
        its protections.
        """
        [set_cookie] = response.headers.getRawHeaders(b"set-cookie")
        pair, *attributes = set_cookie.split(b"; ")
        self.assertEqual(pair.partition(b"=")[0], COOKIE)
        self.assertEqual(
            sorted(attributes), [b"HttpOnly", b"Path=/", b"SameSite=Strict"]
        )
        return pair

    @inlineCallbacks
    def test_status_json_has_the_last_minute_of_each_route_and_upstream(self):
        yield self.start()
        for _ in range(4):
            self.assertEqual((yield self.proxied()), 200)
        # As the once-a-second sampler would.
        self.proxy.window.sample()
        code, document = yield self.json("GET", "/status.json")
        self.assertEqual(code, 200)
        self.assertEqual(document["window"], {"seconds": 1})
        [route] = document["routes"]
        self.assertEqual((route["name"], route["stats"]["rate"]), ("shop", 4.0))
        self.assertEqual(route["stats"]["error_rate"], 0.0)
        self.assertIsNotNone(route["stats"]["p99"])
        [upstream] = document["upstreams"]
        self.assertEqual(upstream["stats"]["rates"][-1], 4)
        [backend] = upstream["backends"]
        self.assertEqual(
            (backend["url"], backend["state"]),
            ("http://127.0.0.1:%d" % self.backend, "up"),
        )
        self.assertEqual(document["listeners"][0]["port"], self.port)
        self.assertEqual(len(document["config"]["sha256"]), 64)
        self.assertEqual(document["config"]["loaded"], self.proxy.loaded)

    @inlineCallbacks
    def test_status_json_shows_a_drained_backend(self):
        yield self.start()
        self.proxy.set_draining("app", 0, True)
        code, document = yield self.json("GET", "/status.json")
        self.assertEqual(document["upstreams"][0]["backends"][0]["state"], "draining")

    @inlineCallbacks
    def test_page_is_served_with_its_own_scripts_only(self):
        yield self.start()
        response, page = yield self.fetch("GET", "/")
        self.assertEqual(response.code, 200)
        self.assertEqual(
            response.headers.getRawHeaders(b"content-type"), [b"text/html; charset=utf-8"]
        )
        [policy] = response.headers.getRawHeaders(b"content-security-policy")
        self.assertIn(b"script-src 'sha256-", policy)
        self.assertIn(b"connect-src 'self'", policy)
        self.assertIn(b'fetch("status.json"', page)
        # Nothing from elsewhere.
        self.assertNotIn(b"http://", page.replace(b"http://www.w3.org/2000/svg", b""))
        self.assertNotIn(b"https://", page)

    @inlineCallbacks
    def test_with_a_token_the_page_asks_to_sign_in(self):
        yield self.start(token="s3cret")
        response, page = yield self.fetch("GET", "/")
        self.assertEqual(response.code, 401)
        self.assertIn(b'<form method="post" action="login">', page)
        code, document = yield self.json("GET", "/status.json")
        self.assertEqual(code, 401)

    @inlineCallbacks
    def test_token_in_the_query_signs_in_and_leaves_the_url(self):
        yield self.start(token="s3cret")
        response, _ = yield self.fetch("GET", "/?token=s3cret")
        self.assertEqual(response.code, 303)
        self.assertEqual(response.headers.getRawHeaders(b"location"), [b"./"])
        cookie = self.session_of(response)
        self.assertNotIn(b"s3cret", cookie)
        response, page = yield self.fetch("GET", "/", cookie=cookie)
        self.assertEqual(response.code, 200)
        self.assertIn(b"status.json", page)
        response, body = yield self.fetch("GET", "/status.json", cookie=cookie)
        self.assertEqual(response.code, 200)
        self.assertEqual(json.loads(body)["upstreams"][0]["name"], "app")
        # The page's buttons: a drain with the cookie.
        response, body = yield self.fetch("POST", "/backends/app/0/drain", cookie=cookie)
        self.assertEqual((response.code, json.loads(body)["draining"]), (200, True))

    @inlineCallbacks
    def test_sign_in_form_posts_the_token(self):
        yield self.start(token="s3cret")
        response, _ = yield self.fetch("POST", "/login", body=b"token=s3cret")
        self.assertEqual(response.code, 303)
        cookie = self.session_of(response)
        response, _ = yield self.fetch("GET", "/status.json", cookie=cookie)
        self.assertEqual(response.code, 200)

    @inlineCallbacks
    def test_a_wrong_token_signs_nobody_in(self):
        yield self.start(token="s3cret")
        for method, path, body in [
            ("GET", "/?token=guess", b""),
            ("POST", "/login", b"token=guess"),
        ]:
            response, page = yield self.fetch(method, path, body=body)
            self.assertEqual(response.code, 401)
            self.assertIn(b"That is not the admin token.", page)
            self.assertIsNone(response.headers.getRawHeaders(b"set-cookie"))
        response, _ = yield self.fetch(
            "GET", "/status.json", cookie=COOKIE + b"=s3cret"
        )
        self.assertEqual(response.code, 401)

    @inlineCallbacks
    def test_the_bearer_token_still_opens_everything(self):
        yield self.start(token="s3cret")
        code, document = yield self.json("GET", "/status.json", token="s3cret")
        self.assertEqual(code, 200)
        response, _ = yield self.call("GET", "/", token="s3cret")
        self.assertEqual(response.code, 200)

    @inlineCallbacks
    def test_a_new_token_signs_browsers_out(self):
        yield self.start(token="s3cret")
        response, _ = yield self.fetch("GET", "/?token=s3cret")
        cookie = self.session_of(response)
        self.path.write_text(self.config("n3w"))
        self.assertEqual(self.proxy.reload(), [])
        response, _ = yield self.fetch("GET", "/status.json", cookie=cookie)
        self.assertEqual(response.code, 401)
