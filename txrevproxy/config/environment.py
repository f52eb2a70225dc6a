"""
Environment variables in the configuration file: C{${NAME}} and
C{${NAME:-default}} in string values.

Substitution happens after the TOML is parsed, in values only (never in
keys), so that TOML quoting stays as it is and a variable can never make
a table or a key appear.  C{$${} is a literal C{${}; any other C{$} is kept
as written.  A value a variable brings in is not scanned again.

A route's C{rewrite.replacement} is a template of its own, whose C{${1}}
and C{${name}} name the pattern's groups (as they did before variables
existed): it is left as written (L{verbatim}).

Each process reads its own environment when it loads the file: a reload
(SIGHUP) re-reads the environment of the running process, which a shell
cannot change from outside.
"""

from __future__ import annotations

import re
from typing import Any, List, Mapping, Tuple

from .schema import Problem, describe, key_path

#: C{$${} (a literal C{${}), or C{${...}} (a reference), or an unclosed C{${}.
_TOKEN = re.compile(r"\$\$\{|\$\{([^}]*)\}|\$\{")

_REFERENCE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)(?::-(.*))?\Z", re.DOTALL)

#: The key paths whose strings use C{${...}} for something else.
_VERBATIM = re.compile(r"\.?routes\[\d+\]\.rewrite\.replacement\Z")


def verbatim(path: str) -> bool:
    """
    Whether the string at key path C{path} is left as written: neither
    substituted when read nor escaped when dumped.
    """
    return _VERBATIM.match(path) is not None


def substitute(
    value: Any, environ: Mapping[str, str], path: str = ""
) -> Tuple[Any, List[Problem]]:
    """
    A parsed TOML value with the variables of its strings replaced, at any
    depth of tables and arrays.

    C{${NAME:-default}} takes the default when C{NAME} is unset or empty,
    as a POSIX shell does.

    @param environ: the variables, such as L{os.environ}.
    @param path: the key path of C{value}, for problems.
    @return: the new value, and a problem for every reference to an unset
        variable without a default and every malformed reference, with its
        key path; a string with a problem is kept as written.
    """
    problems: List[Problem] = []
    return _walk(value, environ, path, problems), problems


def _walk(value: Any, environ: Mapping[str, str], path: str, problems: List[Problem]) -> Any:
    if isinstance(value, str):
        return value if verbatim(path) else _string(value, environ, path, problems)
    if isinstance(value, dict):
        return {
            key: _walk(item, environ, path + key_path(key), problems)
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [
            _walk(item, environ, "%s[%d]" % (path, index), problems)
            for index, item in enumerate(value)
        ]
    return value


def _string(text: str, environ: Mapping[str, str], path: str, problems: List[Problem]) -> str:
    if "${" not in text:
        return text
    out = []
    position = 0
    failed = False
    for match in _TOKEN.finditer(text):
        out.append(text[position : match.start()])
        position = match.end()
        token = match.group(0)
        if token == "$${":
            out.append("${")
            continue
        reference = _REFERENCE.match(match.group(1) or "")
        if match.group(1) is None or reference is None:
            failed = True
            problems.append(
                (
                    path,
                    "%s in %s is not a variable such as ${NAME} or ${NAME:-default} "
                    "(write $${ for a literal ${)" % (token, describe(text)),
                )
            )
            continue
        name, default = reference.groups()
        found = environ.get(name)
        if found is None and default is None:
            failed = True
            problems.append((path, "environment variable %s is not set" % (name,)))
        else:
            out.append(default if default is not None and not found else found)
    out.append(text[position:])
    return text if failed else "".join(out)


def escape(text: str) -> str:
    """
    C{text} written so that substitution gives it back: every C{${} as
    C{$${}.
    """
    return text.replace("${", "$${")
