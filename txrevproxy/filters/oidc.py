"""
C{type = "oidc"}: browsers log in with an OpenID Connect provider before
they reach the backend (single sign-on for an application that knows
nothing of it).

A browser without a session is sent to the provider's authorization
endpoint (the authorization code flow with PKCE, a state and a nonce kept
in a short-lived sealed cookie); the provider sends it back to
C{redirect_path}, where the filter exchanges the code for tokens, checks
the ID token (signature with the provider's JWK Set, issuer, audience,
nonce, expiry), checks C{allowed_emails} and C{allowed_groups}, and keeps
the session in a sealed cookie (L{txrevproxy.filters.session_cookie})
before sending the browser back where it was going.  Requests with a
session go through with the claims of C{claims_to_headers} as header
fields; a session whose tokens expired is refreshed with the refresh
token.  C{logout_path} ends the session and the provider's
(RP-initiated logout).  Requests that are not a browser's navigation (not
C{GET}/C{HEAD}, or asking for JSON) get C{401} rather than a redirect.

The provider's discovery document and JWK Set are fetched in the
background and shared across reloads (L{txrevproxy.filters.documents}).
"""

from __future__ import annotations

import base64
from typing import Any, Dict, Optional, Tuple, Union
from urllib.parse import parse_qsl, quote, urlencode
from weakref import WeakKeyDictionary

import attr
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.logger import Logger
from zope.interface import implementer

from ..config.schema import MODEL_DEFAULT, Field, Invalid, Table, array_of, expected
from ..config.values import (
    boolean,
    cookie_name,
    duration,
    file_path,
    http_url,
    one_of,
    route_path,
)
from ..http.headers import cookie_value
from ..interfaces import Answer, IFilter
from .claim_headers import ClaimHeaders, claims_to_headers
from .documents import DOCUMENTS, FETCH_TIMEOUT, read_json, service_client
from .jwks import FetchedKeys, verified_claims
from .basic_auth import realm
from .jwt_auth import bearer_challenge, leeway, text
from .oidc_flow import (
    Login,
    Session,
    allowed,
    kept_claims,
    login_cookie,
    return_path,
    token_expiry,
    without_cookies,
)
from .session_cookie import MAX_COOKIE, CookieSealer
from .tokens import ALGORITHMS, TokenRefused, TokenRules

log = Logger()

#: A session's last use is written back at most this often, so a busy
#: browser does not get a new cookie with every response.
SEEN_GRANULARITY = 60.0

_ASYMMETRIC = tuple(a for a in ALGORITHMS if not a.startswith("HS"))


def _secret(value: Any) -> str:
    if not isinstance(value, str) or len(value) < 32:
        raise expected("a secret of at least 32 characters", value)
    return value


def _email(value: Any) -> str:
    if not isinstance(value, str) or "@" not in value:
        raise expected('an address or a domain such as "@example.com"', value)
    return value


@attr.s(frozen=True, auto_attribs=True)
class Options:
    issuer: str
    client_id: str
    client_secret: Optional[str] = None
    client_secret_file: Optional[str] = None
    scopes: Tuple[str, ...] = ("openid", "email", "profile")
    redirect_path: str = "/oauth2/callback"
    logout_path: str = "/oauth2/logout"
    post_logout_redirect: str = "/"
    cookie_name: str = "txrevproxy_session"
    cookie_secret: Optional[str] = None
    cookie_secrets: Tuple[str, ...] = ()
    session_max_age: float = 12 * 3600.0
    session_idle: float = 3600.0
    allowed_emails: Tuple[str, ...] = ()
    allowed_groups: Tuple[str, ...] = ()
    groups_claim: str = "groups"
    claims_to_headers: Tuple[Tuple[str, str], ...] = ()
    refresh: bool = True
    algorithms: Tuple[str, ...] = ("RS256",)
    leeway: float = 30.0
    realm: str = "txrevproxy"


def _checks(arguments):
    if (arguments.get("client_secret") is None) == (
        arguments.get("client_secret_file") is None
    ):
        yield (
            ".client_secret",
            "give client_secret or client_secret_file (one of them)",
        )
    if (arguments.get("cookie_secret") is None) == (
        not arguments.get("cookie_secrets")
    ):
        yield (".cookie_secrets", "give cookie_secret or cookie_secrets (one of them)")
    if "openid" not in arguments["scopes"]:
        yield (".scopes", 'must include "openid"')
    if arguments["redirect_path"] == arguments["logout_path"]:
        yield (".logout_path", "must differ from redirect_path")


