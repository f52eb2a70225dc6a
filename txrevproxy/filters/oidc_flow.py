"""
The decisions of an OpenID Connect login, without I/O: the login in
progress (state, nonce and PKCE verifier), the authorization request, where
the browser may be sent back to, who is allowed in, and the session kept
in a sealed cookie (L{txrevproxy.filters.session_cookie}).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple
from urllib.parse import urlencode

import attr

from .tokens import claim_values

#: How long a login may take, from the redirect to the callback.
LOGIN_TIME = 600.0


def random_token() -> str:
    """
    32 random bytes, base64url: a state, a nonce or a PKCE verifier
    (RFC 7636 section 4.1 asks 43 to 128 characters).
    """
    return base64.urlsafe_b64encode(os.urandom(32)).rstrip(b"=").decode("ascii")


def pkce_challenge(verifier: str) -> str:
    """
    The C{S256} code challenge of a verifier (RFC 7636 section 4.2).
    """
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def return_path(uri: bytes) -> str:
    """
    Where a browser goes back to after logging in: the request's own path
    and query on this host.  Anything else (an absolute URL, C{//host},
    C{/\\host}) becomes C{/}, so the callback is no open redirect.
    """
    text = uri.decode("latin-1")
    if (
        not text.startswith("/")
        or text.startswith(("//", "/\\"))
        or any(c < " " for c in text)
    ):
        return "/"
    return text


@attr.s(frozen=True, auto_attribs=True)
class Login:
    """
    A login in progress, kept in a short-lived sealed cookie between the
    redirect to the provider and the callback.
    """

    state: str
    nonce: str
    verifier: str
    back_to: str
    started: float

    @classmethod
    def begin(cls, back_to: str, now: float) -> "Login":
        return cls(random_token(), random_token(), random_token(), back_to, now)

    def payload(self) -> Dict[str, Any]:
        return {
            "st": self.state,
            "n": self.nonce,
            "v": self.verifier,
            "u": self.back_to,
            "t": self.started,
        }

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any], now: float) -> Optional["Login"]:
        """
        The login a cookie holds, or L{None} when it is malformed or older
        than L{LOGIN_TIME}.
        """
        try:
            login = cls(
                payload["st"],
                payload["n"],
                payload["v"],
                return_path(payload["u"].encode("latin-1")),
                float(payload["t"]),
            )
        except (KeyError, TypeError, ValueError, AttributeError, UnicodeEncodeError):
            return None
        if not 0 <= now - login.started <= LOGIN_TIME:
            return None
        return login

    def matches(self, state: str) -> bool:
        return hmac.compare_digest(self.state.encode("ascii"), state.encode("latin-1"))

    def authorization_url(
        self, endpoint: str, client_id: str, redirect_uri: str, scopes: Sequence[str]
    ) -> str:
        """
        The authorization request of the code flow with PKCE (OpenID
        Connect Core section 3.1.2.1, RFC 7636).
        """
        query = urlencode(
            {
                "response_type": "code",
                "client_id": client_id,
                "redirect_uri": redirect_uri,
                "scope": " ".join(scopes),
                "state": self.state,
                "nonce": self.nonce,
                "code_challenge": pkce_challenge(self.verifier),
                "code_challenge_method": "S256",
            }
        )
        return endpoint + ("&" if "?" in endpoint else "?") + query


def allowed(
    claims: Mapping[str, Any],
    emails: Sequence[str],
    groups: Sequence[str],
    groups_claim: str,
) -> bool:
    """
    Whether the ID token's claims let the user in: with C{emails}, a
    verified C{email} that is one of them, or in one of their domains
    (C{"@example.com"}); with C{groups}, one of them in C{groups_claim}.
    """
    if emails:
        email = claims.get("email")
        if not isinstance(email, str) or claims.get("email_verified") is False:
            return False
        email = email.lower()
        domain = "@" + email.rpartition("@")[2]
        if not any(each.lower() in (email, domain) for each in emails):
            return False
    if groups:
        if not set(groups) & set(claim_values(claims, groups_claim)):
            return False
    return True


@attr.s(frozen=True, auto_attribs=True)
class Session:
    """
    A logged-in browser, as its sealed cookie holds it.

    @ivar claims: the ID token's claims the filter maps to headers.
    @ivar started: when the user logged in (for C{session_max_age}).
    @ivar seen: the last request (for C{session_idle}).
    @ivar expires: when the provider's tokens expire (then refreshed).
    @ivar refresh_token: the provider's refresh token, if any.
    @ivar id_token: the ID token, for the logout's C{id_token_hint};
        left out when the cookie would be too large.
    """

    claims: Mapping[str, Any]
    started: float
    seen: float
    expires: Optional[float] = None
    refresh_token: Optional[str] = None
    id_token: Optional[str] = None

    def payload(self) -> Dict[str, Any]:
        payload = {
            "c": dict(self.claims),
            "t": self.started,
            "l": self.seen,
            "e": self.expires,
        }
        if self.refresh_token:
            payload["r"] = self.refresh_token
        if self.id_token:
            payload["i"] = self.id_token
        return payload

    @classmethod
    def from_payload(cls, payload: Mapping[str, Any]) -> Optional["Session"]:
        try:
            session = cls(
                dict(payload["c"]),
                float(payload["t"]),
                float(payload["l"]),
                None if payload.get("e") is None else float(payload["e"]),
                payload.get("r"),
                payload.get("i"),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return session

    def alive(self, now: float, max_age: float, idle: float) -> bool:
        """
        Whether the session still holds: younger than C{max_age}, and used
        within C{idle}.
        """
        return now - self.started < max_age and now - self.seen < idle

    def expired(self, now: float) -> bool:
        """
        Whether the provider's tokens have expired (so the session needs a
        refresh to go on).
        """
        return self.expires is not None and now >= self.expires


def kept_claims(claims: Mapping[str, Any], names: Sequence[str]) -> Dict[str, Any]:
    """
    The claims a session keeps: C{sub} and the ones mapped to headers.
    """
    return {name: claims[name] for name in ("sub",) + tuple(names) if name in claims}


def token_expiry(
    answer: Mapping[str, Any], claims: Mapping[str, Any], now: float
) -> Optional[float]:
    """
    When the tokens of a token endpoint's answer expire: the access
    token's C{expires_in}, or else the ID token's C{exp}.
    """
    expires_in = answer.get("expires_in")
    if isinstance(expires_in, (int, float)) and not isinstance(expires_in, bool):
        return now + float(expires_in)
    exp = claims.get("exp")
    if isinstance(exp, (int, float)) and not isinstance(exp, bool):
        return float(exp)
    return None


_STATE = re.compile(r"[A-Za-z0-9_-]{16,128}\Z")


def login_cookie(prefix: bytes, state: str) -> Optional[bytes]:
    """
    The name of the cookie of the login with C{state}: each login has its
    own (C{PREFIX_} and the state's first 16 characters), so that several
    tabs sent to the provider at once (a browser restoring its tabs) all
    come back logged in.  L{None} for a state no login of ours has, which
    then never names a cookie.
    """
    if not _STATE.match(state):
        return None
    return prefix + b"_" + state[:16].encode("ascii")


def without_cookies(
    values: Sequence[bytes], names: Tuple[bytes, ...], prefix: bytes
) -> Optional[bytes]:
    """
    A request's Cookie fields as one, without the cookies C{names} and
    those whose name starts with C{prefix} (the filter's own, which the
    backend has no use for), or L{None} when none are left.
    """
    kept = []
    for value in values:
        for pair in value.split(b";"):
            pair = pair.strip()
            name = pair.partition(b"=")[0]
            if pair and name not in names and not name.startswith(prefix):
                kept.append(pair)
    return b"; ".join(kept) if kept else None
