"""
Writing a parsed TOML document back as TOML text: the few types a
configuration holds (tables, arrays, strings, integers, floats, booleans,
dates and times), in a form any TOML 1.0 parser reads back to the same
document.

Tables reached through tables only get a C{[header]}; an array of tables at
the top (C{routes}) gets C{[[routes]]} headers; everything inside an array
is written inline, as a configuration is usually written by hand.
"""

from __future__ import annotations

import datetime
import json
import math
import re
from typing import Any, List, Mapping, Sequence

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


def dumps(document: Mapping[str, Any]) -> str:
    """
    The TOML text of a document.
    """
    lines: List[str] = []
    _table(lines, (), document, top=True)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: List[str], path: Sequence[str], table: Mapping[str, Any], top: bool) -> None:
    for key, value in table.items():
        if not isinstance(value, dict) and not (top and _tables(value)):
            lines.append("%s = %s" % (_key(key), inline(value)))
    for key, value in table.items():
        inner = tuple(path) + (key,)
        if isinstance(value, dict):
            # A table of tables only needs the headers of its tables.
            if not value or not all(isinstance(item, dict) for item in value.values()):
                lines.extend(["", "[%s]" % (".".join(_key(part) for part in inner),)])
            _table(lines, inner, value, top=False)
        elif top and _tables(value):
            for item in value:
                lines.extend(["", "[[%s]]" % (_key(key),)])
                for item_key, item_value in item.items():
                    lines.append("%s = %s" % (_key(item_key), inline(item_value)))


def _tables(value: Any) -> bool:
    """
    Whether C{value} is a non-empty array of tables.
    """
    return isinstance(value, list) and bool(value) and all(
        isinstance(item, dict) for item in value
    )


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else _string(key)


def _string(text: str) -> str:
    # JSON's escapes are TOML's; TOML also forbids a raw DEL.
    return json.dumps(text, ensure_ascii=False).replace("\x7f", "\\u007f")


def inline(value: Any) -> str:
    """
    A value written inline, as in C{key = VALUE}: tables as inline tables.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "{ %s }" % (
            ", ".join("%s = %s" % (_key(key), inline(item)) for key, item in value.items()),
        )
    if isinstance(value, list):
        return "[%s]" % (", ".join(inline(item) for item in value),)
    raise TypeError("no TOML form for %r" % (value,))
