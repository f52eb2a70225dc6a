"""
Running the txrevproxy command in-process and capturing what it prints.
"""

from __future__ import annotations

import io
from typing import List, Tuple

from txrevproxy.tools.cli import main


def run(arguments: List[str]) -> Tuple[int, str, str]:
    """
    Run C{txrevproxy ARGUMENTS} in this process.

    @return: the exit status and what it wrote to stdout and stderr.
    """
    stdout, stderr = io.StringIO(), io.StringIO()
    status = main(arguments, stdout=stdout, stderr=stderr)
    return status, stdout.getvalue(), stderr.getvalue()
