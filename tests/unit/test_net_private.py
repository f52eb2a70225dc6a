"""
Tests of the rule of L{txrevproxy.net}: every private Twisted name the
proxy relies on is listed in the C{TWISTED_PRIVATE} of a module there and
exists in the Twisted that is installed, and no module outside the package
uses one.
"""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import socket
import textwrap
import types
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Set, Tuple

import pytest
from twisted.internet.protocol import Protocol
from twisted.internet.testing import MemoryReactorClock

import twisted
import txrevproxy
import txrevproxy.net

PACKAGE = Path(txrevproxy.__file__).parent


def net_modules() -> List[str]:
    """
    The modules of L{txrevproxy.net}, those added later included.
    """
    prefix = txrevproxy.net.__name__ + "."
    return sorted(
        info.name
        for info in pkgutil.walk_packages(txrevproxy.net.__path__, prefix)
    )


def listed() -> Iterator[Tuple[str, Tuple[str, ...]]]:
    """
    Each entry of every C{TWISTED_PRIVATE} in L{txrevproxy.net}: the module
    that lists it, and its dotted paths (the alternatives, when there are
    several).
    """
    for name in net_modules():
        module = importlib.import_module(name)
        if name == txrevproxy.net.__name__:
            continue
        for entry in module.TWISTED_PRIVATE:
            yield name, (entry,) if isinstance(entry, str) else tuple(entry)


def _tcp_connection(cls):
    reactor = MemoryReactorClock()
    ours, theirs = socket.socketpair()
    try:
        return cls(ours, Protocol(), reactor)
    finally:
        ours.close()
        theirs.close()


def _request(cls):
    from twisted.web.test.requesthelper import DummyChannel

    return cls(DummyChannel())


def _h2_connection(cls):
    return cls(MemoryReactorClock())


def _no_arguments(cls):
    return cls()


#: How to build an instance of a Twisted class (or of a subclass that takes
#: the same arguments), to find the attributes its C{__init__} sets.
BUILDERS: Dict[str, Callable] = {
    "twisted.internet.tcp.Connection": _tcp_connection,
    "twisted.web.http.Request": _request,
    "twisted.web._http2.H2Connection": _h2_connection,
    "twisted.web.http.HTTPChannel": _no_arguments,
}


def _instance(cls) -> Optional[object]:
    for base in cls.__mro__:
        builder = BUILDERS.get("%s.%s" % (base.__module__, base.__qualname__))
        if builder is not None:
            try:
                return builder(cls)
            except Exception:
                return None
    return None


def _assigned_in_source(cls, name: str) -> bool:
    """
    Whether a class of C{cls}'s MRO assigns C{self.<name>} in one of its
    methods, or declares C{name} in its body (an annotation).
    """
    for klass in cls.__mro__:
        if name in getattr(klass, "__annotations__", {}):
            return True
        try:
            source = textwrap.dedent(inspect.getsource(klass))
        except (OSError, TypeError):
            continue
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and node.attr == name
                and isinstance(node.value, ast.Name)
                and node.value.id == "self"
            ):
                return True
    return False


def exists(path: str) -> bool:
    """
    Whether the dotted C{path} names something in the installed Twisted:
    a module, a module's attribute, a class's attribute or method, or an
    attribute a class sets on its instances (seen on an instance when one
    can be built, else in the class's source).
    """
    parts = path.split(".")
    for split in range(len(parts), 0, -1):
        try:
            found = importlib.import_module(".".join(parts[:split]))
        except ImportError:
            continue
        break
    else:
        return False
    for index, part in enumerate(parts[split:], split):
        try:
            found = getattr(found, part)
        except AttributeError:
            if index != len(parts) - 1 or not isinstance(found, type):
                return False
            instance = _instance(found)
            if instance is not None and hasattr(instance, part):
                return True
            return _assigned_in_source(found, part)
    return True


ENTRIES = list(listed())


@pytest.mark.parametrize(
    "module, alternatives",
    ENTRIES,
    ids=["%s:%s" % (module, "|".join(paths)) for module, paths in ENTRIES],
)
def test_listed_private_name_exists(module: str, alternatives: Tuple[str, ...]):
    """
    Each private Twisted name a module of L{txrevproxy.net} lists (or one
    of its alternatives) exists in the installed Twisted.
    """
    if not any(exists(path) for path in alternatives):
        pytest.fail(
            "%s relies on %s, which Twisted %s does not have: the Twisted "
            "version changed; update %s for it and list what it uses now."
            % (module, " or ".join(alternatives), twisted.__version__, module)
        )


def test_every_net_module_lists_its_names():
    """
    Every module of L{txrevproxy.net} has a C{TWISTED_PRIVATE} of dotted
    paths under C{twisted}, or tuples of them.
    """
    for name in net_modules():
        if name == txrevproxy.net.__name__:
            continue
        module = importlib.import_module(name)
        assert isinstance(getattr(module, "TWISTED_PRIVATE", None), tuple), name
    for module, paths in ENTRIES:
        assert paths and all(p.startswith("twisted.") for p in paths), (module, paths)


