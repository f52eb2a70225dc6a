"""
Unit tests of the C{jwt} and C{oidc} filters as the configuration makes
them: their options' problems with key paths, their answers to requests
(with fixed keys, or a session cookie sealed here), session idle time and
maximum age on a clock, and what C{txrevproxy route} says of them.
"""

from __future__ import annotations

import json
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from twisted.internet.testing import MemoryReactorClock
from zope.interface.verify import verifyObject

from txrevproxy.config import ConfigError
from txrevproxy.filters import FilterContext, jwt_auth, oidc
from txrevproxy.filters.oidc_flow import Session
from txrevproxy.filters.session_cookie import CookieSealer
from txrevproxy.interfaces import IFilter
from txrevproxy.observe.accesslog import combined_line

from ..support.configs import document, parse
from ..support.filter_requests import FakeRequest
from ..support.oidc_provider import SigningKey

KEY = SigningKey("k1")
SECRET = "cookie-secret-0123456789-0123456789"


@pytest.mark.parametrize(
    "table, expected",
    [
        (
            'type = "jwt"\njwks_url = "https://idp.test/jwks"',
            "filters.auth.algorithms: required",
        ),
        (
            'type = "jwt"\nalgorithms = ["none"]\njwks_url = "https://idp.test/jwks"',
            "filters.auth.algorithms[0]: unknown value",
        ),
        (
            'type = "jwt"\nalgorithms = ["RS256"]',
            "filters.auth: needs jwks_url, keys, secret",
        ),
        (
            'type = "jwt"\nalgorithms = ["HS256"]\nkeys = ["k.pem"]',
            "filters.auth.secret: HS256 needs secret",
        ),
        (
            'type = "jwt"\nalgorithms = ["HS256"]\nsecret = "short"',
            "filters.auth.secret: a secret must be at least 32",
        ),
        (
            'type = "jwt"\nalgorithms = ["RS256"]\nkeys = ["missing.pem"]',
            "filters.auth.keys[0]: cannot read",
        ),
        (
            'type = "jwt"\nalgorithms = ["RS256"]\njwks_url = "https://i/j"\ntoken_from = ["body"]',
            "filters.auth.token_from[0]: expected",
        ),
        (
            'type = "jwt"\nalgorithms = ["RS256"]\njwks_url = "https://i/j"\nclaims_to_headers = { sub = "X User" }',
            "filters.auth.claims_to_headers.sub:",
        ),
        (
            'type = "jwt"\nalgorithms = ["RS256"]\njwks_url = "https://i/j"\nclaims_to_headers = { sub = "Content-Length" }',
            "filters.auth.claims_to_headers.sub: Content-Length is a field the proxy writes itself",
        ),
        (
            'type = "jwt"\nalgorithms = ["RS256"]\njwks_url = "https://i/j"\nclaims_to_headers = { sub = "Transfer-Encoding" }',
            "filters.auth.claims_to_headers.sub: Transfer-Encoding is a field the proxy writes itself",
        ),
        (
            'type = "oidc"\nissuer = "https://idp.test"\nclient_id = "a"\nclient_secret = "b"',
            "filters.auth.cookie_secrets: give cookie_secret",
        ),
        (
            'type = "oidc"\nissuer = "https://idp.test"\nclient_id = "a"\nclient_secret = "b"\ncookie_secret = "short"',
            "filters.auth.cookie_secret: expected a secret of at least 32",
        ),
        (
            'type = "oidc"\nissuer = "https://idp.test"\nclient_id = "a"\ncookie_secret = "%s"'
            % (SECRET,),
            "filters.auth.client_secret: give client_secret",
        ),
        (
            'type = "oidc"\nissuer = "https://idp.test"\nclient_id = "a"\nclient_secret = "b"\ncookie_secret = "%s"\nscopes = ["email"]'
            % (SECRET,),
            'filters.auth.scopes: must include "openid"',
        ),
        (
            'type = "oidc"\nissuer = "https://idp.test"\nclient_id = "a"\nclient_secret = "b"\ncookie_secret = "%s"\nalgorithms = ["HS256"]'
            % (SECRET,),
            "filters.auth.algorithms[0]: unknown value",
        ),
    ],
)
def test_option_problems_name_their_key_path(table, expected):
    with pytest.raises(ConfigError) as caught:
        parse(
            document(
                route='upstream = "app"\nfilters = ["auth"]',
                extra="[filters.auth]\n" + table,
            )
        )
    assert any(
        p.startswith(expected) for p in caught.value.problems
    ), caught.value.problems


