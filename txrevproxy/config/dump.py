"""
The effective configuration, as C{txrevproxy check --dump} prints it: the
document the files make together (includes merged, variables substituted),
with every default the schema fills in written out, every file path the
schema knows made absolute, and secrets masked.

It is written from the document rather than from the model, so that each
value reads as an operator writes it (C{"5s"}, not C{5.0}), and it reads
back to the same configuration (with the secrets shown).
"""

from __future__ import annotations

import os
from typing import Any, Callable, List, Mapping, Optional, Tuple
from urllib.parse import urlsplit, urlunsplit

from .document import Origins
from .environment import escape, verbatim
from .load import CONFIG, load_document
from .model import Config
from .pages import error_pages
from .schema import MODEL_DEFAULT, REQUIRED, ArrayOf, NamedTables, Table, TableForms, key_path
from .values import access_log, file_path
from .writer import dumps

#: What a masked secret reads as.
REDACTED = "<redacted>"

#: The keys whose string values are secrets, wherever they are (lower-case,
#: C{-} read as C{_}, so that header names count: C{Api-Key}): the admin
#: token, api_key's and jwt_auth's keys, credentials a plugin's filter may
#: take, and header values that carry credentials.  A key that ends in one
#: of L{SECRET_SUFFIXES} is a secret too.
SECRET_KEYS = frozenset(
    [
        "token",
        "keys",
        "password",
        "secret",
        "client_secret",
        "api_key",
        "authorization",
        "proxy_authorization",
    ]
)

#: The endings of the keys that are secrets whatever comes before them:
#: oidc's C{cookie_secret} and C{cookie_secrets}, a plugin's
#: C{bind_password} or C{access_token}, a header rule's C{X-Auth-Token}
#: or C{X-Api-Key}.
SECRET_SUFFIXES = ("_secret", "_secrets", "_password", "_token", "_api_key")


#: The top-level keys of named tables (C{[upstreams.NAME]}).
_NAMED_TABLES = frozenset(
    key for key, field in CONFIG.fields.items() if isinstance(field.convert, NamedTables)
)


def secret_key(keys: Tuple[str, ...]) -> bool:
    """
    Whether the strings under the table keys C{keys} (from the top of the
    document, array indexes left out) are secrets: under a key of
    L{SECRET_KEYS} or L{SECRET_SUFFIXES}, or a field of C{[tracing]
    headers}, which are there to carry an exporter's credentials
    (C{x-honeycomb-team}, C{DD-API-KEY}) whatever their names.  The name
    of a named table is not a key: C{[filters.api_key]} is no secret.
    """
    if keys[:2] == ("tracing", "headers") and len(keys) > 2:
        return True
    if keys[:1] and keys[0] in _NAMED_TABLES:
        keys = keys[:1] + keys[2:]
    for key in keys:
        key = key.lower().replace("-", "_")
        if key in SECRET_KEYS or key.endswith(SECRET_SUFFIXES):
            return True
    return False


def redacted(value: Any, keys: Tuple[str, ...] = ()) -> Any:
    """
    C{value}, found under the table keys C{keys}, with every secret string
    in it read as L{REDACTED} (see L{secret_key}), and the password of a
    C{[redis.NAME]} table's C{url} masked in place
    (C{redis://user:<redacted>@host:6379/0}).
    """
    if isinstance(value, dict):
        return {key: redacted(item, keys + (key,)) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item, keys) for item in value]
    if not isinstance(value, str):
        return value
    if secret_key(keys):
        return REDACTED
    if keys[:1] == ("redis",) and keys[2:] == ("url",):
        return _without_password(value)
    return value


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user, _, address = parts.netloc.rpartition("@")
    name = user.partition(":")[0]
    return urlunsplit(parts._replace(netloc="%s:%s@%s" % (name, REDACTED, address)))


