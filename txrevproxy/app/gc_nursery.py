"""
The size of PyPy's nursery (where its garbage collector makes new
objects) for a proxy process.

PyPy sizes the nursery at half the CPU's L2 cache as it reads it: 264 KiB
on the 2-core VM of the benchmarks.  A proxy has many requests in flight
at once (64 in the benchmark), and each minor collection, which comes
every 264 KiB of new objects, copies the objects of every request still in
flight into the old generation, where a major collection has to walk them
later.  CPU per small proxied GET under C{wrk}, C{twistd} pinned to one
core, interleaved runs on one VM (the collector's own share measured with
C{benchmarks/cpu_probe.py} in brackets):

  - PyPy's 264 KiB: 89-119 us (12-14 us);
  - 16 MiB: 61-79 us (2-4 us);
  - 32 MiB: 58-64 us;
  - 64 MiB: 51-60 us.

Past the collector's own time, fewer objects reach the old generation,
where every write to them costs more.  The price is memory: the nursery is
allocated when the process starts, so a proxy at rest takes 64 MiB more
(174 MiB of RSS, against 132 with 16 MiB); set C{PYPY_GC_NURSERY} lower
where memory counts more than speed (with C{PYPY_GC_MAX_DELTA}, see
"Memory of idle connections" in C{benchmarks/README.rst}).

PyPy reads the size from C{PYPY_GC_NURSERY} when it starts, and only then.
So when C{twistd} runs the proxy on PyPy without that variable, the process
starts itself again, with the same command line and the variable set
(C{execve}: same pid, nothing started yet).  An operator's own
C{PYPY_GC_NURSERY} is left as it is, and then nothing is started again;
worker processes get the variable with the rest of the environment.
CPython has no nursery and is never restarted.
"""

from __future__ import annotations

import os
import sys
from typing import Callable, List, Mapping, MutableMapping, Optional

from twisted.logger import Logger

log = Logger()

NURSERY_VARIABLE = "PYPY_GC_NURSERY"

#: The nursery size the proxy runs with on PyPy, unless told otherwise.
NURSERY_SIZE = "64M"


def with_nursery(
    environ: Mapping[str, str], implementation: str = sys.implementation.name
) -> MutableMapping[str, str]:
    """
    A copy of C{environ} for a proxy process: on PyPy, with the nursery
    size set unless it already is.
    """
    environment = dict(environ)
    if implementation == "pypy":
        environment.setdefault(NURSERY_VARIABLE, NURSERY_SIZE)
    return environment


def command_line(
    executable: str, argv: List[str], main_module: Optional[str]
) -> Optional[List[str]]:
    """
    The command that runs this program again: the script of C{argv[0]},
    or the module it was run as (C{python -m twisted ...}).

    @param main_module: the name of the C{__main__} module's spec when the
        program was run with C{-m}, else L{None}.
    @return: the command, or L{None} when the program cannot be named (it
        was given with C{-c}, or read from standard input).
    """
    if main_module:
        package, _, last = main_module.rpartition(".")
        module = package if last == "__main__" and package else main_module
        return [executable, "-m", module] + argv[1:]
    if not argv or not os.path.isfile(argv[0]):
        return None
    return [executable] + argv


def restart_with_nursery(
    *,
    implementation: str = sys.implementation.name,
    environ: Mapping[str, str] = os.environ,
    argv: Optional[List[str]] = None,
    executable: str = sys.executable,
    main_module: Optional[str] = None,
    execve: Callable[[str, List[str], Mapping[str, str]], None] = os.execve,
) -> None:
    """
    On PyPy without C{PYPY_GC_NURSERY}, replace this process with the same
    program run with L{NURSERY_SIZE}; otherwise return at once.  When the
    process cannot be started again, it goes on as it is.

    Call it only from the top of a program's start (the twistd plugin's
    C{makeService}), before anything is opened or started.
    """
    if implementation != "pypy" or NURSERY_VARIABLE in environ:
        return
    if argv is None:
        argv = sys.argv
    if main_module is None:
        spec = getattr(sys.modules.get("__main__"), "__spec__", None)
        main_module = getattr(spec, "name", None)
    command = command_line(executable, argv, main_module)
    if command is None:
        log.info(
            "running with PyPy's default nursery: set {variable} (such as "
            "{variable}={size}) for a faster proxy",
            variable=NURSERY_VARIABLE,
            size=NURSERY_SIZE,
        )
        return
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    try:
        execve(executable, command, with_nursery(environ, implementation))
    except OSError as error:
        log.warn(
            "could not restart with {variable}={size} ({error}); "
            "running with PyPy's default nursery",
            variable=NURSERY_VARIABLE,
            size=NURSERY_SIZE,
            error=error,
        )
