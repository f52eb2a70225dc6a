"""
The C{jwt} and C{oidc} filters under C{twistd -n txrevproxy}, configured
with the documented keys and secrets from the environment: an API token
and a browser login against the tests' own provider, in front of an
echoing backend.
"""

from __future__ import annotations

import os

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from ..support.loopback import CountingSite, Echo, echoed_headers, listen
from ..support.oidc_provider import CLIENT_ID, CLIENT_SECRET, serve_provider
from ..support.processes import proxy_process, temporary_directory
from .test_oidc_integration import COOKIE_SECRET, Browser

#: The configuration, C{{port}} filled in by L{proxy_process} (so its own
#: braces are doubled), the capitalised words by the test.
CONFIG = """
[listeners.web]
endpoint = "tcp:{port}:interface=127.0.0.1"

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:BACKEND" }}]

[filters.api-auth]
type = "jwt"
algorithms = ["RS256"]
jwks_url = "ISSUER/jwks"
issuer = "ISSUER"
audience = "api"
claims_to_headers = {{ sub = "X-User" }}

[filters.sso]
type = "oidc"
issuer = "ISSUER"
client_id = "CLIENT_ID"
client_secret = "${{OIDC_CLIENT_SECRET}}"
cookie_secrets = ["${{SESSION_SECRET}}"]
claims_to_headers = {{ email = "X-Email" }}

[[routes]]
path = "/api/"
upstream = "app"
filters = ["api-auth"]

[[routes]]
path = "/"
upstream = "app"
filters = ["sso"]
"""


class IdentityProcessTests(TestCase):
    @inlineCallbacks
    def test_token_and_login_through_twistd(self):
        backend_port = yield listen(CountingSite(Echo()), self)
        provider = yield serve_provider(self)
        os.environ["OIDC_CLIENT_SECRET"] = CLIENT_SECRET
        os.environ["SESSION_SECRET"] = COOKIE_SECRET
        self.addCleanup(os.environ.pop, "OIDC_CLIENT_SECRET")
        self.addCleanup(os.environ.pop, "SESSION_SECRET")
        text = (
            CONFIG.replace("BACKEND", str(backend_port))
            .replace("ISSUER", provider.issuer)
            .replace("CLIENT_ID", CLIENT_ID)
        )
        with proxy_process(temporary_directory(self), [], text) as proxy:
            base = "http://127.0.0.1:%d" % (proxy.port,)
            browser = Browser()
            token = provider.token(aud="api", sub="robot")
            response, body = yield browser.go(
                base + "/api/orders", headers={"Authorization": "Bearer " + token}
            )
            self.assertEqual(response.code, 200)
            self.assertEqual(echoed_headers(body)[b"x-user"], [b"robot"])
            response, _ = yield browser.go(base + "/api/orders")
            self.assertEqual(response.code, 401)
            response, body = yield browser.go(base + "/home")
            self.assertEqual(response.code, 200)
            self.assertEqual(echoed_headers(body)[b"x-email"], [b"alice@example.com"])
