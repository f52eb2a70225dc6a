"""
C{type = "jwt"}: requests must carry a JSON Web Token (RFC 7519) signed by
a trusted key, as an OAuth 2.0 bearer token (RFC 6750), a cookie or a
query parameter.

The accepted algorithms are listed in the configuration (C{none} never is);
keys come from files, a shared secret (HMAC), or a JWK Set URL fetched in
the background (L{txrevproxy.filters.jwks}).  A token whose key is unknown
waits for the next fetch of the set, which happens at most once per
C{jwks_min_refresh}.  Claims may be mapped to request header fields for
the backend (L{txrevproxy.filters.claim_headers}).

Answers follow RFC 6750 section 3: C{401} with C{WWW-Authenticate: Bearer
realm="..."} without a token, with C{error="invalid_token"} for a bad one,
and C{403} with C{error="insufficient_scope"} for a good token whose claims
do not allow the request.  Tokens are never logged.
"""

from __future__ import annotations

from typing import Any, Optional, Tuple, Union
from urllib.parse import parse_qsl, unquote_plus

import attr
from twisted.internet.defer import Deferred
from zope.interface import implementer

from ..config.schema import MODEL_DEFAULT, Field, Invalid, Table, array_of, expected
from ..config.units import parse_duration
from ..config.values import cookie_name, duration, file_path, http_url, one_of
from ..http.headers import cookie_value
from ..interfaces import Answer, IFilter
from .basic_auth import realm
from .claim_headers import ClaimHeaders, claims_to_headers
from .jwks import (
    FetchedKeys,
    FixedKeys,
    KeyFileError,
    read_key_file,
    secret_keys,
    verified_claims,
)
from .tokens import ALGORITHMS, TokenRefused, TokenRules


def leeway(value: Any) -> float:
    """
    A duration that may be zero (C{"0s"}): the clock difference allowed.
    """
    if not isinstance(value, str):
        raise expected('a duration such as "30s"', value)
    try:
        return parse_duration(value)
    except ValueError as error:
        raise Invalid(str(error))


def text(value: Any) -> str:
    """
    A string that is not empty (an issuer, a claim's name, a client ID).
    """
    if not isinstance(value, str) or not value:
        raise expected("a string", value)
    return value


def audience(value: Any) -> Tuple[str, ...]:
    """
    One audience or an array of them (a token must name one).
    """
    if isinstance(value, str):
        value = [value]
    return array_of(text, min_items=1, what='a string or an array such as ["api"]')(
        value
    )


def _claim_value(value: Any) -> Tuple[Any, ...]:
    values = value if isinstance(value, list) else [value]
    if not values or not all(
        isinstance(each, (str, int, float, bool)) for each in values
    ):
        raise expected("a string, number, boolean or an array of them", value)
    return tuple(values)


def claim_rules(value: Any) -> Tuple[Tuple[str, Tuple[Any, ...]], ...]:
    """
    The converter of a C{claims} table: a claim's name to the value it
    must have, or an array of values it may have.
    """
    if not isinstance(value, dict):
        raise expected('a table such as { role = "admin" }', value)
    return tuple((name, _claim_value(each)) for name, each in value.items())


def hidden_parameter(uri: bytes, name: str) -> bytes:
    """
    C{uri} with the value of the query parameter C{name} (however it is
    percent-encoded) replaced by C{REDACTED}: the target as logs may write
    it when a token came in the query.
    """
    path, mark, query = uri.partition(b"?")
    if not mark:
        return uri
    pairs = []
    for pair in query.split(b"&"):
        key, equals, _ = pair.partition(b"=")
        if equals and unquote_plus(key.decode("latin-1"), "latin-1") == name:
            pair = key + b"=REDACTED"
        pairs.append(pair)
    return path + b"?" + b"&".join(pairs)


def token_place(value: Any) -> Tuple[str, str]:
    """
    Where a token is looked for: C{"header"} (C{Authorization: Bearer}),
    C{"cookie:NAME"} or C{"query:NAME"}.
    """
    what = '"header", "cookie:NAME" or "query:NAME"'
    if value == "header":
        return ("header", "")
    if isinstance(value, str):
        kind, _, name = value.partition(":")
        if kind in ("cookie", "query") and name:
            return (kind, cookie_name(name))
    raise expected(what, value)


