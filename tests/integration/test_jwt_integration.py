"""
The C{jwt} filter over loopback: a real token issuer (the tests' own
provider) whose JWK Set the proxy fetches, in front of a backend that
echoes the headers it got.
"""

from __future__ import annotations

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService

from ..support.loopback import CountingSite, Echo, echoed_headers, listen, raw_exchange
from ..support.oidc_provider import serve_provider
from .test_filters_integration import config, parse_response, request


@inlineCallbacks
def start_behind_filter(testcase, name: str, table: str, **provider_attributes):
    """
    An echoing backend (C{testcase.backend}), the tests' provider
    (C{testcase.provider}) and a proxy (C{testcase.service}, with
    C{testcase.config}) whose route runs the filter of C{table} (its
    C{{issuer}} filled in) under C{name}.

    @param provider_attributes: the provider's, before the proxy starts.

    @return: a L{Deferred} firing with the proxy's port.
    """
    testcase.backend = CountingSite(Echo())
    backend_port = yield listen(testcase.backend, testcase)
    testcase.provider = yield serve_provider(testcase, **provider_attributes)
    extra = "[filters.%s]\n%s" % (name, table.format(issuer=testcase.provider.issuer))
    testcase.config = config(
        backend_port, route='filters = ["%s"]' % (name,), extra=extra
    )
    testcase.service = ProxyService(testcase.config, reactor)
    testcase.service.startService()
    testcase.addCleanup(testcase.service.stopService)
    return testcase.service.ports[0].getHost().port


class JWTFilterTests(TestCase):
    @inlineCallbacks
    def setUp(self):
        self.port = yield start_behind_filter(
            self,
            "api-auth",
            """
type = "jwt"
algorithms = ["RS256"]
jwks_url = "{issuer}/jwks"
issuer = "{issuer}"
audience = "api"
required_claims = ["exp", "sub"]
claims = {{ role = ["admin", "ops"] }}
claims_to_headers = {{ sub = "X-User", email = "X-Email" }}
token_from = ["header", "cookie:token"]
jwks_min_refresh = "1h"
realm = "api"
""",
        )

    def token(self, **claims):
        body = {
            "aud": "api",
            "sub": "alice",
            "email": "alice@example.com",
            "role": "admin",
        }
        body.update(claims)
        return self.provider.token(**body)

    @inlineCallbacks
    def fetch(self, headers=()):
        raw = yield raw_exchange(self.port, request(headers=headers))
        return parse_response(raw)

    @inlineCallbacks
    def test_valid_token_passes_with_mapped_claims_and_forged_copies_removed(self):
        status, _, body = yield self.fetch(
            [
                (b"Authorization", b"Bearer " + self.token().encode()),
                (b"X-User", b"mallory"),
                (b"X-Email", b"mallory@evil.test"),
            ]
        )
        self.assertEqual(status, 200)
        seen = echoed_headers(body)
        self.assertEqual(seen[b"x-user"], [b"alice"])
        self.assertEqual(seen[b"x-email"], [b"alice@example.com"])

    @inlineCallbacks
    def test_token_in_a_cookie_is_accepted(self):
        status, _, body = yield self.fetch(
            [(b"Cookie", b"a=1; token=" + self.token().encode())]
        )
        self.assertEqual(status, 200)
        self.assertEqual(echoed_headers(body)[b"x-user"], [b"alice"])

    @inlineCallbacks
    def test_no_token_is_401_with_a_bare_challenge(self):
        status, fields, _ = yield self.fetch([(b"X-User", b"mallory")])
        self.assertEqual(status, 401)
        self.assertEqual(fields[b"www-authenticate"], b'Bearer realm="api"')
        self.assertEqual(self.backend.connections, 0)

    @inlineCallbacks
    def test_expired_token_is_401_invalid_token(self):
        status, fields, _ = yield self.fetch(
            [(b"Authorization", b"Bearer " + self.token(exp=1000).encode())]
        )
        self.assertEqual(status, 401)
        self.assertEqual(
            fields[b"www-authenticate"],
            b'Bearer realm="api", error="invalid_token", error_description="token expired"',
        )

    @inlineCallbacks
    def test_wrong_role_is_403_insufficient_scope(self):
        status, fields, _ = yield self.fetch(
            [(b"Authorization", b"Bearer " + self.token(role="guest").encode())]
        )
        self.assertEqual(status, 403)
        self.assertIn(b'error="insufficient_scope"', fields[b"www-authenticate"])

    @inlineCallbacks
    def test_key_rotation_at_the_issuer_is_picked_up_on_kid_miss_once(self):
        yield self.fetch([(b"Authorization", b"Bearer " + self.token().encode())])
        fetched = self.provider.jwks_fetches
        self.provider.rotate()
        rotated = self.token()
        status, _, body = yield self.fetch(
            [(b"Authorization", b"Bearer " + rotated.encode())]
        )
        self.assertEqual(status, 200)
        self.assertEqual(echoed_headers(body)[b"x-user"], [b"alice"])
        self.assertEqual(self.provider.jwks_fetches, fetched + 1)
        # A key nobody knows: the set was fetched less than
        # jwks_min_refresh ago, so the issuer is not asked again.
        self.provider.rotate()
        status, fields, _ = yield self.fetch(
            [(b"Authorization", b"Bearer " + self.token().encode())]
        )
        self.assertEqual(status, 401)
        self.assertIn(b"no key for this token", fields[b"www-authenticate"])
        self.assertEqual(self.provider.jwks_fetches, fetched + 1)

    @inlineCallbacks
    def test_reload_keeps_the_fetched_key_set(self):
        """
        A reload makes new filters: the one of the same C{jwks_url} gets
        the key set already fetched, and the issuer is not asked again.
        """
        status, _, _ = yield self.fetch(
            [(b"Authorization", b"Bearer " + self.token().encode())]
        )
        self.assertEqual(status, 200)
        fetched = self.provider.jwks_fetches
        self.assertEqual(self.service.reload(self.config), [])
        status, _, body = yield self.fetch(
            [(b"Authorization", b"Bearer " + self.token().encode())]
        )
        self.assertEqual(status, 200)
        self.assertEqual(self.provider.jwks_fetches, fetched)
