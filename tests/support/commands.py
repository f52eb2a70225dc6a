"""
Running the txrevproxy command, in-process or installed as a process, and
capturing what it prints.
"""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path
from typing import Dict, List, Optional, Tuple

from txrevproxy.tools.cli import main

from .processes import source_tree_environment


def run(arguments: List[str]) -> Tuple[int, str, str]:
    """
    Run C{txrevproxy ARGUMENTS} in this process.

    @return: the exit status and what it wrote to stdout and stderr.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    status = main(arguments, stdout=stdout, stderr=stderr)
    return status, stdout.getvalue(), stderr.getvalue()


#: The console script pip installed beside this interpreter.
TXREVPROXY = str(Path(sys.executable).parent / "txrevproxy")


def run_installed(
    arguments: List[str], env: Optional[Dict[str, str]] = None
) -> subprocess.CompletedProcess:
    """
    Run the installed C{txrevproxy ARGUMENTS} as a process, in the
    environment C{env} (default: that of the source tree).
    """
    return subprocess.run(
        [TXREVPROXY] + arguments,
        env=source_tree_environment() if env is None else env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        universal_newlines=True,
        timeout=120,
    )