@attr.s(frozen=True, auto_attribs=True)
class Options:
    algorithms: Tuple[str, ...]
    jwks_url: Optional[str] = None
    keys: Tuple[str, ...] = ()
    secret: Optional[str] = None
    secret_file: Optional[str] = None
    issuer: Optional[str] = None
    audience: Tuple[str, ...] = ()
    leeway: float = 30.0
    required_claims: Tuple[str, ...] = ("exp",)
    claims: Tuple[Tuple[str, Tuple[Any, ...]], ...] = ()
    token_from: Tuple[Tuple[str, str], ...] = (("header", ""),)
    claims_to_headers: Tuple[Tuple[str, str], ...] = ()
    jwks_refresh: float = 600.0
    jwks_min_refresh: float = 30.0
    realm: str = "txrevproxy"


def _one_key_source(arguments):
    symmetric = [a for a in arguments["algorithms"] if a.startswith("HS")]
    secret = (
        arguments.get("secret") is not None or arguments.get("secret_file") is not None
    )
    if arguments.get("secret") is not None and arguments.get("secret_file") is not None:
        yield (".secret", "give secret or secret_file, not both")
    if symmetric and not secret:
        yield (".secret", "%s needs secret or secret_file" % (symmetric[0],))
    if secret and not symmetric:
        yield (
            ".secret",
            'a secret is only used by the HS algorithms: add "HS256" to algorithms',
        )
    if arguments.get("jwks_url") and (arguments.get("keys") or secret):
        yield (".jwks_url", "give jwks_url, or keys and secrets, not both")
    if not (arguments.get("jwks_url") or arguments.get("keys") or secret):
        yield ("", "needs jwks_url, keys, secret or secret_file")


OPTIONS = Table(
    Options,
    {
        "algorithms": Field(
            array_of(
                one_of(*ALGORITHMS), min_items=1, what='an array such as ["RS256"]'
            ),
            missing='required: the signature algorithms accepted, such as ["RS256"]',
        ),
        "jwks_url": Field(
            http_url("https://login.example.com/.well-known/jwks.json"),
            default=MODEL_DEFAULT,
        ),
        "keys": Field(array_of(file_path, what="an array of key files"), default=[]),
        "secret": Field(text, default=MODEL_DEFAULT),
        "secret_file": Field(file_path, default=MODEL_DEFAULT),
        "issuer": Field(text, default=MODEL_DEFAULT),
        "audience": Field(audience, default=MODEL_DEFAULT),
        "leeway": Field(leeway, default="30s"),
        "required_claims": Field(
            array_of(text, what='an array such as ["exp", "sub"]'), default=["exp"]
        ),
        "claims": Field(claim_rules, default={}),
        "token_from": Field(
            array_of(
                token_place,
                min_items=1,
                what='an array such as ["header", "cookie:token"]',
            ),
            default=["header"],
        ),
        "claims_to_headers": Field(claims_to_headers, default={}),
        "jwks_refresh": Field(duration, default="10m"),
        "jwks_min_refresh": Field(duration, default="30s"),
        "realm": Field(realm, default="txrevproxy"),
    },
    checks=(_one_key_source,),
)


def bearer_challenge(realm: str, refused: Optional[TokenRefused] = None) -> Answer:
    """
    The answer to a request without an acceptable token (RFC 6750
    section 3): 401 without one or with a bad one, 403 for one whose
    claims do not allow the request.
    """
    challenge = 'Bearer realm="%s"' % (realm,)
    status = 401
    if refused is not None:
        challenge += ', error="%s", error_description="%s"' % (
            refused.error,
            refused.description.replace('"', "'"),
        )
        if refused.error == "insufficient_scope":
            status = 403
    return Answer(status, ((b"WWW-Authenticate", challenge.encode("utf-8")),))


