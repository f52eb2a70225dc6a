"""
The packages of txrevproxy are layers (see docs/architecture.rst): each
imports only the layers below it, so no two packages import each other and
no import circle can form.  Read from the source with L{ast}, function-level
imports included, so a circle cannot hide behind an import inside a
function either.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Dict, Iterator, List, Set, Tuple

import pytest

import txrevproxy

PACKAGE = Path(txrevproxy.__file__).parent

#: The layers, lowest first.  A module may import its own package and the
#: packages of lower layers; packages in one layer do not import each other.
LAYERS: List[Tuple[str, ...]] = [
    ("txrevproxy", "interfaces"),
    ("plugins", "http", "net"),
    ("tls",),
    ("config",),
    ("redis",),
    ("observe",),
    ("server",),
    ("routing", "filters", "upstream"),
    ("forward",),
    ("cache",),
    ("app",),
    ("tools",),
]

LAYER_OF: Dict[str, int] = {
    package: level for level, packages in enumerate(LAYERS) for package in packages
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES: Dict[str, Path] = {
    module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))
}


def room(module: str) -> str:
    """
    The package (the layer's room) of a txrevproxy module: its first name
    under C{txrevproxy}, or C{txrevproxy} for the package's own module.
    """
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "txrevproxy"


def imported_modules(module: str) -> Iterator[Tuple[str, int]]:
    """
    The txrevproxy modules that C{module} imports, anywhere in it, with
    the line of each import.
    """
    path = MODULES[module]
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        names: List[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                if not is_package:
                    base = base[:-1]
                base = base[: len(base) - (node.level - 1)]
                parent = ".".join(base + ([node.module] if node.module else []))
            else:
                parent = node.module or ""
            names = [parent] + [parent + "." + alias.name for alias in node.names]
        for name in names:
            while name and name not in MODULES and "." in name:
                name = name.rsplit(".", 1)[0]
            if name in MODULES and name != module:
                yield name, node.lineno


IMPORTS: Dict[str, Set[str]] = {
    module: {name for name, _ in imported_modules(module)} for module in MODULES
}


def test_every_package_has_a_layer():
    """
    A new package is given its place in L{LAYERS} (and in
    docs/architecture.rst) when it is added.
    """
    assert sorted({room(module) for module in MODULES} - set(LAYER_OF)) == []


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_go_down_the_layers_only(module):
    own = room(module)
    upward = [
        "%s (line %d) imports %s" % (module, line, name)
        for name, line in imported_modules(module)
        if room(name) != own and LAYER_OF[room(name)] >= LAYER_OF[own]
    ]
    assert upward == []


def test_no_import_circle_between_modules():
    """
    No module imports itself back through others (package-internal
    circles included).
    """
    state: Dict[str, int] = {}
    circles: List[List[str]] = []

    def visit(module: str, path: List[str]) -> None:
        state[module] = 1
        for name in sorted(IMPORTS[module]):
            if state.get(name) == 1:
                circles.append(path[path.index(name) :] + [name])
            elif name not in state:
                visit(name, path + [name])
        state[module] = 2

    for module in sorted(MODULES):
        if module not in state:
            visit(module, [module])
    assert circles == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    """
    The check itself: an import from a lower layer to a higher one is
    found, relative or absolute, at module level or inside a function.
    """
    source = (
        "from ..app.service import ProxyService\n"
        "def later():\n"
        "    import txrevproxy.tools.cli\n"
    )
    module = "txrevproxy.http.headers"
    original = MODULES[module]
    fake = tmp_path / "headers.py"
    fake.write_text(source)
    MODULES[module] = fake
    try:
        found = sorted({name for name, _ in imported_modules(module)})
    finally:
        MODULES[module] = original
    assert found == ["txrevproxy.app.service", "txrevproxy.tools.cli"]
    assert all(LAYER_OF[room(name)] > LAYER_OF["http"] for name in found)
