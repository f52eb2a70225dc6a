"""
When PyPy's JIT compiles a proxy process's code: much sooner than PyPy's
defaults, so that the code run once per connection is compiled after a
few hundred connections rather than a few thousand.

PyPy compiles a function once it was called C{function_threshold} times
(1619), and a loop once it went round C{threshold} times (1039); a path a
compiled trace did not take gets its own trace (a bridge) once it was
taken C{trace_eagerness} times (200).  A request on an open keep-alive
connection runs its code thousands of times a second and is compiled
within a second.  A new connection runs its own code (the accept, the
channel, its first request, its close) once, and counters that rise this
slowly also decay: with PyPy's defaults, accepting a connection cost 150
to 290 us of CPU over the first 1,400 connections a process served (64
new connections at once: 10 to 18 ms during which no request on the
process moved), and 63 us after 2,000; on CPython, under 30 us.  These were
the slow events of the paced benchmark (C{latency}: wrk opens 64 new
connections at the start of each run), and it is what a proxy meets after
every start, and with clients that do not keep their connections open.
With L{JIT_PARAMETERS}, it cost 25 to 80 us from the 260th connection on.
"Session 12: PyPy's p99 under paced load" in C{benchmarks/README.rst}
has the figures: the CPU of the small GET did not change, the memory
grew a little, and PyPy's p99 on a quiet machine did not move.

PyPy takes these settings at any time (C{pypyjit.set_param}); a proxy
process (the twistd plugin's C{makeService}, each worker process) sets
them once its reactor runs.  Set before, they also had the code that runs
only at the start (imports, reading the configuration) compiled, for 62
MiB more RSS at rest (246 MiB against 183) and nothing gained.  An
operator chooses others with L{JIT_VARIABLE} in the environment, in
PyPy's own syntax (C{threshold=1039,function_threshold=1619,
trace_eagerness=200} are PyPy's defaults); set to nothing, it leaves
PyPy's defaults as they are.  CPython has no JIT, and nothing is done
there.
"""

from __future__ import annotations

import os
from typing import Callable, Mapping, Optional

from twisted.logger import Logger

log = Logger()

#: The environment variable an operator sets to choose other parameters.
JIT_VARIABLE = "TXREVPROXY_PYPY_JIT"

#: The parameters a proxy process runs with on PyPy, unless told otherwise.
JIT_PARAMETERS = "threshold=50,function_threshold=50,trace_eagerness=20"


def _pypy_set_param() -> Optional[Callable[[str], None]]:
    """
    PyPy's C{pypyjit.set_param}, or L{None} on a runtime without that JIT.
    """
    try:
        import pypyjit
    except ImportError:
        return None
    return pypyjit.set_param


def apply_jit_parameters(
    environ: Mapping[str, str] = os.environ,
    set_param: Optional[Callable[[str], None]] = None,
) -> Optional[str]:
    """
    Set the JIT's parameters of this process: the operator's
    L{JIT_VARIABLE} if it is in C{environ}, else L{JIT_PARAMETERS}.  An
    operator's value PyPy refuses is logged, and PyPy's defaults are
    set again.

    @param set_param: sets the parameters (PyPy's C{pypyjit.set_param},
        found when not given); L{None} where there is no such JIT.
    @return: the parameters set, or L{None} when none were.
    """
    if set_param is None:
        set_param = _pypy_set_param()
        if set_param is None:
            return None
    parameters = environ.get(JIT_VARIABLE, JIT_PARAMETERS)
    if not parameters:
        return None
    try:
        set_param(parameters)
    except (ValueError, SystemError) as error:
        # PyPy sets the parameters one by one up to the wrong one.  A
        # value out of range is a SystemError (C{trace_limit} above 16383:
        # PyPy's TraceLimitTooHigh), a wrong name or syntax a ValueError.
        set_param("default")
        log.warn(
            "{variable}={parameters} is not a setting PyPy's JIT takes "
            "({error}); running with PyPy's defaults",
            variable=JIT_VARIABLE,
            parameters=parameters,
            error=error,
        )
        return None
    return parameters
