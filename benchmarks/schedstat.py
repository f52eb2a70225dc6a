"""
The CPU time of a process tree and how long it waited for a CPU, from
/proc/PID/schedstat.

The proxy under test is pinned to one core, but on a shared machine other
processes run there too: then the proxy waits on the run queue with work
to do, and its latency percentiles measure that wait.  Read before and
after a run, the wait says how far a run's figures are the proxy's own.
"""

from __future__ import annotations


def parse(text: str) -> tuple[int, int]:
    """
    The nanoseconds on a CPU and waiting on a run queue, the first two
    fields of a C{schedstat} file (the third counts time slices).
    """
    on_cpu, waiting = text.split()[:2]
    return int(on_cpu), int(waiting)


def sample(pids: list[int]) -> tuple[int, int]:
    """
    The nanoseconds C{pids} spent on a CPU and waiting for one, summed;
    a process that has exited counts nothing.
    """
    on_cpu = waiting = 0
    for pid in pids:
        try:
            with open("/proc/{}/schedstat".format(pid)) as f:
                cpu, wait = parse(f.read())
        except (OSError, ValueError):
            continue
        on_cpu += cpu
        waiting += wait
    return on_cpu, waiting


def since(before: tuple[int, int], after: tuple[int, int]) -> dict:
    """
    What the process tree did between two samples, in milliseconds:
    C{cpu_ms} on a CPU and C{cpu_wait_ms} waiting for one.
    """
    return {"cpu_ms": (after[0] - before[0]) / 1e6,
            "cpu_wait_ms": (after[1] - before[1]) / 1e6}
