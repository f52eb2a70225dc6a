"""
The benchmark harness's directory on C{sys.path}: its modules import each
other as top-level modules (C{benchmarks/run.py} is run as a script).
Import this before them.
"""

from __future__ import annotations

import sys

from .processes import SOURCE_ROOT

BENCHMARKS = str(SOURCE_ROOT / "benchmarks")

if BENCHMARKS not in sys.path:
    sys.path.insert(0, BENCHMARKS)