def jwt_filter(tmp_path, **options):
    path = tmp_path / "key.json"
    path.write_text(json.dumps({"keys": [KEY.jwk()]}))
    table = {
        "algorithms": ["RS256"],
        "keys": [str(path)],
        "claims_to_headers": {"sub": "X-User"},
    }
    table.update(options)
    clock = MemoryReactorClock()
    clock.advance(time.time())
    made = jwt_auth.configure(table, FilterContext("auth", clock, None, str(tmp_path)))
    verifyObject(IFilter, made)
    return made


def test_jwt_query_parameter_token_and_header_mapping(tmp_path):
    auth = jwt_filter(tmp_path, token_from=["query:access_token"])
    token = KEY.sign({"sub": "alice", "exp": time.time() + 60})
    request = FakeRequest(
        uri=b"/x?access_token=" + token.encode(), headers=[(b"X-User", b"forged")]
    )
    assert auth.request(request) is None
    assert request.requestHeaders.getRawHeaders(b"x-user") == [b"alice"]


def test_jwt_refusal_removes_the_clients_copies(tmp_path):
    auth = jwt_filter(tmp_path)
    request = FakeRequest(
        headers=[(b"Authorization", b"Bearer nonsense"), (b"X-User", b"forged")]
    )
    answer = auth.request(request)
    assert answer.status == 401
    assert dict(answer.headers)[b"WWW-Authenticate"].startswith(
        b'Bearer realm="txrevproxy", error="invalid_token"'
    )
    assert request.requestHeaders.getRawHeaders(b"x-user") is None


def test_jwt_other_authorization_schemes_are_no_token(tmp_path):
    auth = jwt_filter(tmp_path)
    answer = auth.request(FakeRequest(headers=[(b"Authorization", b"Basic YTpi")]))
    assert dict(answer.headers)[b"WWW-Authenticate"] == b'Bearer realm="txrevproxy"'


def oidc_filter(clock, **options):
    table = {
        "issuer": "http://127.0.0.1:1",
        "client_id": "app",
        "client_secret": "x",
        "cookie_secrets": [SECRET],
        "session_idle": "1h",
        "session_max_age": "12h",
        "claims_to_headers": {"sub": "X-User"},
    }
    table.update(options)
    made = oidc.configure(table, FilterContext("sso", clock, None, "."))
    verifyObject(IFilter, made)
    return made


def session_cookie(session: Session) -> bytes:
    sealed = CookieSealer([SECRET.encode()]).seal(
        b"txrevproxy_session", session.payload()
    )
    return b"txrevproxy_session=" + sealed


def test_oidc_session_goes_through_until_idle_time_and_max_age():
    clock = MemoryReactorClock()
    clock.advance(100000)
    sso = oidc_filter(clock)
    session = Session({"sub": "alice"}, started=clock.seconds(), seen=clock.seconds())

    def ask(cookie, method=b"POST"):
        request = FakeRequest(
            method=method,
            headers=[(b"Cookie", cookie + b"; other=1"), (b"X-User", b"forged")],
        )
        return request, sso.request(request)

    request, verdict = ask(session_cookie(session))
    assert verdict is None
    assert request.requestHeaders.getRawHeaders(b"x-user") == [b"alice"]
    assert request.requestHeaders.getRawHeaders(b"cookie") == [b"other=1"]

    clock.advance(3599)
    request, verdict = ask(session_cookie(session))
    assert verdict is None
    headers = []
    sso.response(request, 200, headers)
    set_cookie = dict(headers)[b"Set-Cookie"]
    assert b"; HttpOnly; SameSite=Lax; Secure" in set_cookie  # an HTTPS site
    renewed = set_cookie.split(b";")[0]

    clock.advance(3599)
    assert ask(session_cookie(session))[1].status == 401
    assert ask(renewed)[1] is None

    late = Session(
        {"sub": "alice"}, started=clock.seconds() - 12 * 3600, seen=clock.seconds()
    )
    request, verdict = ask(session_cookie(late))
    assert verdict.status == 401
    assert request.requestHeaders.getRawHeaders(b"x-user") is None
    sso.close()