def dump_config(
    path: str, show_secrets: bool = False, environ: Optional[Mapping[str, str]] = None
) -> Tuple[Config, str]:
    """
    Load a configuration file, and write its effective configuration.

    @param environ: the variables (default: this process's environment).
    @return: the configuration, and its text as L{dumped} writes it.
    @raise txrevproxy.config.ConfigError: as L{load_config} does.
    """
    config = load_document(path, environ)[0]
    return config, dumped(config, show_secrets)


def dumped(config: Config, show_secrets: bool = False) -> str:
    """
    The effective configuration of a configuration loaded from a file
    (which keeps its L{Config.document}), as TOML with a heading: what
    C{txrevproxy check --dump} prints and the admin API's C{GET /config}
    answers.
    """
    document = config.document
    text = effective_toml(document.data, CONFIG, document.origins, show_secrets)
    heading = "# The effective configuration of %s\n" % (config.source,)
    if not show_secrets:
        heading += "# Secrets read %s: --show-secrets prints them.\n" % (REDACTED,)
    return heading + "\n" + text


def effective_toml(
    data: Mapping[str, Any], schema: Table, origins: Origins, show_secrets: bool = False
) -> str:
    """
    The effective configuration of a valid document, as TOML.

    @param data: the document (see L{txrevproxy.config.document.Document}).
    @param schema: its schema, whose defaults are written out.
    @param origins: where each part came from, whose directory relative
        paths are taken from.
    @param show_secrets: write secrets as they are rather than as
        L{REDACTED}.
    """
    effective = _Effective(origins).convert(schema, data, "")
    return dumps(_escaped(effective if show_secrets else redacted(effective)))


class _Effective:
    """
    Walks a document along its schema.
    """

    def __init__(self, origins: Origins) -> None:
        self.origins = origins
        #: The converters of values that are file paths, each with what
        #: makes those paths absolute.
        self.paths: List[Tuple[Callable[..., Any], Callable[[Any, str], Any]]] = [
            (file_path, self.absolute),
            (
                access_log,
                lambda value, path: (
                    value if value in ("-", "off") else self.absolute(value, path)
                ),
            ),
            (
                error_pages,
                lambda value, path: {
                    status: self.absolute(page, path) for status, page in value.items()
                },
            ),
        ]

    def absolute(self, value: str, path: str) -> str:
        return os.path.abspath(
            os.path.join(self.origins.directory(path), os.path.expanduser(value))
        )

    def convert(self, convert: Any, value: Any, path: str) -> Any:
        if isinstance(convert, Table) and isinstance(value, dict):
            # In the order of the schema, which is that of the docs.
            table = {}
            for key, field in convert.fields.items():
                if key in value:
                    raw = value[key]
                elif field.default in (REQUIRED, MODEL_DEFAULT) or isinstance(
                    field.convert, NamedTables
                ):
                    continue
                else:
                    raw = field.default
                table[key] = self.convert(field.convert, raw, path + key_path(key))
            return table
        if isinstance(convert, TableForms) and isinstance(value, dict):
            form = convert.form(value)
            if form is not None:
                return self.convert(form, value, path)
        if isinstance(convert, NamedTables):
            return {
                name: self.convert(convert.table, table, path + key_path(name))
                for name, table in value.items()
            }
        if isinstance(convert, ArrayOf):
            return [
                self.convert(convert.item, item, "%s[%d]" % (path, index))
                for index, item in enumerate(value)
            ]
        for converter, made_absolute in self.paths:
            if convert is converter:
                return made_absolute(value, path)
        return value


def _escaped(value: Any, path: str = "") -> Any:
    """
    A value as the dump writes it: strings escaped so that reading the
    dump substitutes nothing (but those read verbatim, see
    L{environment.verbatim}).
    """
    if isinstance(value, dict):
        return {key: _escaped(item, path + key_path(key)) for key, item in value.items()}
    if isinstance(value, list):
        return [_escaped(item, "%s[%d]" % (path, index)) for index, item in enumerate(value)]
    if isinstance(value, str):
        return value if verbatim(path) else escape(value)
    return value
