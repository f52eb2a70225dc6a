"""
The admin API's status page (C{GET /}): one HTML file with its CSS and
JavaScript inline, so that it works where the proxy runs without reaching
the internet, and how a browser signs in to it.

A browser cannot send the API's bearer token when it loads a page, so
when C{[admin] token} is set the page answers a sign-in form; the token
given there (or once as C{/?token=TOKEN}) is exchanged for a cookie,
C{HttpOnly} and C{SameSite=Strict}, which the admin API then takes as it
takes the bearer token.  The cookie holds a digest of the token, not the
token: a reload that changes the token signs every browser out.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from importlib.resources import files
from typing import Optional

#: The status page, package data beside this module.
PAGE = files(__package__).joinpath("status_page.html").read_bytes()

#: The name of the sign-in cookie.
COOKIE = b"txrevproxy_admin"


def session(token: str) -> bytes:
    """
    The cookie value that stands for C{token}.
    """
    return hmac.new(
        token.encode("utf-8"), b"txrevproxy status page", hashlib.sha256
    ).hexdigest().encode("ascii")


def session_cookie(token: str, secure: bool) -> bytes:
    """
    The C{Set-Cookie} value that signs a browser in, for the admin API's
    paths only to it (C{SameSite=Strict}: no other site's page can make
    the browser send it, so a drain cannot be forged), never to scripts
    (C{HttpOnly}), and over TLS only when the admin API is on TLS.
    """
    return b"%s=%s; Path=/; HttpOnly; SameSite=Strict%s" % (
        COOKIE,
        session(token),
        b"; Secure" if secure else b"",
    )


def content_security_policy(html: bytes) -> bytes:
    """
    A C{Content-Security-Policy} that lets C{html} run its own inline
    scripts and styles, by their SHA-256, and nothing else: no other
    script, no request but to the admin API itself, no framing.
    """
    sources = {b"script": [], b"style": []}
    for tag, body in re.findall(rb"<(script|style)>(.*?)</\1>", html, re.S):
        digest = base64.b64encode(hashlib.sha256(body).digest())
        sources[tag].append(b"'sha256-%s'" % (digest,))
    return (
        b"default-src 'none'; script-src %s; style-src %s; connect-src 'self'; "
        b"form-action 'self'; frame-ancestors 'none'; "
        b"base-uri 'none'"
        % (b" ".join(sources[b"script"]) or b"'none'", b" ".join(sources[b"style"]) or b"'none'")
    )


def sign_in_form(problem: Optional[str]) -> bytes:
    """
    The page a browser gets without the cookie when a token is set: a
    form that posts the token to C{login}.
    """
    message = b"" if problem is None else b"<p class=problem>%s</p>" % (
        problem.encode("ascii"),
    )
    return b"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>txrevproxy status: sign in</title>
<style>
body { font: 15px system-ui, sans-serif; margin: 0; display: grid; place-items: center;
  min-height: 100vh; background: #f6f8fa; }
form { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: 20px;
  display: grid; gap: 10px; width: min(92vw, 340px); }
input, button { font: inherit; padding: 6px 8px; }
.problem { color: #cf222e; margin: 0; }
</style></head>
<body><form method="post" action="login">
<strong>txrevproxy status</strong>
<label for="token">The admin token (<code>[admin] token</code>)</label>
<input id="token" name="token" type="password" autocomplete="current-password" autofocus required>
%s<button type="submit">Sign in</button>
</form></body></html>
""" % (
        message,
    )


def signed_in(request, token: str) -> bool:
    """
    Whether C{request} carries the cookie of C{token}.
    """
    given = request.getCookie(COOKIE) or b""
    return hmac.compare_digest(given, session(token))
