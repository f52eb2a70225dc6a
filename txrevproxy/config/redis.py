"""
The schema of the C{[redis.NAME]} tables: Redis servers that the processes
and instances of a proxy share state through (see C{docs/scaling.rst}),
and of the C{store = "redis:NAME"} keys that name them.
"""

from __future__ import annotations

from typing import Any, Collection, Optional
from urllib.parse import parse_qs, unquote, urlsplit

from .model import RedisAddress, RedisSettings
from .schema import MODEL_DEFAULT, Field, Invalid, Table, describe, expected
from .values import duration, file_path, integer, secret

_EXAMPLE = '"redis://127.0.0.1:6379/0", "rediss://host:6380/0" or "unix:///run/redis.sock?db=0"'

#: The store of a C{store} key that names no Redis table.
LOCAL = "local"


def redis_url(value: Any) -> RedisAddress:
    """
    C{redis://[[user]:password@]host[:port][/db]}, the same with
    C{rediss://} for TLS, or C{unix://[[user]:password@]/path[?db=N]}.
    """
    if not isinstance(value, str):
        raise expected("a URL such as " + _EXAMPLE, value)
    parts = urlsplit(value)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise Invalid("unknown scheme in %s; expected %s" % (describe(value), _EXAMPLE))
    query = parse_qs(parts.query)
    db_text = query.get("db", [""])[0]
    try:
        port = parts.port
    except ValueError:
        raise Invalid("bad port in %s" % (describe(value),))
    if parts.scheme == "unix":
        if not parts.path:
            raise Invalid("a unix:// URL needs the socket's path, got %s" % (describe(value),))
        host, path = None, unquote(parts.path)
    else:
        if not parts.hostname:
            raise Invalid("no host in %s; expected %s" % (describe(value), _EXAMPLE))
        host, path = parts.hostname, None
        db_text = parts.path.strip("/") or db_text
    if db_text and not db_text.isdigit():
        raise Invalid("the database must be a number, got %s" % (describe(db_text),))
    return RedisAddress(
        tls=parts.scheme == "rediss",
        host=host,
        port=port or 6379,
        path=path,
        db=int(db_text or 0),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


REDIS = Table(
    RedisSettings,
    {
        "url": Field(redis_url),
        "password": Field(secret, default=MODEL_DEFAULT),
        "timeout": Field(duration, default="250ms"),
        "connect_timeout": Field(duration, default="1s"),
        "pool_size": Field(integer(1, 64), default=2),
        "retry_interval": Field(duration, default="1s"),
        "ca": Field(file_path, default=MODEL_DEFAULT),
    },
)


def store_reference(value: Any, known: Optional[Collection[str]]) -> Optional[str]:
    """
    A C{store} key: C{"local"} (L{None}: this process's memory) or
    C{"redis:NAME"}, the name of a C{[redis.NAME]} table.

    @param known: the names of the configuration's Redis tables, or
        L{None} when they are not known (no check of the name).
    @return: the Redis table's name, or L{None} for C{"local"}.
    """
    if value == LOCAL:
        return None
    if not isinstance(value, str) or not value.startswith("redis:"):
        raise expected('"local" or "redis:NAME" (a [redis.NAME] table)', value)
    name = value[len("redis:") :]
    if known is not None and name not in known:
        names = ", ".join('"redis:%s"' % (each,) for each in sorted(known))
        raise Invalid(
            "no [redis.%s] table; %s"
            % (name, ("known: " + names) if names else "add one with its url")
        )
    return name