OPTIONS = Table(
    Options,
    {
        "issuer": Field(http_url("https://login.example.com/realms/main")),
        "client_id": Field(text),
        "client_secret": Field(text, default=MODEL_DEFAULT),
        "client_secret_file": Field(file_path, default=MODEL_DEFAULT),
        "scopes": Field(
            array_of(text, min_items=1, what='an array such as ["openid", "email"]'),
            default=["openid", "email", "profile"],
        ),
        "redirect_path": Field(route_path, default="/oauth2/callback"),
        "logout_path": Field(route_path, default="/oauth2/logout"),
        "post_logout_redirect": Field(text, default="/"),
        "cookie_name": Field(cookie_name, default="txrevproxy_session"),
        "cookie_secret": Field(_secret, default=MODEL_DEFAULT),
        "cookie_secrets": Field(
            array_of(_secret, what="an array of secrets"), default=[]
        ),
        "session_max_age": Field(duration, default="12h"),
        "session_idle": Field(duration, default="1h"),
        "allowed_emails": Field(
            array_of(_email, what='an array such as ["@example.com"]'), default=[]
        ),
        "allowed_groups": Field(
            array_of(text, what='an array such as ["admins"]'), default=[]
        ),
        "groups_claim": Field(text, default="groups"),
        "claims_to_headers": Field(claims_to_headers, default={}),
        "refresh": Field(boolean, default=True),
        "algorithms": Field(
            array_of(
                one_of(*_ASYMMETRIC), min_items=1, what='an array such as ["RS256"]'
            ),
            default=["RS256"],
        ),
        "leeway": Field(leeway, default="30s"),
        "realm": Field(realm, default="txrevproxy"),
    },
    checks=(_checks,),
)


class ProviderError(Exception):
    """
    The provider could not be asked, or answered something unusable.
    """


def _redirect(location: str, *cookies: bytes) -> Answer:
    headers = ((b"Location", location.encode("utf-8")),) + tuple(
        (b"Set-Cookie", cookie) for cookie in cookies
    )
    return Answer(302, headers)


def _query(request) -> Dict[str, str]:
    _, _, query = request.uri.partition(b"?")
    return dict(parse_qsl(query.decode("latin-1")))


def _navigation(request) -> bool:
    """
    Whether a request is a browser's navigation, which a redirect to the
    provider can help; a script's call (asking for JSON) gets 401.
    """
    if request.method not in (b"GET", b"HEAD"):
        return False
    if request.requestHeaders.getRawHeaders(b"x-requested-with"):
        return False
    accept = b",".join(request.requestHeaders.getRawHeaders(b"accept", []))
    return not (b"application/json" in accept and b"text/html" not in accept)


