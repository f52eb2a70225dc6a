"""
The configuration document: the main TOML file and the files it includes,
merged into one document, with environment variables substituted.

C{include = ["conf.d/*.toml"]} at the top of a file names more files, by
glob patterns relative to that file's directory; each pattern's files are
read in sorted order, right after the file that includes them (so an
included file's own includes come before the next pattern's files).  Into
the document go an included file's named tables (C{[upstreams.NAME]},
C{[listeners.NAME]} ...), each name defined once in all the files; its
C{[[routes]]}, after the routes of every file read before it; and its
single tables (C{[server]}, C{[log]}, C{[admin]}), each in one file only.

L{Origins} remembers which file each table came from, so that a problem
names the file it is in and a relative path is taken from the directory
of the file that names it.
"""

from __future__ import annotations

import glob
import os
import re
import sys
from typing import Any, Dict, List, Mapping, Optional, Set, Tuple

import attr

from .environment import substitute
from .schema import ArrayOf, NamedTables, Problem, Table, describe, key_path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - PyPy 3.9
    import tomli as tomllib

#: The key that names more files.
INCLUDE = "include"


class Unreadable(Exception):
    """
    A file cannot be read or is not TOML; the message is one sentence
    naming it.
    """


_TOML_POSITION = re.compile(r"(.*) \(at line (\d+), column (\d+)\)\Z", re.DOTALL)


def read_toml(path: str) -> Dict[str, Any]:
    """
    Read and parse one TOML file.

    @raise Unreadable: when the file cannot be read or is not TOML: a
        sentence naming the file (and the line and column of a syntax
        error), never a traceback.
    """
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise Unreadable(
            "%s: cannot read the configuration file: %s" % (path, error.strerror or error)
        )
    except UnicodeDecodeError as error:
        raise Unreadable("%s: not UTF-8 text (byte %d)" % (path, error.start))
    except tomllib.TOMLDecodeError as error:
        message = str(error)
        match = _TOML_POSITION.match(message)
        if match:
            raise Unreadable(
                "%s:%s:%s: invalid TOML: %s"
                % (path, match.group(2), match.group(3), match.group(1))
            )
        raise Unreadable("%s: invalid TOML: %s" % (path, message))


@attr.s(auto_attribs=True)
class Origins:
    """
    Which file each part of the document came from.

    @ivar main: the main file's path, as given (L{None} for a document
        that came from no file).
    @ivar files: the file of each top-level part that an included file
        gave, by its key path (C{"upstreams.api"}, C{"routes[3]"},
        C{"server"}); every other part is the main file's.
    """

    main: Optional[str] = None
    files: Dict[str, str] = attr.Factory(dict)

    def file(self, path: str) -> Optional[str]:
        """
        The file that holds key path C{path} (C{upstreams.api.servers[0].url}).
        """
        path = path.lstrip(".")
        for prefix, name in self.files.items():
            if path == prefix or path.startswith((prefix + ".", prefix + "[")):
                return name
        return self.main

    def directory(self, path: str) -> str:
        """
        The directory relative file paths at key path C{path} are taken
        from: that of the file that holds it (the current directory for
        a document from no file).
        """
        name = self.file(path)
        return os.path.dirname(os.path.abspath(name)) if name else os.getcwd()

    def render(self, path: str, message: str, name: Optional[str] = None) -> str:
        """
        A problem as a sentence: C{key.path: message}, after the name of
        the file it is in when that is not the main file.

        @param name: the file it is in (default: the one that holds
            C{path} in the merged document).
        """
        sentence = "%s: %s" % (path.lstrip("."), message)
        name = self.file(path) if name is None else name
        return sentence if name == self.main else "%s: %s" % (name, sentence)


@attr.s(auto_attribs=True)
class Document:
    """
    A configuration document as read from its files.

    @ivar data: the merged document, with variables substituted.
    @ivar origins: where each part came from.
    @ivar problems: the problems of substitution and merging, with key
        paths (rendered through L{origins}).
    @ivar sentences: the problems that are already sentences naming their
        file (an included file that cannot be read, a bad include).
    @ivar failed: the key paths whose value substitution left as written,
        about which any further problem would only repeat the first.
    """

    data: Dict[str, Any]
    origins: Origins
    problems: List[Problem] = attr.Factory(list)
    sentences: List[str] = attr.Factory(list)
    failed: List[str] = attr.Factory(list)


