"""
Unit tests of sealed cookies (L{txrevproxy.filters.session_cookie}) and of
the OIDC login's pure decisions (L{txrevproxy.filters.oidc_flow}).
"""

from __future__ import annotations

import base64
import hashlib

from txrevproxy.filters.oidc_flow import (
    LOGIN_TIME,
    Login,
    Session,
    allowed,
    login_cookie,
    pkce_challenge,
    return_path,
    without_cookies,
)
from txrevproxy.filters.session_cookie import CookieSealer

OLD = b"old-secret-0123456789-0123456789"
NEW = b"new-secret-0123456789-0123456789"


def test_sealed_value_opens_to_its_payload_and_hides_it():
    sealer = CookieSealer([NEW])
    value = sealer.seal(b"session", {"sub": "alice"})
    assert b"alice" not in value
    assert sealer.open(b"session", value) == {"sub": "alice"}


def test_rotation_first_secret_seals_every_secret_opens():
    before = CookieSealer([OLD]).seal(b"session", {"n": 1})
    rotated = CookieSealer([NEW, OLD])
    assert rotated.open(b"session", before) == {"n": 1}
    after = rotated.seal(b"session", {"n": 2})
    assert CookieSealer([NEW]).open(b"session", after) == {"n": 2}
    assert CookieSealer([OLD]).open(b"session", after) is None


def test_tampered_value_does_not_open():
    sealer = CookieSealer([NEW])
    value = bytearray(
        base64.urlsafe_b64decode(sealer.seal(b"session", {"sub": "alice"}) + b"==")
    )
    value[20] ^= 1
    changed = base64.urlsafe_b64encode(bytes(value)).rstrip(b"=")
    assert sealer.open(b"session", changed) is None
    assert sealer.open(b"session", b"garbage!") is None
    assert sealer.open(b"session", b"") is None


def test_value_sealed_for_one_cookie_does_not_open_as_another():
    sealer = CookieSealer([NEW])
    assert sealer.open(b"session", sealer.seal(b"session_login", {"st": "x"})) is None


def test_session_ends_after_max_age_and_after_idle_time():
    session = Session({"sub": "alice"}, started=1000.0, seen=5000.0)
    assert session.alive(5100.0, max_age=12 * 3600, idle=3600)
    assert not session.alive(5000.0 + 3600, max_age=12 * 3600, idle=3600)
    assert not session.alive(1000.0 + 12 * 3600, max_age=12 * 3600, idle=10**9)


def test_session_round_trips_through_its_payload():
    session = Session({"sub": "a"}, 1.0, 2.0, 3.0, "refresh", "id")
    assert Session.from_payload(session.payload()) == session
    assert Session.from_payload({"c": {}}) is None
    assert session.expired(3.0) and not session.expired(2.9)


def test_login_expires_and_checks_state():
    login = Login.begin("/app?x=1", 100.0)
    again = Login.from_payload(login.payload(), 100.0 + LOGIN_TIME)
    assert again == login
    assert again.matches(login.state) and not again.matches("other")
    assert Login.from_payload(login.payload(), 101.0 + LOGIN_TIME) is None


def test_authorization_url_carries_pkce_state_and_nonce():
    login = Login.begin("/", 0.0)
    url = login.authorization_url(
        "https://idp.test/auth", "app", "https://me.test/cb", ["openid", "email"]
    )
    assert url.startswith("https://idp.test/auth?response_type=code&client_id=app&")
    assert "code_challenge_method=S256" in url
    assert "state=" + login.state in url and "nonce=" + login.nonce in url
    expected = base64.urlsafe_b64encode(
        hashlib.sha256(login.verifier.encode()).digest()
    ).rstrip(b"=")
    assert pkce_challenge(login.verifier) == expected.decode()
    assert "code_challenge=" + expected.decode() in url


def test_return_path_never_leaves_this_host():
    assert return_path(b"/app/page?q=1") == "/app/page?q=1"
    assert return_path(b"//evil.test/") == "/"
    assert return_path(b"/\\evil.test/") == "/"
    assert return_path(b"https://evil.test/") == "/"


def test_allowed_emails_and_domains_and_groups():
    alice = {"email": "Alice@Example.com", "email_verified": True, "groups": ["staff"]}
    assert allowed(alice, ["@example.com"], [], "groups")
    assert allowed(alice, ["alice@example.com"], ["staff", "ops"], "groups")
    assert not allowed(alice, ["bob@example.com"], [], "groups")
    assert not allowed(alice, [], ["ops"], "groups")
    assert not allowed(
        dict(alice, email_verified=False), ["@example.com"], [], "groups"
    )
    assert not allowed({}, ["@example.com"], [], "groups")


def test_filter_cookies_are_not_passed_on():
    kept = without_cookies(
        [b"a=1; s=secret", b"s_login_abc=x; b=2"], (b"s",), b"s_login_"
    )
    assert kept == b"a=1; b=2"
    assert without_cookies([b"s=secret"], (b"s",), b"s_login_") is None


def test_each_login_has_its_own_cookie_and_odd_states_name_none():
    first, second = Login.begin("/", 0.0), Login.begin("/", 0.0)
    names = {login_cookie(b"s_login", login.state) for login in (first, second)}
    assert len(names) == 2 and all(n.startswith(b"s_login_") for n in names)
    assert login_cookie(b"s_login", "x\r\nSet-Cookie: a=b; 0123456789") is None
    assert login_cookie(b"s_login", "short") is None
