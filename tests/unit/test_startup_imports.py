"""
What a proxy process imports to serve: every module stays in memory for
the process's life (on PyPy about 40 MiB of modules at rest), so what only
tests or a rare task need is imported where it is used.
"""

from __future__ import annotations

import json
import subprocess
import sys

#: Imported by what the twistd plugin's makeService imports and runs.
SERVING = (
    "txrevproxy.app.admin",
    "txrevproxy.app.service",
    "txrevproxy.app.workers",
    "txrevproxy.config",
    "txrevproxy.net.reactor",
    "txrevproxy.server.http2",
)

#: Twisted's test framework (with unittest, doctest and pdb), and the ACME
#: client's libraries, needed only when a certificate is ordered.
NOT_AT_START = ("twisted.trial", "unittest", "pdb", "acme", "josepy", "requests", "treq")

_PROGRAM = """
import json, sys
for name in %r:
    __import__(name)
print(json.dumps(sorted(sys.modules)))
"""


def test_serving_imports_neither_test_framework_nor_acme_client():
    output = subprocess.run(
        [sys.executable, "-c", _PROGRAM % (SERVING,)],
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    loaded = set(json.loads(output))
    assert set(SERVING) <= loaded
    assert sorted(loaded & set(NOT_AT_START)) == []
