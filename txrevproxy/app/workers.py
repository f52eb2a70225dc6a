"""
C{[server] workers = N}: the twistd process becomes a supervisor of N
worker processes that serve its listening sockets.

The supervisor opens every listener's sockets (before twistd drops
privileges) and never accepts on them: for a TCP listener one per worker,
with C{SO_REUSEPORT} (see L{txrevproxy.net.reuseport}), for a UNIX one a
socket they share.  Each worker adopts its own
(C{reactor.adoptStreamPort}) and the kernel hands each new connection to
one of the sockets.  TLS is done in the workers, as
in a single process.  A worker that dies is started again (after a longer
wait each time while it dies as it starts, see L{restart_delay}).  The
supervisor passes SIGHUP, SIGUSR1 and a graceful stop on to every worker,
and serves the admin API: it asks every worker over a pipe (see
L{txrevproxy.app.worker}) and answers with the sum of their metrics and the
list of their states.  It also orders the ACME certificates (see
L{txrevproxy.app.certificates}) and has the workers read them once
stored.
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any, Dict, List, Optional

from twisted.application.service import Service
from twisted.internet.defer import Deferred, DeferredList, gatherResults, succeed
from twisted.internet.protocol import Factory, ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from .. import __version__
from ..config import ConfigError, load_config
from ..config.model import Config
from ..net.reuseport import listen_group
from ..observe.metrics import Metrics, Snapshot, merge
from ..observe.window import merge_windows
from .admin import AdminError
from .certificates import CertificateManagers
from .gc_nursery import with_nursery
from .service import config_digest, listen_now, moved_listeners, restart_only_changes
from .worker import ANSWERS_FD

#: Seconds before a worker that died is started again.
RESTART_DELAY = 1.0

#: Seconds a worker must have run for its death to be taken as a crash of
#: a working worker rather than a failure to start: a worker that dies
#: sooner waits twice as long as the last time before it is started again.
STARTUP_PERIOD = 10.0

#: The longest wait before a worker that keeps dying is started again.
MAX_RESTART_DELAY = 30.0

#: Seconds a worker may take to answer a question.
ANSWER_TIMEOUT = 10.0

#: Seconds, beyond C{shutdown_timeout}, before a worker that does not
#: stop is killed.
KILL_GRACE = 5.0


def restart_delay(lived: float, previous: Optional[float]) -> float:
    """
    Seconds before a worker that died is started again: L{RESTART_DELAY}
    after it ran for L{STARTUP_PERIOD} or more; otherwise (it cannot
    start: a configuration file broken since, a port or file it cannot
    open) twice C{previous}, up to L{MAX_RESTART_DELAY}, so that a worker
    dying in a loop is not started, and logged, every second.

    @param lived: how long the worker ran.
    @param previous: the delay before it was started, L{None} for the
        first start.
    """
    if lived >= STARTUP_PERIOD or previous is None:
        return RESTART_DELAY
    return min(MAX_RESTART_DELAY, previous * 2)


class WorkerFailed(AdminError):
    """
    A worker answered a question with an error, or not at all: the admin
    API answers C{503} with the sentence.
    """

    def __init__(self, message: str) -> None:
        super().__init__(503, message)


class WorkerProcess(ProcessProtocol):
    """
    The supervisor's side of one worker: its process and its pipe.

    @ivar index: its position among the workers, kept when it restarts.
    @ivar ended: fires when the process ended.
    @ivar started: when it was started (the reactor's C{seconds()}).
    """

    log = Logger()

    def __init__(self, supervisor: "WorkerSupervisor", index: int) -> None:
        self.supervisor = supervisor
        self.index = index
        self.ended: Deferred = Deferred()
        self.started = supervisor.reactor.seconds()
        self._answers: Dict[int, Deferred] = {}
        self._next = 0
        self._partial_line = b""

    pid: Optional[int] = None

    def connectionMade(self) -> None:
        self.pid = self.transport.pid

    def ask(self, op: str, *args: Any) -> Deferred:
        """
        Ask the worker something (see L{txrevproxy.app.worker.ControlProtocol}).

        @return: a L{Deferred} of the answer's result, failing with
            L{KeyError} for an unknown upstream or server and with
            L{WorkerFailed} otherwise.
        """
        self._next += 1
        question_id = self._next
        d: Deferred = Deferred(lambda _: self._answers.pop(question_id, None))
        self._answers[question_id] = d
        line = json.dumps({"id": question_id, "op": op, "args": list(args)})
        self.transport.writeToChild(0, line.encode() + b"\n")
        return d.addTimeout(
            ANSWER_TIMEOUT, self.supervisor.reactor, onTimeoutCancel=self._unanswered
        )

    def _unanswered(self, result, timeout: float) -> Failure:
        return Failure(
            WorkerFailed("worker %d did not answer within %gs" % (self.index, timeout))
        )

    def childDataReceived(self, fd: int, data: bytes) -> None:
        if fd != ANSWERS_FD:
            return
        self._partial_line += data
        *lines, self._partial_line = self._partial_line.split(b"\n")
        for line in lines:
            answer = json.loads(line)
            d = self._answers.pop(answer["id"], None)
            if d is None:
                continue
            if "error" not in answer:
                d.callback(answer["result"])
            elif answer["missing"]:
                d.errback(KeyError(answer["error"]))
            else:
                d.errback(WorkerFailed(answer["error"]))

    def processEnded(self, reason) -> None:
        answers, self._answers = self._answers, {}
        for d in answers.values():
            d.errback(WorkerFailed("worker %d ended" % (self.index,)))
        self.ended.callback(reason.value)
        self.supervisor.workerEnded(self, reason.value)


def _family(port) -> int:
    host = port.getHost()
    if getattr(host, "type", None) == "TCP6":
        return socket.AF_INET6
    if getattr(host, "type", None) == "TCP":
        return socket.AF_INET
    return socket.AF_UNIX


class WorkerSupervisor(Service):
    """
    Runs C{config.server.workers} worker processes; see the module
    docstring.  It has what the admin API asks (L{IProxyControl}), and
    C{reload} and C{reopen_logs} for the signals.

    @ivar workers: the current L{WorkerProcess} of each position.
    @ivar loaded: when the configuration served now was loaded (the start,
        or the latest reload every worker took).
    """

    log = Logger()

    def __init__(self, config: Config, reactor) -> None:
        self.config = config
        self.reactor = reactor
        self._ports: Dict[str, List[Any]] = {}
        self.workers: List[Optional[WorkerProcess]] = [None] * config.server.workers
        self.started = self.loaded = reactor.seconds()
        self.metrics = Metrics()
        self._digest = config_digest(config)
        self._restarts: Dict[int, Any] = {}
        self._delays: Dict[int, float] = {}
        self.certificates = CertificateManagers(
            reactor, lambda table: self._askAll("reload_certificates")
        )
        self.certificates.configure(config)

    def privilegedStartService(self) -> None:
        for name, listener in self.config.listeners.items():
            ports = listen_group(
                self.reactor,
                lambda reactor: listen_now(
                    reactor, listener.endpoint, Factory(), "listeners.%s.endpoint" % (name,)
                ),
                len(self.workers),
            )
            # The workers accept; this process only holds the sockets.
            for port in ports:
                port.stopReading()
            self._ports[name] = ports
            self.log.info(
                "listener {name} on {address}, for {n} workers, {sockets}",
                name=name,
                address=ports[0].getHost(),
                n=len(self.workers),
                sockets="one socket each" if len(ports) > 1 else "sharing one socket",
            )
        super().privilegedStartService()

    def startService(self) -> None:
        if not self._ports:
            self.privilegedStartService()
        super().startService()
        for index in range(len(self.workers)):
            self._spawn(index)
        self.certificates.startService()

    def _spawn(self, index: int) -> None:
        self._restarts.pop(index, None)
        # The interpreter twistd runs on (CPython or PyPy) runs the workers.
        arguments = [
            sys.executable,
            "-m",
            "txrevproxy.app.worker",
            "--config",
            os.path.abspath(self.config.source),
            "--index",
            str(index),
        ]
        if self._digest is not None:
            arguments += ["--digest", self._digest]
        child_fds: Dict[int, Any] = {0: "w", 1: 1, 2: 2, ANSWERS_FD: "r"}
        for offset, (name, ports) in enumerate(self._ports.items()):
            # A restarted worker gets its own socket of the group again.
            port = ports[index % len(ports)]
            fd = ANSWERS_FD + 1 + offset
            child_fds[fd] = port.fileno()
            arguments += ["--listener", "%s=%d:%d" % (name, fd, _family(port))]
        worker = WorkerProcess(self, index)
        self.reactor.spawnProcess(
            worker,
            sys.executable,
            arguments,
            env=with_nursery(os.environ),
            childFDs=child_fds,
        )
        self.workers[index] = worker
        self.log.info("worker {index} started, pid {pid}", index=index, pid=worker.pid)

    def workerEnded(self, worker: WorkerProcess, reason) -> None:
        if self.workers[worker.index] is not worker or not self.running:
            return
        delay = self._delays[worker.index] = restart_delay(
            self.reactor.seconds() - worker.started, self._delays.get(worker.index)
        )
        self.log.error(
            "worker {index} (pid {pid}) ended: {reason}; starting it again in {delay:g}s",
            index=worker.index,
            pid=worker.pid,
            reason=reason,
            delay=delay,
        )
        self._restarts[worker.index] = self.reactor.callLater(delay, self._spawn, worker.index)

    def _live(self) -> List[WorkerProcess]:
        return [w for w in self.workers if w is not None and not w.ended.called]

    def _askAll(
        self, op: str, *args: Any, workers: Optional[List[WorkerProcess]] = None
    ) -> Deferred:
        """
        Ask C{workers} (every live one by default) the same question.

        @return: a L{Deferred} of their answers, in their order.
        """
        if workers is None:
            workers = self._live()
        return gatherResults(
            [worker.ask(op, *args) for worker in workers], consumeErrors=True
        ).addErrback(lambda failure: failure.value.subFailure)

    # Signals -----------------------------------------------------------------

    def reload(self) -> Deferred:
        """
        Check the configuration file here, then have every worker reload it.

        @return: a L{Deferred} of the problems (empty on success).
        """
        try:
            config = load_config(self.config.source)
        except ConfigError as error:
            return succeed(self._reloaded([error.problems]))
        problems = moved_listeners(self.config, config) + restart_only_changes(self.config, config)
        if problems:
            return succeed(self._reloaded([problems]))
        d = self._askAll("reload")

        def done(answers: List[List[str]]) -> List[str]:
            problems = self._reloaded(answers)
            if not problems:
                self.config = config
                self._digest = config_digest(config)
                self.loaded = self.reactor.seconds()
                self.certificates.configure(config)
            return problems

        d.addCallback(done)
        d.addErrback(lambda failure: self._reloaded([[str(failure.value)]]))
        return d

    def _reloaded(self, answers: List[List[str]]) -> List[str]:
        problems = sorted({problem for answer in answers for problem in answer})
        for problem in problems:
            self.log.error("reload: {problem}", problem=problem)
        self.metrics.reloaded(not problems)
        if problems:
            self.log.error("reload failed: still serving the previous configuration")
        return problems

    def reopen_logs(self) -> Deferred:
        return self._askAll("reopen_logs")

    # The admin API (see txrevproxy.app.admin.IProxyControl) -----------------------

    def admin_token(self) -> Optional[str]:
        admin = self.config.admin
        return None if admin is None else admin.token

    def readiness(self) -> List[str]:
        """
        Why this proxy should not get traffic: stopping, or no worker
        running to accept connections (one restarting is not a reason:
        the others serve).
        """
        if not self.running:
            return ["stopping: the workers finish the requests in flight"]
        if not self._live():
            return ["no worker process is running"]
        return []

    def status(self) -> Deferred:
        def document(states: List[Dict[str, Any]]) -> Dict[str, Any]:
            return {
                "version": __version__,
                "pid": os.getpid(),
                "uptime": self.reactor.seconds() - self.started,
                "config": {
                    "file": self.config.source,
                    "sha256": self._digest,
                    "loaded": self.loaded,
                },
                "workers": states,
            }

        return self._askAll("status").addCallback(document)

    def snapshot(self) -> Deferred:
        """
        The sum of the workers' metrics, but for the process metrics: this
        process's own, unlabelled, and each worker's with its position as
        its C{worker} label (a sum of start times or of file descriptor
        limits would mean nothing).
        """
        workers = self._live()

        def total(snapshots: List[Snapshot]) -> Snapshot:
            own = self.metrics.snapshot()
            summed = merge(snapshots)
            # Every worker counts each reload; the supervisor's count is
            # the one that means something.
            summed["reloads"] = own["reloads"]
            processes = summed["process"] = own["process"]
            for worker, snapshot in zip(workers, snapshots):
                processes[str(worker.index)] = snapshot["process"][""]
            return summed

        return self._askAll("snapshot", workers=workers).addCallback(total)

    def recent(self) -> Deferred:
        """
        The last minute of every worker, added up.
        """
        return self._askAll("recent").addCallback(merge_windows)

    def set_draining(self, upstream: str, key: Any, draining: bool) -> Deferred:
        return self._askAll("set_draining", upstream, key, draining).addCallback(
            lambda states: states[0]
        )

    def routes(self) -> Deferred:
        """
        The routes as the first worker has them (every worker is switched
        alike).
        """
        return self._askAll("routes").addCallback(lambda states: states[0])

    def set_maintenance(self, key: str, on: bool) -> Deferred:
        return self._askAll("set_maintenance", key, on).addCallback(
            lambda states: states[0]
        )

    def purge_cache(self, cache, url, prefix) -> Deferred:
        """
        Purge in every worker (each has its own store); the total purged.
        """
        return self._askAll("purge_cache", cache, url, prefix).addCallback(sum)

    # Stopping ------------------------------------------------------------------

    def stopService(self) -> Deferred:
        """
        Stop every worker gracefully (each has C{shutdown_timeout}), and
        kill one that is still there after that and L{KILL_GRACE}.
        """
        super().stopService()
        self.certificates.stopService()
        for call in self._restarts.values():
            call.cancel()
        self._restarts = {}
        for ports in self._ports.values():
            for port in ports:
                port.stopListening()
        self._ports = {}
        workers = self._live()
        for worker in workers:
            worker.transport.signalProcess("TERM")
        deadline = self.config.server.shutdown_timeout + KILL_GRACE
        kill = self.reactor.callLater(deadline, self._kill, workers)
        d = DeferredList([worker.ended for worker in workers])

        def stopped(result):
            if kill.active():
                kill.cancel()
            return result

        return d.addCallback(stopped)

    def _kill(self, workers: List[WorkerProcess]) -> None:
        for worker in workers:
            if not worker.ended.called:
                self.log.error("worker {index} did not stop; killing it", index=worker.index)
                worker.transport.signalProcess("KILL")