@implementer(IFilter)
class JWTAuth:
    """
    @ivar description: what C{txrevproxy route} says of the filter.
    """

    def __init__(self, options: Options, rules: TokenRules, keys, clock) -> None:
        self._rules = rules
        self._keys = keys
        self._clock = clock
        self._places = options.token_from
        self._query_names = tuple(
            name for kind, name in self._places if kind == "query"
        )
        self._realm = options.realm
        self._headers = ClaimHeaders(options.claims_to_headers)
        self.description = "JWT (%s) from %s" % (
            ", ".join(rules.algorithms),
            options.jwks_url or "files and secrets",
        )

    def token(self, request) -> Optional[str]:
        """
        The token a request carries, from the first place that has one.
        """
        for kind, name in self._places:
            found = None
            if kind == "header":
                for value in request.requestHeaders.getRawHeaders(b"authorization", []):
                    scheme, _, credentials = value.strip().partition(b" ")
                    if scheme.lower() == b"bearer" and credentials.strip():
                        found = credentials.strip()
            elif kind == "cookie":
                found = cookie_value(
                    request.requestHeaders.getRawHeaders(b"cookie"),
                    name.encode("ascii"),
                )
            else:
                _, _, query = request.uri.partition(b"?")
                for key, value in parse_qsl(query.decode("latin-1")):
                    if key == name:
                        found = value.encode("latin-1")
            if found:
                return found.decode("latin-1")
        return None

    def request(self, request) -> Union[None, Answer, Deferred]:
        if self._query_names and b"?" in request.uri:
            # A token in the query would otherwise be written to the logs.
            logged = request.uri
            for name in self._query_names:
                logged = hidden_parameter(logged, name)
            request.logged_uri = logged
        token = self.token(request)
        if token is None:
            self._headers.remove(request)
            return bearer_challenge(self._realm)
        try:
            claims = verified_claims(token, self._keys, self._rules, self._clock)
        except TokenRefused as refused:
            return self._refused(request, refused)
        if isinstance(claims, Deferred):
            return claims.addCallbacks(
                lambda claims: self._admit(request, claims),
                self._failed,
                errbackArgs=(request,),
            )
        return self._admit(request, claims)

    def _admit(self, request, claims) -> None:
        self._headers.apply(request, claims)
        return None

    def _failed(self, reason, request) -> Answer:
        reason.trap(TokenRefused)
        return self._refused(request, reason.value)

    def _refused(self, request, refused: TokenRefused) -> Answer:
        self._headers.remove(request)
        return bearer_challenge(self._realm, refused)

    def response(self, request, status, headers) -> None:
        return None

    def close(self):
        return self._keys.close()


def _secret(parsed: Options, context) -> Optional[bytes]:
    if parsed.secret is not None:
        secret = parsed.secret.encode("utf-8")
        where = ".secret"
    elif parsed.secret_file is not None:
        where = ".secret_file"
        try:
            with open(context.path(parsed.secret_file), "rb") as file:
                secret = file.read().strip()
        except OSError as error:
            raise Invalid(
                problems=[
                    (where, "cannot read %s: %s" % (parsed.secret_file, error.strerror))
                ]
            )
    else:
        return None
    if len(secret) < 32:
        raise Invalid(problems=[(where, "a secret must be at least 32 bytes long")])
    return secret


def configure(options, context) -> JWTAuth:
    parsed = OPTIONS(options)
    rules = TokenRules(
        algorithms=parsed.algorithms,
        issuer=parsed.issuer,
        audience=parsed.audience,
        leeway=parsed.leeway,
        required_claims=parsed.required_claims,
        claims=parsed.claims,
    )
    found: Tuple = ()
    for index, name in enumerate(parsed.keys):
        try:
            found += read_key_file(context.path(name), parsed.algorithms)
        except KeyFileError as error:
            raise Invalid(problems=[(".keys[%d]" % (index,), str(error))])
    secret = _secret(parsed, context)
    if secret is not None:
        found += secret_keys(secret, parsed.algorithms)
    if parsed.jwks_url is not None and context.reactor is not None:
        keys = FetchedKeys(
            context.reactor,
            parsed.jwks_url,
            parsed.algorithms,
            parsed.jwks_refresh,
            parsed.jwks_min_refresh,
        )
    else:
        keys = FixedKeys(found)
    return JWTAuth(parsed, rules, keys, context.reactor)
