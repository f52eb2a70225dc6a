"""
The C{oidc} filter over loopback: a browser (treq with a cookie jar,
following redirects by hand) logs in through the proxy with the tests' own
OpenID Connect provider, and reaches a backend that echoes the headers it
got.
"""

from __future__ import annotations

from http.cookiejar import CookieJar
from urllib.parse import parse_qs, urljoin, urlsplit

import treq
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from ..support.loopback import echoed_headers
from ..support.oidc_provider import CLIENT_ID, CLIENT_SECRET
from .test_jwt_integration import start_behind_filter

COOKIE_SECRET = "cookie-secret-0123456789-0123456789"


class Browser:
    """
    A cookie-keeping client that follows redirects one hop at a time and
    remembers them.
    """

    def __init__(self) -> None:
        self.jar = CookieJar()
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPClient(Agent(reactor, pool=pool), cookiejar=self.jar)
        self.hops = []

    @inlineCallbacks
    def go(self, url, method="GET", headers=None, follow=True):
        for _ in range(10):
            response = yield self.http.request(
                method, url, headers=headers, allow_redirects=False
            )
            body = yield treq.content(response)
            self.hops.append((url, response.code, response))
            location = response.headers.getRawHeaders(b"location")
            if not follow or response.code not in (301, 302, 303) or not location:
                return response, body
            url = urljoin(url, location[0].decode("ascii"))
            method = "GET"
        raise AssertionError("too many redirects")


class SSOProxy(TestCase):
    """
    A proxy whose route logs browsers in with the tests' provider (set up
    with C{provider_attributes}).
    """

    provider_attributes: dict = {}

    @inlineCallbacks
    def setUp(self):
        self.port = yield start_behind_filter(
            self,
            "sso",
            """
type = "oidc"
issuer = "{issuer}"
client_id = "%s"
client_secret = "%s"
cookie_secrets = ["%s"]
allowed_emails = ["@example.com"]
claims_to_headers = {{ sub = "X-User", email = "X-Email" }}
""" % (CLIENT_ID, CLIENT_SECRET, COOKIE_SECRET),
            **self.provider_attributes,
        )
        self.base = "http://127.0.0.1:%d" % (self.port,)
        self.browser = Browser()

    @inlineCallbacks
    def login(self):
        response, body = yield self.browser.go(
            self.base + "/app/page?x=1", headers={"X-User": "forged"}
        )
        return response, body


