"""
The complete examples of the docs, taken from the documents themselves so
that they cannot go stale: a literal block captioned with a file name.
"""

from __future__ import annotations

import re
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Dict, Iterable, Iterator

import twisted.plugins

from .processes import SOURCE_ROOT, source_tree_environment

#: A literal block captioned with a file name: ``path``:: and its lines.
_EXAMPLE_FILE = re.compile(r"^``([\w/.]+)``::\n\n((?:(?:    .*)?\n)+)", re.MULTILINE)


def example_files(document: str) -> Dict[str, str]:
    """
    The files of the example in C{docs/DOCUMENT}, by path.
    """
    text = (SOURCE_ROOT / "docs" / document).read_text()
    return {
        path: "\n".join(line[4:] for line in body.splitlines()).strip() + "\n"
        for path, body in _EXAMPLE_FILE.findall(text)
    }


@contextmanager
def installed_example(
    files: Dict[str, str], directory: Path, modules: Iterable[str]
) -> Iterator[Path]:
    """
    Write an example plugin's files into C{directory}, and put it on the
    Python path and the plugin path for the length of the block.

    @param modules: the modules the example defines, forgotten after.
    """
    for path, text in files.items():
        (directory / path).parent.mkdir(parents=True, exist_ok=True)
        (directory / path).write_text(text)
    plugins = str(directory / "twisted" / "plugins")
    sys.path.insert(0, str(directory))
    twisted.plugins.__path__.append(plugins)
    try:
        yield directory
    finally:
        twisted.plugins.__path__.remove(plugins)
        sys.path.remove(str(directory))
        for module in modules:
            sys.modules.pop(module, None)


def check_with_plugins(directory: Path, config_text: str):
    """
    As an operator would: the plugin's directory on PYTHONPATH, and
    C{txrevproxy check} run in a new process on C{config_text}.

    @return: the L{subprocess.CompletedProcess}.
    """
    config = directory / "proxy.toml"
    config.write_text(config_text)
    environment = source_tree_environment()
    environment["PYTHONPATH"] = "%s:%s" % (directory, environment["PYTHONPATH"])
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from txrevproxy.tools.cli import main; sys.exit(main())",
            "check",
            "--config",
            str(config),
        ],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        timeout=120,
    )
