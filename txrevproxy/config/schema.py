"""
A small declarative schema for TOML tables: each table lists its keys as
L{Field}s, each with a converter and a default, and conversion collects every
problem with its key path instead of stopping at the first.

A converter is any callable that takes a value as parsed from TOML and
returns the converted value, or raises L{Invalid}.  L{Table}, L{array_of} and
L{named_tables} are converters too, so tables nest.  Adding a key to the
configuration is one line in a table's C{fields}::

    UPSTREAM = Table(Upstream, {
        "servers": Field(array_of(BACKEND, min_items=1)),
        "connect_timeout": Field(duration, default="5s"),
    })
"""

from __future__ import annotations

import difflib
import json
import re
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Tuple

import attr

Converter = Callable[..., Any]

#: A problem: the key path relative to the value being converted (C{""},
#: C{".servers"}, C{"[2].url"}), and a sentence.
Problem = Tuple[str, str]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+\Z")


class Invalid(Exception):
    """
    A value could not be converted.

    @ivar problems: one or more L{Problem}s, with paths relative to the
        value that was being converted.
    """

    def __init__(self, message: str = "", problems: Iterable[Problem] = ()) -> None:
        self.problems: List[Problem] = list(problems) or [("", message)]
        super().__init__(self.problems)


def key_path(key: str) -> str:
    """
    The path fragment of a table key: C{.name}, or C{."a name"} when the key
    is not a TOML bare key.
    """
    return "." + (key if _BARE_KEY.match(key) else json.dumps(key))