@implementer(IFilter)
class OIDCLogin:
    """
    @ivar description: what C{txrevproxy route} says of the filter.
    """

    def __init__(self, options: Options, client_secret: str, reactor) -> None:
        self._options = options
        self._client_secret = client_secret
        self._reactor = reactor
        self._sealer = CookieSealer(
            [
                s.encode("utf-8")
                for s in (
                    (options.cookie_secret,)
                    if options.cookie_secret
                    else options.cookie_secrets
                )
            ]
        )
        self._session_name = options.cookie_name.encode("ascii")
        self._login_prefix = self._session_name + b"_login"
        self._redirect_path = options.redirect_path.encode("ascii")
        self._logout_path = options.logout_path.encode("ascii")
        self._headers = ClaimHeaders(options.claims_to_headers)
        self._issuer = options.issuer.rstrip("/")
        self._renewals: "WeakKeyDictionary[Any, bytes]" = WeakKeyDictionary()
        self._refreshing: Dict[str, Deferred] = {}
        self.description = "OpenID Connect login with %s (callback %s)" % (
            options.issuer,
            options.redirect_path,
        )
        self._discovery = DOCUMENTS.acquire(
            reactor, self._issuer + "/.well-known/openid-configuration", 3600.0, 30.0
        )
        self._keys: Optional[FetchedKeys] = None
        self._closed = False
        self._http, self._pool = service_client(reactor)

    # The provider -----------------------------------------------------

    def _provider(self) -> Deferred:
        """
        The discovery document, waiting for the first fetch if need be.

        @raise ProviderError: through the L{Deferred}, when there is none
            or it is not the issuer's.
        """
        document = self._discovery.document
        waiting = succeed(document) if document is not None else self._discovery.newer()
        return waiting.addCallback(self._checkProvider)

    def _checkProvider(self, document) -> Dict[str, Any]:
        if document is None:
            raise ProviderError("no discovery document from %s" % (self._issuer,))
        if document.get("issuer", "").rstrip("/") != self._issuer:
            raise ProviderError("the discovery document names another issuer")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(document.get(name), str):
                raise ProviderError("the discovery document has no %s" % (name,))
        if self._keys is None:
            options = self._options
            self._keys = FetchedKeys(
                self._reactor, document["jwks_uri"], options.algorithms, 600.0, 30.0
            )
        return document

    def _tokenRequest(self, document: Dict[str, Any], form: Dict[str, str]) -> Deferred:
        """
        A call to the token endpoint, authenticated as the client
        (C{client_secret_basic} unless the provider only takes
        C{client_secret_post}).
        """
        methods = document.get("token_endpoint_auth_methods_supported") or [
            "client_secret_basic"
        ]
        headers = {
            b"Accept": [b"application/json"],
            b"Content-Type": [b"application/x-www-form-urlencoded"],
        }
        form = dict(form)
        if "client_secret_basic" in methods:
            # RFC 6749 section 2.3.1: each part form-encoded, then Basic.
            pair = "%s:%s" % (
                quote(self._options.client_id, safe=""),
                quote(self._client_secret, safe=""),
            )
            headers[b"Authorization"] = [
                b"Basic " + base64.b64encode(pair.encode("utf-8"))
            ]
        else:
            form["client_id"] = self._options.client_id
            form["client_secret"] = self._client_secret
        d = self._http.post(
            document["token_endpoint"],
            data=urlencode(form).encode("ascii"),
            headers=headers,
        )
        d.addTimeout(FETCH_TIMEOUT, self._reactor)
        d.addCallback(self._tokenAnswer)
        return d

    def _tokenAnswer(self, response) -> Deferred:
        def check(answer):
            if response.code != 200:
                raise ProviderError(
                    "the token endpoint answered %d %s"
                    % (response.code, answer.get("error", ""))
                )
            return answer

        return read_json(response).addCallback(check)

    def _idClaims(self, id_token: str, nonce: Optional[str]) -> Deferred:
        """
        The claims of an ID token (OpenID Connect Core section 3.1.3.7),
        waiting for the next JWK Set when it names a key not held yet.
        """
        options = self._options
        rules = TokenRules(
            algorithms=options.algorithms,
            issuer=self._issuer,
            audience=(options.client_id,),
            leeway=options.leeway,
            required_claims=("exp", "iat", "sub"),
        )

        def check_nonce(claims):
            if nonce is not None and claims.get("nonce") != nonce:
                raise TokenRefused("wrong nonce")
            return claims

        return maybeDeferred(
            verified_claims, id_token, self._keys, rules, self._reactor
        ).addCallback(check_nonce)

    # Requests --------------------------------------------------------

    def request(self, request) -> Union[None, Answer, Deferred]:
        path = request.path
        if path == self._redirect_path:
            return self._guard(self._callback(request))
        if path == self._logout_path:
            return self._logout(request)
        now = self._reactor.seconds()
        session = self._session(request, now)
        if session is None:
            return self._guard(self._login(request))
        if self._options.refresh and session.expired(now):
            if not session.refresh_token:
                return self._guard(self._login(request))
            return self._guard(self._refresh(request, session))
        self._admit(request, session, now)
        return None

    def _guard(self, waiting: Union[Answer, Deferred]) -> Union[Answer, Deferred]:
        """
        Turn a provider's failure into 502 (never a traceback), and a
        refused token into 401.
        """
        if isinstance(waiting, Answer):
            return waiting

        def failed(reason):
            if reason.check(TokenRefused):
                log.info("oidc: token refused: {why}", why=reason.value.description)
                return bearer_challenge(self._options.realm, reason.value)
            log.warn(
                "oidc: {issuer}: {why}",
                issuer=self._issuer,
                why=reason.getErrorMessage(),
            )
            return Answer(502)

        return waiting.addErrback(failed)

    def _session(self, request, now: float) -> Optional[Session]:
        value = cookie_value(
            request.requestHeaders.getRawHeaders(b"cookie"), self._session_name
        )
        if value is None:
            return None
        payload = self._sealer.open(self._session_name, value)
        session = None if payload is None else Session.from_payload(payload)
        if session is None or not session.alive(
            now, self._options.session_max_age, self._options.session_idle
        ):
            return None
        return session

    def _admit(self, request, session: Session, now: float) -> None:
        self._headers.apply(request, session.claims)
        cookies = request.requestHeaders.getRawHeaders(b"cookie")
        if cookies:
            rest = without_cookies(
                cookies, (self._session_name,), self._login_prefix + b"_"
            )
            request.requestHeaders.removeHeader(b"cookie")
            if rest is not None:
                request.requestHeaders.setRawHeaders(b"cookie", [rest])
        if now - session.seen >= SEEN_GRANULARITY:
            cookie = self._sessionCookie(request, attr.evolve(session, seen=now))
            if cookie is not None:
                self._renewals[request] = cookie

    def response(self, request, status, headers) -> None:
        cookie = self._renewals.pop(request, None)
        if cookie is not None:
            headers.append((b"Set-Cookie", cookie))
        return None

    # Cookies ---------------------------------------------------------

    def _cookie(self, request, name: bytes, value: bytes, max_age: int) -> bytes:
        cookie = b"%s=%s; Path=/; Max-Age=%d; HttpOnly; SameSite=Lax" % (
            name,
            value,
            max_age,
        )
        if request.site.scheme == b"https":
            cookie += b"; Secure"
        return cookie

    def _sessionCookie(self, request, session: Session) -> Optional[bytes]:
        """
        The session's Set-Cookie value: without the ID token if the cookie
        would pass 4 KiB with it, L{None} if it would even without.
        """
        remaining = int(
            self._options.session_max_age - (session.seen - session.started)
        )
        for each in (session, attr.evolve(session, id_token=None)):
            sealed = self._sealer.seal(self._session_name, each.payload())
            cookie = self._cookie(request, self._session_name, sealed, remaining)
            if len(cookie) <= MAX_COOKIE:
                return cookie
        log.error(
            "oidc: the session of {sub} does not fit in a cookie",
            sub=session.claims.get("sub"),
        )
        return None

    def _clear(self, request, name: bytes) -> bytes:
        return self._cookie(request, name, b"", 0)

    # The flow --------------------------------------------------------

    def _absolute(self, request, path: str) -> str:
        host = request.requestHeaders.getRawHeaders(b"host", [b""])[0].decode("latin-1")
        return "%s://%s%s" % (request.site.scheme.decode("ascii"), host, path)

    def _login(self, request) -> Union[Answer, Deferred]:
        self._headers.remove(request)
        if not _navigation(request):
            return bearer_challenge(self._options.realm)
        login = Login.begin(return_path(request.uri), self._reactor.seconds())
        options = self._options

        def redirect(document):
            location = login.authorization_url(
                document["authorization_endpoint"],
                options.client_id,
                self._absolute(request, options.redirect_path),
                options.scopes,
            )
            name = login_cookie(self._login_prefix, login.state)
            sealed = self._sealer.seal(name, login.payload())
            return _redirect(location, self._cookie(request, name, sealed, 600))

        return self._provider().addCallback(redirect)

    def _callback(self, request) -> Union[Answer, Deferred]:
        query = _query(request)
        name = login_cookie(self._login_prefix, query.get("state", ""))
        value = None
        if name is not None:
            value = cookie_value(request.requestHeaders.getRawHeaders(b"cookie"), name)
        payload = None if value is None else self._sealer.open(name, value)
        now = self._reactor.seconds()
        login = None if payload is None else Login.from_payload(payload, now)
        if login is None or not login.matches(query["state"]):
            log.info("oidc: callback without a matching login (state)")
            return Answer(
                400, body=b"This login is not the one started here; please try again.\n"
            )
        if "code" not in query:
            log.info(
                "oidc: the provider refused the login: {error}",
                error=query.get("error", "no code"),
            )
            return Answer(403, ((b"Set-Cookie", self._clear(request, name)),))
        options = self._options
        state: Dict[str, Any] = {}

        def exchange(document):
            state["document"] = document
            return self._tokenRequest(
                document,
                {
                    "grant_type": "authorization_code",
                    "code": query["code"],
                    "redirect_uri": self._absolute(request, options.redirect_path),
                    "code_verifier": login.verifier,
                },
            )

        def validate(answer):
            state["answer"] = answer
            id_token = answer.get("id_token")
            if not isinstance(id_token, str):
                raise ProviderError("the token endpoint gave no ID token")
            return self._idClaims(id_token, login.nonce)

        def establish(claims):
            cleared = self._clear(request, name)
            if not allowed(
                claims,
                options.allowed_emails,
                options.allowed_groups,
                options.groups_claim,
            ):
                log.info("oidc: {sub} is not allowed", sub=claims.get("sub"))
                return Answer(403, ((b"Set-Cookie", cleared),))
            answer = state["answer"]
            now = self._reactor.seconds()
            session = Session(
                kept_claims(claims, self._headers.claims),
                now,
                now,
                token_expiry(answer, claims, now),
                answer.get("refresh_token") if options.refresh else None,
                answer["id_token"],
            )
            cookie = self._sessionCookie(request, session)
            if cookie is None:
                return Answer(500)
            return _redirect(login.back_to, cookie, cleared)

        return (
            self._provider()
            .addCallback(exchange)
            .addCallback(validate)
            .addCallback(establish)
        )

    def _refresh(self, request, session: Session) -> Deferred:
        """
        Renew an expired session with its refresh token, once for all the
        requests that carry it at the same time; a refused refresh is a
        new login.
        """
        token = session.refresh_token
        shared = self._refreshing.get(token)
        if shared is None:
            shared = self._refreshing[token] = self._renewed(session)

            def done(result):
                del self._refreshing[token]
                return result

            shared.addCallback(done)
        waiting: Deferred = Deferred()

        def follow(result):
            waiting.callback(result)
            return result

        shared.addCallback(follow)

        def admit(renewed: Optional[Session]):
            if renewed is None:
                return self._login(request)
            now = self._reactor.seconds()
            self._admit(request, renewed, now)
            cookie = self._sessionCookie(request, renewed)
            if cookie is not None:
                self._renewals[request] = cookie
            return None

        return waiting.addCallback(admit)

    def _renewed(self, session: Session) -> Deferred:
        options = self._options
        state: Dict[str, Any] = {}

        def ask(document):
            return self._tokenRequest(
                document,
                {"grant_type": "refresh_token", "refresh_token": session.refresh_token},
            )

        def validate(answer):
            state["answer"] = answer
            id_token = answer.get("id_token")
            if not isinstance(id_token, str):
                return None
            return self._idClaims(id_token, None)

        def renew(claims):
            answer = state["answer"]
            now = self._reactor.seconds()
            if claims is not None:
                if claims.get("sub") != session.claims.get("sub") or not allowed(
                    claims,
                    options.allowed_emails,
                    options.allowed_groups,
                    options.groups_claim,
                ):
                    return None
                kept = kept_claims(claims, self._headers.claims)
            else:
                kept = session.claims
            return attr.evolve(
                session,
                claims=kept,
                seen=now,
                expires=token_expiry(answer, claims or {}, now),
                refresh_token=answer.get("refresh_token", session.refresh_token),
                id_token=answer.get("id_token", session.id_token),
            )

        def refused(reason):
            log.info("oidc: refresh failed: {why}", why=reason.getErrorMessage())
            return None

        return (
            self._provider()
            .addCallback(ask)
            .addCallback(validate)
            .addCallback(renew)
            .addErrback(refused)
        )

    def _logout(self, request) -> Union[Answer, Deferred]:
        """
        End the session here, then at the provider when it has an
        C{end_session_endpoint} (RP-initiated logout).
        """
        session = self._session(request, self._reactor.seconds())
        cleared = self._clear(request, self._session_name)
        after = self._options.post_logout_redirect
        if after.startswith("/"):
            after = self._absolute(request, after)
        document = self._discovery.document or {}
        endpoint = document.get("end_session_endpoint")
        if not isinstance(endpoint, str):
            return _redirect(after, cleared)
        query = {
            "client_id": self._options.client_id,
            "post_logout_redirect_uri": after,
        }
        if session is not None and session.id_token:
            query["id_token_hint"] = session.id_token
        location = endpoint + ("&" if "?" in endpoint else "?") + urlencode(query)
        return _redirect(location, cleared)

    def close(self):
        """
        Let go of the provider's shared documents and close the connections
        to its token endpoint, once (a retired runtime may be closed again
        when the service stops).
        """
        if self._closed:
            return None
        self._closed = True
        closing = [
            DOCUMENTS.release(self._reactor, self._discovery),
            self._pool.closeCachedConnections(),
        ]
        if self._keys is not None:
            closing.append(self._keys.close())
        return gatherResults([d for d in closing if d is not None])


def configure(options, context) -> OIDCLogin:
    parsed = OPTIONS(options)
    secret = parsed.client_secret
    if parsed.client_secret_file is not None:
        try:
            with open(
                context.path(parsed.client_secret_file), encoding="utf-8"
            ) as file:
                secret = file.read().strip()
        except (OSError, UnicodeDecodeError) as error:
            raise Invalid(
                problems=[
                    (
                        ".client_secret_file",
                        "cannot read %s: %s" % (parsed.client_secret_file, error),
                    )
                ]
            )
    if context.reactor is None:
        # Only checking: nothing to fetch, nothing to run.
        return None
    return OIDCLogin(parsed, secret, context.reactor)
