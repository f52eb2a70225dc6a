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

#: The keys whose string values are secrets, wherever they are (lower-case):
#: the admin token, api_key's keys, credentials a plugin's filter may take,
#: and header values that carry credentials.
SECRET_KEYS = frozenset(
    [
        "token",
        "keys",
        "password",
        "secret",
        "client_secret",
        "api_key",
        "authorization",
        "proxy-authorization",
    ]
)


def dump_config(
    path: str, show_secrets: bool = False, environ: Optional[Mapping[str, str]] = None
) -> Tuple[Config, str]:
    """
    Load a configuration file, and write its effective configuration.

    @param environ: the variables (default: this process's environment).
    @return: the configuration, and the TOML text of L{effective_toml}.
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
    return dumps(_written(effective, show_secrets))


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


def _written(value: Any, show_secrets: bool, secret: bool = False, path: str = "") -> Any:
    """
    A value as the dump writes it: strings escaped so that reading the
    dump substitutes nothing (but those read verbatim, see
    L{environment.verbatim}), and those of L{SECRET_KEYS} masked unless
    C{show_secrets}.
    """
    if isinstance(value, dict):
        return {
            key: _written(
                item, show_secrets, secret or key.lower() in SECRET_KEYS, path + key_path(key)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _written(item, show_secrets, secret, "%s[%d]" % (path, index))
            for index, item in enumerate(value)
        ]
    if isinstance(value, str):
        if secret and not show_secrets:
            return REDACTED
        return value if verbatim(path) else escape(value)
    return value