class OIDCLoginTests(SSOProxy):
    @inlineCallbacks
    def test_full_login_reaches_the_original_url_with_the_user(self):
        response, body = yield self.login()
        self.assertEqual(response.code, 200)
        self.assertTrue(body.startswith(b"GET /app/page?x=1 "), body)
        seen = echoed_headers(body)
        self.assertEqual(seen[b"x-user"], [b"alice-id"])
        self.assertEqual(seen[b"x-email"], [b"alice@example.com"])
        self.assertNotIn(b"cookie", seen)
        urls = [urlsplit(url) for url, _, _ in self.browser.hops]
        self.assertEqual(
            [(u.port, u.path) for u in urls],
            [
                (self.port, "/app/page"),
                (urlsplit(self.provider.issuer).port, "/authorize"),
                (self.port, "/oauth2/callback"),
                (self.port, "/app/page"),
            ],
        )
        callback = self.browser.hops[2][2]
        session = [
            c
            for c in callback.headers.getRawHeaders(b"set-cookie")
            if c.startswith(b"txrevproxy_session=")
        ]
        self.assertEqual(len(session), 1)
        self.assertIn(b"HttpOnly", session[0])
        self.assertIn(b"SameSite=Lax", session[0])
        self.assertNotIn(b"Secure", session[0])  # a plain HTTP listener
        exchange = self.provider.token_requests[0]
        self.assertEqual(exchange["grant_type"], "authorization_code")
        self.assertIn("code_verifier", exchange)
        # Logged in: the next request goes straight through.
        response, body = yield self.browser.go(self.base + "/other")
        self.assertEqual(response.code, 200)
        self.assertEqual(len(self.provider.token_requests), 1)

    @inlineCallbacks
    def test_scripts_and_posts_without_a_session_get_401(self):
        response, _ = yield self.browser.go(
            self.base + "/api", headers={"Accept": "application/json"}
        )
        self.assertEqual(response.code, 401)
        response, _ = yield self.browser.go(self.base + "/form", method="POST")
        self.assertEqual(response.code, 401)
        self.assertEqual(self.backend.connections, 0)

    @inlineCallbacks
    def test_user_outside_allowed_emails_is_refused(self):
        self.provider.user = dict(self.provider.user, email="mallory@evil.test")
        response, _ = yield self.login()
        self.assertEqual(response.code, 403)
        self.assertEqual(self.backend.connections, 0)

    @inlineCallbacks
    def test_callback_with_another_state_is_refused(self):
        response, _ = yield self.browser.go(self.base + "/app", follow=False)
        authorize = response.headers.getRawHeaders(b"location")[0].decode("ascii")
        query = parse_qs(urlsplit(authorize).query)
        self.assertEqual(query["code_challenge_method"], ["S256"])
        response, _ = yield self.browser.go(
            self.base + "/oauth2/callback?code=whatever&state=forged", follow=False
        )
        self.assertEqual(response.code, 400)
        self.assertEqual(self.provider.token_requests, [])
        stranger = Browser()
        response, _ = yield stranger.go(
            self.base + "/oauth2/callback?code=x&state=" + query["state"][0],
            follow=False,
        )
        self.assertEqual(response.code, 400)

    @inlineCallbacks
    def test_logins_started_in_two_tabs_both_come_back(self):
        first, _ = yield self.browser.go(self.base + "/first", follow=False)
        second, _ = yield self.browser.go(self.base + "/second", follow=False)
        for response, path in ((first, b"/first"), (second, b"/second")):
            location = response.headers.getRawHeaders(b"location")[0].decode("ascii")
            done, body = yield self.browser.go(location)
            self.assertEqual(done.code, 200)
            self.assertTrue(body.startswith(b"GET " + path + b" "), body)

    @inlineCallbacks
    def test_expired_tokens_are_refreshed_with_the_refresh_token(self):
        """
        Tokens that expire at once: every request with the session renews
        it, each time with the refresh token the last renewal gave (the
        provider takes each one only once), and the browser stays in.
        """
        self.provider.lifetime = 0
        response, _ = yield self.login()
        self.assertEqual(response.code, 200)
        response, body = yield self.browser.go(self.base + "/again", method="POST")
        self.assertEqual(response.code, 200)
        self.assertEqual(echoed_headers(body)[b"x-user"], [b"alice-id"])
        self.assertEqual(
            [form["grant_type"] for form in self.provider.token_requests],
            ["authorization_code", "refresh_token", "refresh_token"],
        )
        self.assertTrue(
            any(
                c.startswith(b"txrevproxy_session=")
                for c in response.headers.getRawHeaders(b"set-cookie")
            )
        )

    @inlineCallbacks
    def test_logout_ends_the_session_here_and_at_the_provider(self):
        yield self.login()
        response, _ = yield self.browser.go(self.base + "/oauth2/logout", follow=False)
        self.assertEqual(response.code, 302)
        location = response.headers.getRawHeaders(b"location")[0].decode("ascii")
        self.assertTrue(location.startswith(self.provider.issuer + "/logout?"))
        query = parse_qs(urlsplit(location).query)
        self.assertEqual(query["post_logout_redirect_uri"], [self.base + "/"])
        self.assertIn("id_token_hint", query)
        cleared = response.headers.getRawHeaders(b"set-cookie")[0]
        self.assertTrue(cleared.startswith(b"txrevproxy_session=;"))
        self.assertIn(b"Max-Age=0", cleared)
        yield self.browser.go(location, follow=False)
        self.assertEqual(len(self.provider.logouts), 1)
        response, _ = yield self.browser.go(self.base + "/form", method="POST")
        self.assertEqual(response.code, 401)

    @inlineCallbacks
    def test_provider_refusing_the_login_is_403(self):
        response, _ = yield self.browser.go(self.base + "/app", follow=False)
        authorize = response.headers.getRawHeaders(b"location")[0].decode("ascii")
        state = parse_qs(urlsplit(authorize).query)["state"][0]
        response, _ = yield self.browser.go(
            self.base + "/oauth2/callback?error=access_denied&state=" + state
        )
        self.assertEqual(response.code, 403)
        self.assertEqual(self.provider.token_requests, [])

    @inlineCallbacks
    def test_id_token_too_large_for_the_cookie_is_left_out(self):
        self.provider.user = dict(self.provider.user, picture="p" * 4000)
        response, body = yield self.login()
        self.assertEqual(response.code, 200)
        self.assertEqual(echoed_headers(body)[b"x-user"], [b"alice-id"])
        response, _ = yield self.browser.go(self.base + "/oauth2/logout", follow=False)
        location = response.headers.getRawHeaders(b"location")[0].decode("ascii")
        query = parse_qs(urlsplit(location).query)
        self.assertNotIn("id_token_hint", query)
        self.assertEqual(query["client_id"], [CLIENT_ID])


class ClientSecretPostTests(SSOProxy):
    provider_attributes = {"client_auth": "client_secret_post", "end_session": False}

    @inlineCallbacks
    def test_login_with_the_secret_in_the_form(self):
        response, body = yield self.login()
        self.assertEqual(response.code, 200)
        self.assertEqual(self.provider.token_requests[0]["client_id"], CLIENT_ID)

    @inlineCallbacks
    def test_logout_without_end_session_endpoint_goes_home(self):
        yield self.login()
        response, _ = yield self.browser.go(self.base + "/oauth2/logout", follow=False)
        self.assertEqual(
            response.headers.getRawHeaders(b"location"), [self.base.encode() + b"/"]
        )


class ForeignIssuerTests(SSOProxy):
    provider_attributes = {"named_issuer": "http://elsewhere.test"}

    @inlineCallbacks
    def test_discovery_naming_another_issuer_is_502(self):
        response, _ = yield self.browser.go(self.base + "/app", follow=False)
        self.assertEqual(response.code, 502)
        self.assertEqual(self.backend.connections, 0)
