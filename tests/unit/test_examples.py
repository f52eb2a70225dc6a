"""
Every configuration in C{examples/} passes C{txrevproxy check}: the docs
point readers at them, so none may rot.
"""

from __future__ import annotations

import pytest

from ..support.commands import run
from ..support.processes import SOURCE_ROOT

EXAMPLES = sorted((SOURCE_ROOT / "examples").glob("*.toml"))


def test_there_are_examples():
    assert [path.name for path in EXAMPLES][:1], "no examples/*.toml found"


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_passes_check(path):
    status, out, err = run(["check", "--config", str(path)])
    assert (status, err) == (0, "")
    assert out.startswith("%s: OK: " % (path,))
