"""
Resident memory of a process tree, read from /proc.

A proxy may be several processes (nginx's master and worker), so memory is
the sum over the process and all its descendants.  Shared pages are counted
once per process, as C{ps} does; for the single-worker setups measured here
that overstates nginx by its master's few MiB at most.
"""

from __future__ import annotations

import os


def _children(pid: int) -> list[int]:
    kids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/{}/stat".format(entry)) as f:
                stat = f.read()
        except OSError:
            continue
        # The command name in field 2 may contain spaces; ppid follows ")".
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            kids.append(int(entry))
    return kids


def _rss_kib(pid: int) -> int:
    try:
        with open("/proc/{}/status".format(pid)) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_pids(pid: int) -> list[int]:
    """
    Return C{pid} and all its descendants.
    """
    pids, todo = [], [pid]
    while todo:
        p = todo.pop()
        pids.append(p)
        todo.extend(_children(p))
    return pids


def rss_bytes(pids: list[int]) -> int:
    """
    Return the summed resident set size of C{pids}, in bytes.
    """
    return 1024 * sum(_rss_kib(p) for p in pids)
