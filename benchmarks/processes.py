"""
Starting, pinning and reliably stopping the processes of a benchmark run.

Every process is started in its own session (so its whole process group can be
killed, nginx workers included), pinned to one CPU so the proxy under test never
competes with the load generator, and given the full RLIMIT_NOFILE so that
thousands of connections fit.  L{ProcessGroup} remembers what it started and
stops all of it in C{stop_all}, which the harness calls from C{finally}.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from typing import Sequence

#: The core the proxy under test runs on, and the core shared by the backend
#: and the load generator.  On a 2-core machine this gives the proxy a core of
#: its own and puts everything else on the other one.
PROXY_CPU = 1
LOAD_CPU = 0


class StartupError(Exception):
    """
    A process did not come up; the message says which and why, followed by
    the end of its log.

    @ivar reason: one line for the report.
    """

    def __init__(self, reason: str, log: str = "") -> None:
        Exception.__init__(self, reason + (":\n" + log if log else ""))
        self.reason = reason


def free_ports(count: int) -> list[int]:
    """
    Return C{count} different TCP ports on 127.0.0.1 that are free right now.

    The sockets are held until all are chosen, so that the kernel does not
    hand out one port twice; they are closed before the ports are used, so
    a race with another program is possible but, on a machine running
    nothing else, harmless.
    """
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


#: Open files wanted by every process: 10,000 idle client connections plus
#: the backend connections behind them, with room to spare.
NOFILE = 65536


def raise_nofile_limit() -> None:
    """
    Raise RLIMIT_NOFILE to L{NOFILE}, raising the hard limit too when
    running as root; otherwise to the hard limit.  Every process of the run
    calls this, so each proxy may hold as many connections as the others.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    for limit in (max(hard, NOFILE), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))
            return
        except (ValueError, OSError):
            continue


def _preexec(cpu: int | None):
    """
    Return the function run in the child before C{exec}: pin to C{cpu} and
    raise the open-file limit to its hard maximum.
    """

    def preexec() -> None:
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})
        raise_nofile_limit()

    return preexec


def pinning_available() -> bool:
    """
    Whether both L{PROXY_CPU} and L{LOAD_CPU} exist for this process.
    """
    return {PROXY_CPU, LOAD_CPU} <= os.sched_getaffinity(0)


@dataclass
class Started:
    """
    A long-running process and the name its log file is kept under.
    """

    name: str
    popen: subprocess.Popen

    @property
    def pid(self) -> int:
        return self.popen.pid


class ProcessGroup:
    """
    The long-running processes of a run (backend, proxy under test).

    @ivar log_dir: where each process's stdout and stderr go, so that a
        failure can be explained by the last lines of its log.
    """

    def __init__(self, log_dir: str) -> None:
        self.log_dir = log_dir
        self._running: list[Started] = []
        self._pin = pinning_available()

    def start(
        self,
        name: str,
        argv: Sequence[str],
        cpu: int | None,
        cwd: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Started:
        """
        Start C{argv} pinned to C{cpu} (on every CPU for C{None}), logging to
        C{log_dir/name.log}, with C{env} added to the environment.
        """
        with open(os.path.join(self.log_dir, name + ".log"), "ab") as log:
            popen = subprocess.Popen(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                env=dict(os.environ, **env) if env else None,
                start_new_session=True,
                preexec_fn=_preexec(cpu if self._pin else None),
            )
        started = Started(name, popen)
        self._running.append(started)
        return started

    def log_tail(self, name: str, lines: int = 15) -> str:
        """
        Return the last C{lines} lines of C{name}'s log.
        """
        try:
            with open(os.path.join(self.log_dir, name + ".log"), "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_for_port(self, proc: Started, port: int, timeout: float = 20) -> None:
        """
        Wait until something accepts connections on C{port}, or raise
        L{StartupError} with the process's log if it exits or takes too long.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc.popen.poll() is not None:
                log = self.log_tail(proc.name)
                raise StartupError(
                    "exited with status {}: {}".format(
                        proc.popen.returncode, (log.splitlines() or [""])[-1].strip()
                    ),
                    log,
                )
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                time.sleep(0.05)
        raise StartupError(
            "did not listen on port {} within {}s".format(port, timeout),
            self.log_tail(proc.name),
        )

    def stop(self, proc: Started) -> None:
        """
        Stop C{proc}'s whole process group: SIGTERM, up to 5s to exit, then
        SIGKILL for whatever is left (a worker outliving its master, or a
        process ignoring SIGTERM), so the next proxy has the CPU to itself.
        """
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.popen.wait(5)
            except subprocess.TimeoutExpired:
                pass
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.popen.wait()
        self._running.remove(proc)

    def stop_all(self) -> None:
        """
        Stop everything still running, most recently started first.
        """
        for proc in reversed(list(self._running)):
            self.stop(proc)


def run_pinned(argv: Sequence[str], cpu: int, timeout: float) -> subprocess.CompletedProcess:
    """
    Run a bounded client (wrk, h2load, our memory clients) pinned to C{cpu}
    and return its output; kill its process group if it overruns
    C{timeout}, and raise L{RuntimeError} then, which fails the measurement
    rather than the run.
    """
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        preexec_fn=_preexec(cpu if pinning_available() else None),
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except BaseException as e:
        # Timeout or Ctrl-C: never leave a load generator behind.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        if isinstance(e, subprocess.TimeoutExpired):
            raise RuntimeError("{} did not finish within {:.0f} s".format(
                os.path.basename(argv[0]), timeout))
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
