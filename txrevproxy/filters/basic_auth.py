"""
C{type = "basic_auth"}: HTTP Basic authentication (RFC 7617) against an
htpasswd-style file of C{user:hash} lines.

Only slow, salted password hashes are accepted: bcrypt (C{$2a$}, C{$2b$},
C{$2y$}, as C{htpasswd -B} writes) and argon2 (C{$argon2id$}, C{$argon2i$},
with the C{argon2-cffi} package).  A file with plain text, crypt, MD5
(C{$apr1$}) or SHA-1 entries is refused when the configuration is loaded,
naming the line.

Checking a bcrypt or argon2 hash takes tens of milliseconds on purpose, so
it runs in the reactor's thread pool, never on the reactor thread; and a
credential that checked out is remembered (as its SHA-256, for C{cache},
one minute by default) so a browser sending it with every request does not
pay that each time.  A request without valid credentials gets C{401
Unauthorized} with a C{WWW-Authenticate} challenge.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import OrderedDict
from typing import Callable, Dict, Optional

import attr
from twisted.internet.defer import Deferred
from zope.interface import implementer

from ..config.schema import MODEL_DEFAULT, Field, Invalid, Table, expected
from ..config.values import duration, file_path, header_name
from ..http.headers import remove_client_copies
from ..interfaces import Answer, IFilter

#: Remembered credentials, at most this many.
_REMEMBERED = 10000


def realm(value) -> str:
    """
    A realm for a C{WWW-Authenticate} challenge: no quotes or backslashes,
    which would end or escape its quoted string.
    """
    if (
        not isinstance(value, str)
        or not value
        or any(c in value for c in '"\\\r\n\x00')
    ):
        raise expected("a realm without quotes or backslashes", value)
    return value


@attr.s(frozen=True, auto_attribs=True)
class Options:
    users_file: str
    realm: str = "txrevproxy"
    cache: float = 60.0
    user_header: Optional[str] = None


OPTIONS = Table(
    Options,
    {
        "users_file": Field(file_path),
        "realm": Field(realm, default="txrevproxy"),
        "cache": Field(duration, default="1m"),
        "user_header": Field(header_name, default=MODEL_DEFAULT),
    },
)


def _bcrypt_checker(hashed: bytes) -> Callable[[bytes], bool]:
    import bcrypt

    return lambda password: bcrypt.checkpw(password, hashed)


def _argon2_checker(hashed: bytes) -> Callable[[bytes], bool]:
    try:
        from argon2 import PasswordHasher
        from argon2.exceptions import InvalidHashError, VerificationError
    except ImportError:
        raise ValueError(
            "argon2 hashes need the argon2-cffi package (pip install argon2-cffi)"
        )
    hasher = PasswordHasher()
    text = hashed.decode("ascii")

    def check(password: bytes) -> bool:
        try:
            return hasher.verify(text, password)
        except (VerificationError, InvalidHashError):
            return False

    return check


_SCHEMES = (
    ((b"$2a$", b"$2b$", b"$2y$"), _bcrypt_checker),
    ((b"$argon2id$", b"$argon2i$"), _argon2_checker),
)


def read_users(path: str) -> Dict[bytes, Callable[[bytes], bool]]:
    """
    The users of an htpasswd file, each with the function that checks a
    password against the user's hash.

    @raise Invalid: naming the file and line of the first problem.
    """

    def problem(text: str) -> Invalid:
        return Invalid(problems=[(".users_file", text)])

    try:
        with open(path, "rb") as file:
            lines = file.read().splitlines()
    except OSError as error:
        raise problem("cannot read %s: %s" % (path, error.strerror or error))
    users: Dict[bytes, Callable[[bytes], bool]] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith(b"#"):
            continue
        user, colon, hashed = line.partition(b":")
        where = "%s line %d" % (path, number)
        if not colon or not user:
            raise problem("%s: expected user:hash" % (where,))
        for prefixes, checker in _SCHEMES:
            if hashed.startswith(prefixes):
                try:
                    users[user] = checker(hashed)
                except ValueError as error:
                    raise problem("%s: %s" % (where, error))
                break
        else:
            raise problem(
                "%s: only bcrypt ($2y$, htpasswd -B) and argon2 hashes are "
                "accepted; plain text, crypt, MD5 and SHA-1 are too weak" % (where,)
            )
    if not users:
        raise problem("%s has no users" % (path,))
    return users


@implementer(IFilter)
class BasicAuth:
    """
    @param run_in_thread: runs a blocking function off the reactor thread
        and returns a L{Deferred} of its result (the reactor's thread pool
        by default).
    """

    def __init__(self, options: Options, users, clock, run_in_thread) -> None:
        self._users = users
        # Any user's check: run for an unknown user, its answer ignored.
        self._decoy = next(iter(users.values()))
        self._clock = clock
        self._run = run_in_thread
        self._cache_time = options.cache
        self._remembered: "OrderedDict[bytes, float]" = OrderedDict()
        self._challenge = Answer(
            401,
            (
                (
                    b"WWW-Authenticate",
                    b'Basic realm="%s", charset="UTF-8"'
                    % (options.realm.encode("utf-8"),),
                ),
            ),
        )
        self._user_header = (
            None if options.user_header is None else options.user_header.encode("ascii")
        )

    def request(self, request):
        values = request.requestHeaders.getRawHeaders(b"authorization")
        if not values or len(values) != 1:
            return self._challenge
        credentials = _credentials(values[0])
        if credentials is None:
            return self._challenge
        user, password = credentials
        check = self._users.get(user)
        if check is None:
            # As long as a wrong password takes, so that the time of the
            # 401 does not tell which users exist.
            d = self._run(self._decoy, password)
            return d.addCallback(lambda _: self._challenge)
        fingerprint = hashlib.sha256(values[0]).digest()
        expires = self._remembered.get(fingerprint)
        now = self._clock.seconds()
        if expires is not None and expires > now:
            self._pass(request, user)
            return None
        d: Deferred = self._run(check, password)

        def checked(valid: bool):
            if not valid:
                return self._challenge
            self._remember(fingerprint, self._clock.seconds())
            self._pass(request, user)
            return None

        return d.addCallback(checked)

    def _remember(self, fingerprint: bytes, now: float) -> None:
        remembered = self._remembered
        remembered[fingerprint] = now + self._cache_time
        remembered.move_to_end(fingerprint)
        while len(remembered) > _REMEMBERED:
            remembered.popitem(last=False)

    def _pass(self, request, user: bytes) -> None:
        if self._user_header is not None:
            remove_client_copies(request.requestHeaders, self._user_header)
            request.requestHeaders.setRawHeaders(self._user_header, [user])

    def response(self, request, status, headers) -> None:
        return None


def _credentials(value: bytes):
    """
    The user and password of a Basic Authorization value, or L{None}.
    """
    scheme, _, encoded = value.strip().partition(b" ")
    if scheme.lower() != b"basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        return None
    user, colon, password = decoded.partition(b":")
    if not colon:
        return None
    return user, password


def _thread_pool_runner(reactor):
    from twisted.internet.threads import deferToThreadPool

    return lambda function, *args: deferToThreadPool(
        reactor, reactor.getThreadPool(), function, *args
    )


def configure(options, context) -> BasicAuth:
    parsed = OPTIONS(options)
    users = read_users(context.path(parsed.users_file))
    reactor = context.reactor
    runner = None if reactor is None else _thread_pool_runner(reactor)
    return BasicAuth(parsed, users, reactor, runner)
