"""
A small OpenID Connect provider of the tests' own, on twisted.web, that
issues real RS256-signed tokens with PyJWT: discovery, JWK Set (with key
rotation), an authorization endpoint that approves at once (checking the
PKCE challenge's method), a token endpoint (authorization code with the
PKCE verifier, refresh tokens, client_secret_basic) and an end-session
endpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import time
from typing import Any, Dict, List, Optional
from urllib.parse import parse_qsl, urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm
from twisted.internet.defer import inlineCallbacks
from twisted.web import resource, server

from .loopback import listen

CLIENT_ID = "proxy"
CLIENT_SECRET = "proxy-secret-0123456789"


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


class SigningKey:
    """
    A private key and its kid.
    """

    def __init__(self, kid: str, private=None) -> None:
        self.kid = kid
        self.private = private or rsa_key()

    def jwk(self) -> Dict[str, Any]:
        data = RSAAlgorithm.to_jwk(self.private.public_key(), as_dict=True)
        data.update({"kid": self.kid, "use": "sig", "alg": "RS256"})
        return data

    def sign(self, claims: Dict[str, Any], algorithm: str = "RS256") -> str:
        return jwt.encode(
            claims, self.private, algorithm=algorithm, headers={"kid": self.kid}
        )


def _json(request, document, status: int = 200) -> bytes:
    request.setResponseCode(status)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps(document).encode("utf-8")


class Provider(resource.Resource):
    """
    The provider at C{issuer} (set with L{listening}).

    @ivar user: the claims of whoever logs in.
    @ivar lifetime: seconds the tokens it issues live.
    @ivar jwks_fetches: how many times its JWK Set was fetched.
    @ivar logouts: the queries of the end-session requests.
    @ivar token_requests: the forms the token endpoint got.
    @ivar client_auth: how clients authenticate at the token endpoint.
    @ivar end_session: whether it has an end-session endpoint.
    @ivar named_issuer: the issuer its discovery document names, if not
        its own.
    """

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.issuer = ""
        self.keys: List[SigningKey] = [SigningKey("key-1")]
        self.user: Dict[str, Any] = {
            "sub": "alice-id",
            "email": "alice@example.com",
            "email_verified": True,
            "preferred_username": "alice",
            "groups": ["staff"],
        }
        self.lifetime = 300
        self.client_auth = "client_secret_basic"
        self.end_session = True
        self.named_issuer = ""
        self.jwks_fetches = 0
        self.logouts: List[Dict[str, str]] = []
        self.token_requests: List[Dict[str, str]] = []
        self._rotations = 0
        self._codes: Dict[str, Dict[str, Any]] = {}
        self._refresh: Dict[str, Dict[str, Any]] = {}

    def listening(self, port: int) -> None:
        self.issuer = "http://127.0.0.1:%d" % (port,)

    def rotate(self, keep_old: bool = False) -> SigningKey:
        """
        Sign with a new key from now on.
        """
        self._rotations += 1
        key = SigningKey("key-%d" % (self._rotations + 1,))
        self.keys = ([key] + self.keys) if keep_old else [key]
        return key

    def token(self, **claims) -> str:
        """
        A token signed with the current key, for the issuer, valid now.
        """
        now = int(time.time())
        body = {"iss": self.issuer, "iat": now, "exp": now + self.lifetime}
        body.update(claims)
        return self.keys[0].sign(body)

    def render(self, request):
        path = request.path.decode("ascii")
        if path == "/.well-known/openid-configuration":
            discovery = {
                "issuer": self.named_issuer or self.issuer,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
                "jwks_uri": self.issuer + "/jwks",
                "token_endpoint_auth_methods_supported": [self.client_auth],
                "id_token_signing_alg_values_supported": ["RS256"],
                "code_challenge_methods_supported": ["S256"],
            }
            if self.end_session:
                discovery["end_session_endpoint"] = self.issuer + "/logout"
            return _json(request, discovery)
        if path == "/jwks":
            self.jwks_fetches += 1
            return _json(request, {"keys": [key.jwk() for key in self.keys]})
        query = dict(parse_qsl(request.uri.partition(b"?")[2].decode("ascii")))
        if path == "/authorize":
            return self._authorize(request, query)
        if path == "/token":
            return self._token(request)
        if path == "/logout":
            self.logouts.append(query)
            request.setResponseCode(302)
            request.setHeader(
                b"location", query["post_logout_redirect_uri"].encode("ascii")
            )
            return b""
        request.setResponseCode(404)
        return b""

    def _authorize(self, request, query: Dict[str, str]) -> bytes:
        assert query["response_type"] == "code"
        assert query["client_id"] == CLIENT_ID
        assert query["code_challenge_method"] == "S256"
        assert "openid" in query["scope"].split()
        code = secrets.token_urlsafe(16)
        self._codes[code] = query
        target = (
            query["redirect_uri"]
            + "?"
            + urlencode({"code": code, "state": query["state"]})
        )
        request.setResponseCode(302)
        request.setHeader(b"location", target.encode("ascii"))
        return b""

    def _client_ok(self, request, form: Dict[str, str]) -> bool:
        if self.client_auth == "client_secret_post":
            return (form.get("client_id"), form.get("client_secret")) == (
                CLIENT_ID,
                CLIENT_SECRET,
            )
        scheme, _, value = (request.getHeader(b"authorization") or b"").partition(b" ")
        if scheme != b"Basic":
            return False
        return base64.b64decode(value).decode("utf-8") == "%s:%s" % (
            CLIENT_ID,
            CLIENT_SECRET,
        )

    def _token(self, request) -> bytes:
        form = {k.decode(): v[0].decode() for k, v in request.args.items()}
        self.token_requests.append(form)
        if not self._client_ok(request, form):
            return _json(request, {"error": "invalid_client"}, 401)
        if form.get("grant_type") == "authorization_code":
            started = self._codes.pop(form.get("code", ""), None)
            if started is None or started["redirect_uri"] != form.get("redirect_uri"):
                return _json(request, {"error": "invalid_grant"}, 400)
            verifier = form.get("code_verifier", "").encode("ascii")
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(verifier).digest()
            ).rstrip(b"=")
            if challenge.decode("ascii") != started["code_challenge"]:
                return _json(
                    request,
                    {"error": "invalid_grant", "error_description": "PKCE"},
                    400,
                )
            return _json(request, self._tokens(started.get("nonce")))
        if form.get("grant_type") == "refresh_token":
            if self._refresh.pop(form.get("refresh_token", ""), None) is None:
                return _json(request, {"error": "invalid_grant"}, 400)
            return _json(request, self._tokens(None))
        return _json(request, {"error": "unsupported_grant_type"}, 400)

    def _tokens(self, nonce: Optional[str]) -> Dict[str, Any]:
        claims = dict(self.user, aud=CLIENT_ID)
        if nonce is not None:
            claims["nonce"] = nonce
        refresh = secrets.token_urlsafe(24)
        self._refresh[refresh] = claims
        return {
            "access_token": secrets.token_urlsafe(24),
            "token_type": "Bearer",
            "expires_in": self.lifetime,
            "refresh_token": refresh,
            "id_token": self.token(**claims),
        }


@inlineCallbacks
def serve_provider(testcase, **attributes):
    """
    A L{Provider} listening on 127.0.0.1, stopped at the end of the test.

    @param attributes: set on the provider before it serves.
    """
    provider = Provider()
    for name, value in attributes.items():
        setattr(provider, name, value)
    port = yield listen(server.Site(provider), testcase)
    provider.listening(port)
    return provider