def describe(value: Any) -> str:
    """
    A TOML value as a message shows it: strings quoted, booleans as C{true}
    and C{false}, containers by kind.
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return "a date or time"


def expected(what: str, value: Any) -> Invalid:
    """
    The usual type problem: C{expected a duration such as "5s", got 5}.
    """
    return Invalid("expected %s, got %s" % (what, describe(value)))


class _Collector:
    """
    Runs converters, keeping every problem under its path.
    """

    def __init__(self) -> None:
        self.problems: List[Problem] = []

    def convert(self, path: str, convert: Converter, value: Any, **extra: Any) -> Any:
        try:
            return convert(value, **extra)
        except Invalid as invalid:
            self.problems.extend(
                (path + sub, message) for sub, message in invalid.problems
            )
            return _FAILED

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))


_FAILED = object()

#: L{Field.default} of a key that must be present.
REQUIRED = object()
#: L{Field.default} of a key that, when absent, leaves the model's own
#: default (for example C{Route.preserve_host}, whose default None means
#: "as the upstream says").
MODEL_DEFAULT = object()


@attr.s(frozen=True, auto_attribs=True)
class Field:
    """
    One key of a table.

    @ivar convert: the converter of the key's value.
    @ivar default: the value used when the key is absent, written as in the
        file (C{"5s"}, not C{5.0}) and converted like a written value; or
        L{REQUIRED} or L{MODEL_DEFAULT}.
    @ivar attribute: the model attribute's name, when it is not the key.
    @ivar missing: the sentence for a missing required key.
    """

    convert: Converter
    default: Any = REQUIRED
    attribute: Optional[str] = None
    missing: str = "required key is missing"


@attr.s(frozen=True, auto_attribs=True)
class Table:
    """
    A converter of a TOML table into a model object.

    @ivar build: called with the converted fields as keyword arguments (and
        any extra keyword arguments the table was called with, such as
        C{name} or C{index}).
    @ivar fields: the table's keys; any other key is a problem.
    @ivar checks: functions of the converted keyword arguments that return
        further problems (relations between keys); run only when every key
        converted.
    """

    build: Callable[..., Any]
    fields: Mapping[str, Field]
    checks: Tuple[Callable[[Dict[str, Any]], Iterable[Problem]], ...] = ()

    def __call__(self, value: Any, **extra: Any) -> Any:
        arguments, problems = self.arguments(value)
        if problems:
            raise Invalid(problems=problems)
        return self.build(**arguments, **extra)

    def arguments(self, value: Any, parts: bool = False) -> Tuple[Dict[str, Any], List[Problem]]:
        """
        Convert what converts.

        @param parts: keep, of a key whose converter is an L{ArrayOf} or
            L{NamedTables}, the items that convert rather than dropping
            the key for one bad item; for the document as a whole, so
            that the checks of one table against another run on every
            table that is right.
        @return: the keyword arguments of the model of every key that
            converted, and the problems of the others (the table's
            C{checks} run only when there are none).
        """
        if not isinstance(value, dict):
            return {}, expected("a table", value).problems
        collector = _Collector()
        for key in value:
            if key not in self.fields:
                collector.add(key_path(key), unknown_key(key, self.fields))
        arguments: Dict[str, Any] = {}
        for key, field in self.fields.items():
            if key in value:
                raw = value[key]
            elif field.default is REQUIRED:
                collector.add(key_path(key), field.missing)
                continue
            elif field.default is MODEL_DEFAULT:
                continue
            else:
                raw = field.default
            convert = field.convert
            if parts and isinstance(convert, _Parts):
                converted, problems = convert.partial(raw)
                collector.problems.extend(
                    (key_path(key) + path, text) for path, text in problems
                )
            else:
                converted = collector.convert(key_path(key), convert, raw)
            if converted is not _FAILED:
                arguments[field.attribute or key] = converted
        if not collector.problems:
            for check in self.checks:
                collector.problems.extend(check(arguments))
        return arguments, collector.problems


@attr.s(frozen=True, auto_attribs=True)
class TableForms:
    """
    A converter of a table that comes in several forms, each named by a
    key that only it has (a server entry's C{url}, C{dns} or C{srv}):
    exactly one of those keys must be present, and the form it names
    converts the table.

    @ivar forms: the L{Table} of each form, by the key that names it.
    @ivar missing: the sentence for a table with none of those keys, at
        the first key's path.
    """

    forms: Mapping[str, Table]
    missing: str

    def form(self, value: Any) -> Optional[Table]:
        """
        The form of a table with exactly one of the keys, else L{None}.
        """
        present = [key for key in self.forms if key in value]
        return self.forms[present[0]] if len(present) == 1 else None

    def __call__(self, value: Any) -> Any:
        if not isinstance(value, dict):
            raise expected("a table", value)
        present = [key for key in self.forms if key in value]
        if not present:
            raise Invalid(problems=[(key_path(next(iter(self.forms))), self.missing)])
        if len(present) > 1:
            raise Invalid(
                problems=[
                    (
                        key_path(key),
                        "only one of %s, not %s together"
                        % (", ".join(self.forms), " and ".join(present)),
                    )
                    for key in present[1:]
                ]
            )
        return self.forms[present[0]](value)


def unknown_key(key: str, known: Iterable[str]) -> str:
    """
    The problem of an unknown key, with the closest known one as a
    suggestion, or the list of known keys when none is close.
    """
    known = sorted(known)
    close = difflib.get_close_matches(key, known, n=1)
    if close:
        return 'unknown key; did you mean "%s"?' % (close[0],)
    return "unknown key (known keys: %s)" % (", ".join(known),)


class _Parts:
    """
    A converter of a container that can also keep the items that convert
    (see L{Table.arguments}): a subclass's C{partial} returns them with
    the problems of the others.
    """

    def __call__(self, value: Any) -> Any:
        converted, problems = self.partial(value)
        if problems:
            raise Invalid(problems=problems)
        return converted


@attr.s(frozen=True, auto_attribs=True)
class ArrayOf(_Parts):
    """
    A converter of an array whose items are converted by C{item}, to a
    tuple (see L{array_of}).
    """

    item: Converter
    min_items: int = 0
    indexed: bool = False
    what: str = "an array"

    def partial(self, value: Any) -> Tuple[Any, List[Problem]]:
        """
        The items that convert, and the problems of the others (or
        L{_FAILED} and the problem of a value that is no array at all).
        """
        if not isinstance(value, list):
            return _FAILED, expected(self.what, value).problems
        if len(value) < self.min_items:
            return _FAILED, Invalid(
                "must not be empty"
                if self.min_items == 1
                else "must have at least %d items, got %d" % (self.min_items, len(value))
            ).problems
        collector = _Collector()
        items = []
        for index, raw in enumerate(value):
            extra = {"index": index} if self.indexed else {}
            converted = collector.convert("[%d]" % (index,), self.item, raw, **extra)
            if converted is not _FAILED:
                items.append(converted)
        return tuple(items), collector.problems


def array_of(
    item: Converter,
    min_items: int = 0,
    indexed: bool = False,
    what: str = "an array",
) -> ArrayOf:
    """
    A converter of an array whose items are converted by C{item}.

    @param min_items: the fewest items allowed.
    @param indexed: call C{item} with C{index=} the item's position.
    @param what: the array's description in a type problem.
    @return: a converter to a tuple.
    """
    return ArrayOf(item, min_items, indexed, what)


_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")


@attr.s(frozen=True, auto_attribs=True)
class NamedTables(_Parts):
    """
    A converter of a table of named tables (C{[listeners.NAME]}), each
    converted by C{table} called with C{name=NAME}, to a dict from name to
    model object (see L{named_tables}).
    """

    table: Converter
    min_items: int = 0
    example: str = ""

    def partial(self, value: Any) -> Tuple[Any, List[Problem]]:
        """
        The tables that convert, and the problems of the others (or
        L{_FAILED} and the problem of a value that is no table at all).
        """
        if not isinstance(value, dict):
            return _FAILED, expected(
                "a table of named tables such as %s" % (self.example,), value
            ).problems
        if len(value) < self.min_items:
            return _FAILED, Invalid(
                "at least one table such as %s is required" % (self.example,)
            ).problems
        collector = _Collector()
        converted = {}
        for name, raw in value.items():
            path = key_path(name)
            if not _NAME.match(name):
                collector.add(path, "a name may only contain letters, digits, _ and -")
                continue
            table = collector.convert(path, self.table, raw, name=name)
            if table is not _FAILED:
                converted[name] = table
        return converted, collector.problems


def named_tables(table: Converter, min_items: int = 0, example: str = "") -> NamedTables:
    """
    A converter of a table of named tables (C{[listeners.NAME]}), each
    converted by C{table} called with C{name=NAME}.

    Names are restricted to letters, digits, C{_} and C{-}: they appear in
    references (C{upstream = "app"}), logs and metrics.

    @param example: a TOML header shown when there are too few tables.
    @return: a converter to a dict from name to model object.
    """
    return NamedTables(table, min_items, example)


def missing_reference(wanted: Any, known: Iterable[str], what: str) -> Optional[str]:
    """
    The problem of a reference to a named table that does not exist (with
    the closest name as a suggestion), or None when it exists or is not a
    name at all (its own converter reports that).
    """
    if not isinstance(wanted, str) or not wanted or wanted in known:
        return None
    message = 'no %s named "%s"' % (what, wanted)
    close = difflib.get_close_matches(wanted, list(known), n=1)
    if close:
        message += '; did you mean "%s"?' % (close[0],)
    return message


def converted_pairs(value: Mapping[str, Any], convert_key, convert_value) -> List[Tuple[Any, Any]]:
    """
    The C{(key, value)} pairs of a TOML table, each key and value through
    its converter, in the table's order; every problem is collected with
    its key path before one L{Invalid} carries them all.
    """
    problems: List[Problem] = []
    pairs = []
    for key, raw in value.items():
        try:
            pairs.append((convert_key(key), convert_value(raw)))
        except Invalid as invalid:
            problems.extend((key_path(key) + path, text) for path, text in invalid.problems)
    if problems:
        raise Invalid(problems=problems)
    return pairs