def test_oidc_cookie_sealed_with_another_secret_is_no_session():
    clock = MemoryReactorClock()
    sso = oidc_filter(clock)
    sealed = CookieSealer([b"x" * 32]).seal(
        b"txrevproxy_session", Session({"sub": "a"}, 0.0, 0.0).payload()
    )
    request = FakeRequest(
        method=b"POST", headers=[(b"Cookie", b"txrevproxy_session=" + sealed)]
    )
    assert sso.request(request).status == 401
    sso.close()


def test_route_command_describes_identity_filters(tmp_path):
    from txrevproxy.tools.explain import explain

    (tmp_path / "key.pem").write_bytes(
        KEY.private.public_key().public_bytes(
            Encoding.PEM, PublicFormat.SubjectPublicKeyInfo
        )
    )
    config = parse(
        document(
            route='upstream = "app"\nfilters = ["api"]',
            extra='[filters.api]\ntype = "jwt"\nalgorithms = ["RS256", "ES256"]\nkeys = ["%s"]\n'
            % (tmp_path / "key.pem",),
        )
    )
    lines = explain(config, "GET", "http://localhost:8080/x")
    assert (
        "filters:  api (route: JWT (RS256, ES256) from files and secrets) (run in this order; not run here)"
        in lines
    )


def test_documented_jwt_and_oidc_examples_are_valid(tmp_path):
    from txrevproxy.config.load import load_config

    from ..support.doc_blocks import literal_block

    jwt_block = literal_block("security.rst", 'type = "jwt"')
    oidc_block = literal_block("security.rst", 'type = "oidc"')
    path = tmp_path / "proxy.toml"
    path.write_text(
        document(
            route='upstream = "app"\nfilters = ["api-auth"]',
            extra=jwt_block + "\n" + oidc_block,
        )
    )
    environ = {"OIDC_CLIENT_SECRET": "from-the-environment", "SESSION_SECRET": "s" * 48}
    config = load_config(str(path), environ)
    assert config.filters["api-auth"].type == "jwt"
    assert config.filters["sso"].options["client_secret"] == "from-the-environment"


def test_jwt_removes_the_clients_underscored_and_connection_named_copies(tmp_path):
    """
    A client cannot pass its own C{X_User} to a backend that reads it as
    C{X-User}, nor name C{X-User} in C{Connection} to have the proxy drop
    the value it vouches for.
    """
    auth = jwt_filter(tmp_path)
    token = KEY.sign({"sub": "alice", "exp": time.time() + 60})
    request = FakeRequest(
        headers=[
            (b"Authorization", b"Bearer " + token.encode()),
            (b"X_User", b"admin"),
            (b"Connection", b"keep-alive, X-User"),
        ]
    )
    assert auth.request(request) is None
    fields = dict(
        (name.lower(), values)
        for name, values in request.requestHeaders.getAllRawHeaders()
    )
    assert fields[b"x-user"] == [b"alice"]
    assert b"x_user" not in fields
    assert fields[b"connection"] == [b"keep-alive"]


def test_jwt_token_in_the_query_is_hidden_from_the_logs_not_the_backend(tmp_path):
    auth = jwt_filter(tmp_path, token_from=["query:access_token"])
    token = KEY.sign({"sub": "alice", "exp": time.time() + 60}).encode()
    uri = b"/x?a=1&access%5Ftoken=" + token + b"&b=2"
    request = FakeRequest(uri=uri)
    assert auth.request(request) is None
    assert request.uri == uri
    assert request.logged_uri == b"/x?a=1&access%5Ftoken=REDACTED&b=2"
    request.clientproto, request.code, request.sentLength = b"HTTP/1.1", 200, 0
    request.timed_out = request.trace = None
    line = combined_line(request, b"date", 0.0, None, None, None)
    assert token not in line
    assert b'"GET /x?a=1&access%5Ftoken=REDACTED&b=2 HTTP/1.1"' in line
    refused = FakeRequest(uri=b"/x?access_token=forged")
    assert auth.request(refused).status == 401
    assert refused.logged_uri == b"/x?access_token=REDACTED"