def read_document(path: str, schema: Table, environ: Mapping[str, str]) -> Document:
    """
    Read the main configuration file, the files it includes, and
    substitute the variables of C{environ}.

    @param schema: the document's schema, which says of each top-level
        key whether it holds named tables, an array or a single table.
    @raise Unreadable: when the main file cannot be read or parsed (a
        problem with an included file is one of the document's).
    """
    document = Document({}, Origins(path))
    _Merge(document, schema, environ).file(path, read_toml(path), [])
    data, problems = substitute(document.data, environ)
    document.data = data
    document.problems.extend(problems)
    document.failed.extend(where for where, _ in problems)
    return document


class _Merge:
    """
    Reads included files into a L{Document}, depth first.

    @ivar seen: the real path of every file read.
    """

    def __init__(self, document: Document, schema: Table, environ: Mapping[str, str]) -> None:
        self.document = document
        self.schema = schema
        self.environ = environ
        self.seen: Set[str] = set()

    def say(self, name: str, path: str, message: str) -> None:
        """
        A problem at key path C{path} of the file C{name}, as written in
        that file (not in the merged document).
        """
        self.document.sentences.append(self.document.origins.render(path, message, name))

    def file(self, name: str, data: Dict[str, Any], stack: List[str]) -> None:
        """
        Merge the file C{name}, parsed as C{data}, then the files it
        includes.

        @param stack: the real paths of the files that include it.
        """
        real = os.path.realpath(name)
        self.seen.add(real)
        patterns = data.pop(INCLUDE, [])
        if stack:
            self.merge(name, data)
        else:
            self.document.data.update(data)
        for pattern, included in self.included(name, patterns):
            included_real = os.path.realpath(included)
            if included_real in self.seen:
                self.say(
                    name,
                    pattern,
                    "%s is included already%s"
                    % (
                        included,
                        " (an include loop)"
                        if included_real in stack + [real]
                        else ", by another include",
                    ),
                )
                continue
            try:
                parsed = read_toml(included)
            except Unreadable as unreadable:
                self.document.sentences.append(str(unreadable))
                continue
            self.file(included, parsed, stack + [real])

    def included(self, name: str, patterns: Any) -> List[Tuple[str, str]]:
        """
        The files C{name}'s C{include} patterns match, each with the key
        path of its pattern, in order.
        """
        if not isinstance(patterns, list) or not all(
            isinstance(pattern, str) and pattern for pattern in patterns
        ):
            self.say(
                name,
                INCLUDE,
                'expected an array of file patterns such as ["conf.d/*.toml"], got %s'
                % (describe(patterns),),
            )
            return []
        patterns, problems = substitute(patterns, self.environ, INCLUDE)
        for where, message in problems:
            self.say(name, where, message)
        failed = {where for where, _ in problems}
        directory = os.path.dirname(name)
        files = []
        for index, pattern in enumerate(patterns):
            where = "%s[%d]" % (INCLUDE, index)
            if where in failed:
                continue
            full = os.path.join(directory, os.path.expanduser(pattern))
            matches = sorted(glob.glob(full))
            if not matches and not glob.has_magic(full):
                self.say(name, where, "no such file: %s" % (full,))
            files.extend((where, os.path.normpath(match)) for match in matches)
        return files

    def merge(self, name: str, data: Dict[str, Any]) -> None:
        """
        Add an included file's top-level keys to the document.
        """
        merged = self.document.data
        origins = self.document.origins
        for key, value in data.items():
            field = self.schema.fields.get(key)
            convert = field.convert if field is not None else None
            kind = dict if isinstance(convert, NamedTables) else list
            if isinstance(convert, (NamedTables, ArrayOf)) and not isinstance(value, kind):
                # Its converter stops at the type, with that problem.
                for _, message in convert.partial(value)[1]:
                    self.say(name, key, message)
            elif isinstance(convert, NamedTables):
                tables = merged.setdefault(key, {})
                for table_name, table in value.items() if isinstance(tables, dict) else ():
                    where = key + key_path(table_name)
                    if table_name in tables:
                        self.say(name, where, "already defined in %s" % (origins.file(where),))
                    else:
                        tables[table_name] = table
                        origins.files[where] = name
            elif isinstance(convert, ArrayOf):
                items = merged.setdefault(key, [])
                for item in value if isinstance(items, list) else ():
                    origins.files["%s[%d]" % (key, len(items))] = name
                    items.append(item)
            elif key in merged:
                self.say(name, key, "already defined in %s" % (origins.file(key),))
            else:
                merged[key] = value
                origins.files[key] = name