def test_the_names_of_a_twisted_upgrade_are_found_missing():
    """
    L{exists} tells a missing name from present ones of each kind.
    """
    assert exists("twisted.web.http.HTTPChannel")
    assert exists("twisted.internet.tcp.Connection._tempDataLen")
    assert exists("twisted.protocols.tls.TLSMemoryBIOProtocol._tlsConnection")
    assert not exists("twisted.web.http._NoSuchName")
    assert not exists("twisted.internet.tcp.Connection._noSuchAttribute")
    assert not exists("twisted._no_such_module.Name")


def _private_names() -> Set[str]:
    """
    The underscored last names of every C{TWISTED_PRIVATE} path.
    """
    return {
        path.rsplit(".", 1)[1]
        for _, paths in ENTRIES
        for path in paths
        if path.rsplit(".", 1)[1].startswith("_")
    }


def _outside_net() -> Iterator[Tuple[str, Path]]:
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        name = ".".join(parts)
        if name == "txrevproxy.net" or name.startswith("txrevproxy.net."):
            continue
        yield name, path


def _twisted_private_module(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "twisted" and any(p.startswith("_") for p in parts)


def _derives_from_twisted(module, node: ast.ClassDef) -> bool:
    """
    Whether the class of C{node} has a Twisted class among its bases;
    when it cannot be found (defined in a function), assume it has.
    """
    cls = getattr(module, node.name, None)
    if not isinstance(cls, type):
        return True
    return any(base.__module__.startswith("twisted.") for base in cls.__mro__)


class PrivateUses(ast.NodeVisitor):
    """
    Collects the private Twisted names a module's source uses.
    """

    def __init__(self, module, names: Set[str]) -> None:
        self.module = module
        self.names = names
        self.found: List[str] = []
        self._in_twisted_class = [False]

    def _found(self, node, what: str) -> None:
        self.found.append("line %d: %s" % (node.lineno, what))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            if _twisted_private_module(alias.name):
                self._found(node, "import " + alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        source = node.module or ""
        if node.level or not source.split(".")[0] == "twisted":
            return
        if _twisted_private_module(source):
            self._found(node, "from %s import ..." % (source,))
        for alias in node.names:
            if alias.name.startswith("_"):
                self._found(node, "from %s import %s" % (source, alias.name))

    def visit_ClassDef(self, node: ast.ClassDef) -> None:
        self._in_twisted_class.append(_derives_from_twisted(self.module, node))
        self.generic_visit(node)
        self._in_twisted_class.pop()

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        if self._in_twisted_class[-1] and node.name in self.names:
            self._found(node, "overrides %s" % (node.name,))
        self.generic_visit(node)

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in self.names:
            owner = node.value
            on_self = (isinstance(owner, ast.Name) and owner.id == "self") or (
                isinstance(owner, ast.Call)
                and isinstance(owner.func, ast.Name)
                and owner.func.id == "super"
            )
            if not on_self or self._in_twisted_class[-1]:
                self._found(node, "." + node.attr)
        self.generic_visit(node)

    def visit_Call(self, node: ast.Call) -> None:
        if (
            isinstance(node.func, ast.Name)
            and node.func.id in ("getattr", "setattr", "hasattr", "delattr")
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and node.args[1].value in self.names
        ):
            self._found(node, "%s(..., %r)" % (node.func.id, node.args[1].value))
        self.generic_visit(node)


def test_no_private_twisted_name_outside_net():
    """
    No module outside L{txrevproxy.net} imports a private Twisted module
    or name, or
    uses, overrides or looks up an underscored name that a module of
    L{txrevproxy.net} lists.
    """
    names = _private_names()
    uses = []
    for name, path in _outside_net():
        visitor = PrivateUses(importlib.import_module(name), names)
        visitor.visit(ast.parse(path.read_text(encoding="utf-8")))
        uses.extend("%s %s" % (name, each) for each in visitor.found)
    assert not uses, (
        "private Twisted API used outside txrevproxy.net; move it into a "
        "module there that lists it in TWISTED_PRIVATE:\n" + "\n".join(uses)
    )


@pytest.mark.parametrize(
    "source, found",
    [
        ("from twisted.web.http import _MalformedChunkedDataError\n", True),
        ("from twisted.protocols.haproxy._wrapper import HAProxyWrappingFactory\n", True),
        ("import twisted.web._http2\n", True),
        ("from twisted.web.http import HTTPChannel\n", False),
        ("def f(t):\n    return t._tempDataLen\n", True),
        ("def f(e):\n    return getattr(e, '_port', 0)\n", True),
        ("class C:\n    def f(self):\n        return self._port\n", False),
        (
            "from twisted.protocols.tls import TLSMemoryBIOFactory\n"
            "class C(TLSMemoryBIOFactory):\n"
            "    def _applyProtocolNegotiation(self, c):\n"
            "        pass\n",
            True,
        ),
    ],
    ids=[
        "private name imported",
        "private module imported",
        "private module imported whole",
        "public name imported",
        "listed name read on another object",
        "listed name looked up by getattr",
        "own attribute of the same name",
        "listed method overridden in a Twisted subclass",
    ],
)
def test_private_uses_are_found(source: str, found: bool):
    """
    L{PrivateUses} finds private imports, listed names on other objects,
    and listed names on or overridden in subclasses of Twisted's classes,
    but not a class's own attribute of the same name.
    """
    module = types.ModuleType("example")
    exec(compile(source, "<example>", "exec"), module.__dict__)
    visitor = PrivateUses(module, _private_names())
    visitor.visit(ast.parse(source))
    assert bool(visitor.found) == found, visitor.found
