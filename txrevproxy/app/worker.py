"""
One worker process of C{[server] workers = N}: a L{ProxyService} serving
the listening sockets its parent opened (see L{txrevproxy.app.workers}), and
answering the parent's questions over a pipe.

The parent starts it as::

    python -m txrevproxy.app.worker --config FILE --index N --digest SHA256 --listener web=4:2 ...

with each listener's socket as a file descriptor (C{NAME=FD:FAMILY}), its
standard input the parent's questions and descriptor 3 its answers: one
JSON object a line each way (L{ControlProtocol}).  When the parent goes
away (its pipe closes) the worker stops gracefully.  C{--digest} is the
SHA-256 of the file the parent serves: a worker started again after the
file was edited, and before a reload, says that it serves another
configuration than the others.  Its log lines, and
its JSON access log lines, carry its index (see
L{txrevproxy.observe.process_label}, and L{txrevproxy.observe.eventlog}
for JSON lines).
"""

from __future__ import annotations

import json
import sys
from typing import Dict, List, Tuple

from twisted.internet.defer import maybeDeferred
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver
from twisted.python import usage

#: The file descriptor a worker writes its answers to.
ANSWERS_FD = 3


class ControlProtocol(LineOnlyReceiver):
    """
    Answers the parent: each question C{{"id": N, "op": NAME, "args":
    [...]}} gets C{{"id": N, "result": ...}}, or C{{"id": N, "error":
    SENTENCE, "missing": true|false}} (C{missing}: an unknown upstream or
    server, a L{KeyError}).
    """

    delimiter = b"\n"
    MAX_LENGTH = 1 << 20
    log = Logger()

    def __init__(self, service, reactor) -> None:
        self.service = service
        self._reactor = reactor
        self._operations = {
            "status": service.status,
            "snapshot": service.snapshot,
            "recent": service.recent,
            "reload": service.reload,
            "set_draining": service.set_draining,
            "purge_cache": service.purge_cache,
            "routes": service.routes,
            "set_maintenance": service.set_maintenance,
            "reopen_logs": service.reopen_logs,
            "reload_certificates": service.reload_certificates,
        }

    def lineReceived(self, line: bytes) -> None:
        question = json.loads(line)
        d = maybeDeferred(
            lambda: self._operations[question["op"]](*question.get("args", ()))
        )
        d.addCallbacks(
            lambda result: {"id": question["id"], "result": result},
            lambda failure: {
                "id": question["id"],
                "error": str(failure.value.args[0] if failure.value.args else failure.value),
                "missing": bool(failure.check(KeyError)),
            },
        )
        d.addCallback(lambda answer: self.sendLine(json.dumps(answer).encode()))

    def connectionLost(self, reason=None) -> None:
        # The parent is gone: nobody supervises this worker any more.
        if self._reactor.running:
            self._reactor.stop()


class Options(usage.Options):
    optParameters = [
        ["config", "c", None, "The configuration file (TOML)."],
        ["index", None, 0, "The worker's position among the workers.", int],
        ["digest", None, None, "The SHA-256 of the file the parent serves."],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listeners"] = {}

    def opt_listener(self, value: str) -> None:
        """
        A listener's inherited socket: NAME=FD:FAMILY.
        """
        name, _, rest = value.partition("=")
        fd, _, family = rest.partition(":")
        self["listeners"][name] = (int(fd), int(family))


def run(argv: List[str]) -> None:
    """
    Run a worker until it is told to stop (or its parent goes).
    """
    from ..net.reactor import install_unless_chosen
    from .pypy_jit import apply_jit_parameters

    install_unless_chosen()
    from twisted.internet import reactor
    from twisted.internet.stdio import StandardIO
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from ..config import ConfigError, load_config
    from ..observe.eventlog import json_file_observer
    from ..observe.process_label import label_log_events
    from .service import ProxyService, config_digest
    from .signals import handle_signals

    options = Options()
    options.parseOptions(argv)
    index = options["index"]
    try:
        config = load_config(options["config"])
    except ConfigError as error:
        # The file changed since the parent loaded it; the parent starts
        # this worker again later, so one clear line each time.
        sys.exit(
            "worker %d: cannot start: %s has problems (the other workers "
            "serve on): %s" % (index, options["config"], "; ".join(error.problems))
        )
    if config.log.events == "json":
        observer = json_file_observer(sys.stdout, {"worker": index})
    else:
        label_log_events("worker %d" % (index,))
        observer = textFileLogObserver(sys.stdout)
    globalLogBeginner.beginLoggingTo([observer])
    if options["digest"] not in (None, config_digest(config)):
        # Started again after the file was edited, and before a reload.
        Logger(namespace="txrevproxy.app.worker").warn(
            "{file} changed since the last reload: this worker serves it as "
            "it is now, the others the previous one, until a reload",
            file=options["config"],
        )
    inherited: Dict[str, Tuple[int, int]] = options["listeners"]
    service = ProxyService(config, reactor, inherited, index)
    service.startService()
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    handle_signals(reactor, service)
    StandardIO(ControlProtocol(service, reactor), stdin=0, stdout=ANSWERS_FD, reactor=reactor)
    reactor.callWhenRunning(apply_jit_parameters)
    reactor.run()


if __name__ == "__main__":  # pragma: no cover - run by the supervisor
    run(sys.argv[1:])
