"""
End-to-end tests: the proxy as operators run it, C{twistd -n txrevproxy
--config FILE}, and C{txrevproxy demo} as a newcomer runs it, each as a real
process on 127.0.0.1.

The processes import txrevproxy and its twistd plugin from this source tree
(through C{PYTHONPATH}), so that they run the code under test;
L{tests.integration.test_plugin} checks separately that an installed txrevproxy is
found by twistd.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Dict, List

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks
from twisted.internet.error import ConnectError, ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txrevproxy.config import ConfigError, load_config
from txrevproxy.tools.demo import demo_site

from ..support.loopback import CountingSite, connect_raw, raw_exchange
from ..support.processes import (
    START_TIMEOUT,
    free_port,
    simple_config,
    source_tree_environment,
    temporary_directory,
    twistd_command,
)

#: How long a process may take to exit after SIGTERM.
STOP_TIMEOUT = 30.0


class Process(ProcessProtocol):
    """
    A child process whose output is collected; C{ended} fires with the
    reason it ended (L{ProcessDone} or L{ProcessTerminated}).
    """

    def __init__(self) -> None:
        self.output: Dict[int, List[bytes]] = {1: [], 2: []}
        self.ended: Deferred = Deferred()
        self.reason = None

    def childDataReceived(self, fd: int, data: bytes) -> None:
        self.output.setdefault(fd, []).append(data)

    def processEnded(self, reason) -> None:
        self.reason = reason.value
        self.ended.callback(reason.value)

    @property
    def stdout(self) -> str:
        return b"".join(self.output[1]).decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return b"".join(self.output[2]).decode("utf-8", "replace")

    def describe(self) -> str:
        return "stdout:\n%s\nstderr:\n%s" % (self.stdout, self.stderr)


def spawn(case: TestCase, arguments: List[str], directory: str) -> Process:
    """
    Start a process, killed at the end of the test if it is still running.
    """
    process = Process()
    reactor.spawnProcess(
        process, arguments[0], arguments, env=source_tree_environment(), path=directory
    )

    def kill() -> Deferred:
        if process.reason is None:
            process.transport.signalProcess("KILL")
        return process.ended

    case.addCleanup(kill)
    return process


def twistd(case: TestCase, config: str, directory: str) -> Process:
    return spawn(
        case,
        twistd_command("-n", "--pidfile=", "txrevproxy", "--config", config),
        directory,
    )


@inlineCallbacks
def wait_for_port(port: int, process: Process):
    """
    Wait until something accepts connections on 127.0.0.1:port, polling
    with a bound; fail at once if the process ends first.
    """
    deadline = reactor.seconds() + START_TIMEOUT
    while True:
        if process.reason is not None:
            raise AssertionError(
                "the process ended (%s) before listening on %d\n%s"
                % (process.reason, port, process.describe())
            )
        try:
            client = yield connect_raw(port)
        except ConnectError:
            if reactor.seconds() > deadline:
                raise AssertionError(
                    "nothing listened on %d within %ss\n%s"
                    % (port, START_TIMEOUT, process.describe())
                )
            yield deferLater(reactor, 0.05, lambda: None)
        else:
            client.transport.loseConnection()
            yield client.closed
            return


@inlineCallbacks
def terminate(process: Process):
    """
    Send SIGTERM and wait, with a bound, for the process to end.

    @return: a Deferred firing with the reason it ended.
    """
    process.transport.signalProcess("TERM")
    reason = yield process.ended.addTimeout(STOP_TIMEOUT, reactor)
    return reason


def get(port: int, target: bytes, headers: bytes = b"") -> Deferred:
    """
    A GET request through 127.0.0.1:port, closing the connection after it.

    @return: a Deferred firing with (status line, body) as text.
    """
    request = (
        b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % (port,)
        + headers
        + b"Connection: close\r\n\r\n"
    )

    def parse(raw: bytes):
        head, _, body = raw.partition(b"\r\n\r\n")
        return head.split(b"\r\n")[0].decode("ascii"), body.decode("utf-8")

    return raw_exchange(port, request).addCallback(parse)


def write_config(case: TestCase, text: str) -> str:
    directory = str(temporary_directory(case))
    path = os.path.join(directory, "proxy.toml")
    with open(path, "w") as file:
        file.write(text)
    return path


class TwistdTests(TestCase):
    timeout = 120

    @inlineCallbacks
    def test_proxies_to_a_demo_backend_and_stops_on_sigterm(self):
        """
        C{twistd -n txrevproxy} serves a request through a demo backend,
        which sees the forwarding headers (a client's own X-Forwarded-For
        is replaced, not believed), and shuts down cleanly on SIGTERM.
        """
        site = CountingSite(demo_site("e2e-backend").resource)
        backend = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(lambda: DeferredList(site.lost))
        self.addCleanup(backend.stopListening)
        port = free_port()
        config = write_config(
            self,
            simple_config(port, ["http://127.0.0.1:%d" % (backend.getHost().port,)]),
        )
        process = twistd(self, config, os.path.dirname(config))
        yield wait_for_port(port, process)

        status, body = yield get(port, b"/hello?x=1", b"X-Forwarded-For: 203.0.113.66\r\n")

        self.assertEqual(status, "HTTP/1.1 200 OK", body)
        lines = body.splitlines()
        self.assertEqual(lines[0], "Hello from demo backend e2e-backend.")
        self.assertIn("Request: GET /hello?x=1", lines)
        self.assertIn("  X-Forwarded-For: 127.0.0.1", lines)
        self.assertIn("  Via: 1.1 txrevproxy", lines)
        self.assertNotIn("203.0.113.66", body)

        reason = yield terminate(process)
        # A graceful stop, as asked: exit status 0 once the services have
        # stopped (twistd's own handler would re-raise the signal).
        self.assertIsInstance(reason, ProcessDone, process.describe())
        self.assertIn("Server Shut Down.", process.stdout)
        self.assertNotIn("Traceback", process.stdout + process.stderr)
        self.assertNotIn("Unhandled", process.stdout + process.stderr)

    @inlineCallbacks
    def test_invalid_config_exits_1_with_the_check_sentences(self):
        text = simple_config(free_port(), ["http://127.0.0.1:9"]).replace(
            'upstream = "app"', 'upstream = "nosuch"'
        )
        config = write_config(self, text)
        with self.assertRaises(ConfigError) as expected:
            load_config(config)
        process = twistd(self, config, os.path.dirname(config))

        reason = yield process.ended.addTimeout(STOP_TIMEOUT, reactor)

        self.assertIsInstance(reason, ProcessTerminated, process.describe())
        self.assertEqual(reason.exitCode, 1, process.describe())
        self.assertEqual(process.stderr.splitlines(), expected.exception.problems)
        self.assertIn('routes[0].upstream: no upstream named "nosuch"', process.stderr)
        self.assertNotIn("Traceback", process.stdout + process.stderr)

    @inlineCallbacks
    def test_missing_config_exits_1_with_a_sentence(self):
        directory = str(temporary_directory(self))
        process = twistd(self, "absent.toml", directory)

        reason = yield process.ended.addTimeout(STOP_TIMEOUT, reactor)

        self.assertEqual(reason.exitCode, 1, process.describe())
        self.assertEqual(
            process.stderr.splitlines(),
            ["absent.toml: cannot read the configuration file: No such file or directory"],
        )

    @inlineCallbacks
    def test_busy_port_exits_1_naming_the_listener(self):
        busy = socket.socket()
        self.addCleanup(busy.close)
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        config = write_config(self, simple_config(port, ["http://127.0.0.1:9"]))
        process = twistd(self, config, os.path.dirname(config))

        reason = yield process.ended.addTimeout(STOP_TIMEOUT, reactor)

        self.assertEqual(reason.exitCode, 1, process.describe())
        self.assertIn(
            "listeners.web.endpoint: cannot listen on tcp:%d:interface=127.0.0.1" % (port,),
            process.stdout + process.stderr,
        )
        self.assertNotIn("Traceback", process.stdout + process.stderr)


class DemoCommandTests(TestCase):
    timeout = 120

    @inlineCallbacks
    def test_demo_balances_between_its_backends_and_stops_on_sigterm(self):
        """
        C{txrevproxy demo} starts a backend for each loopback server and the
        proxy in front of them: two requests reach the two backends.
        """
        port, first, second = free_port(), free_port(), free_port()
        config = write_config(
            self,
            simple_config(
                port, ["http://127.0.0.1:%d" % (first,), "http://127.0.0.1:%d" % (second,)]
            ),
        )
        command = [
            sys.executable,
            "-c",
            "import sys; from txrevproxy.tools.cli import main; sys.exit(main())",
            "demo",
            "--config",
            config,
        ]
        process = spawn(self, command, os.path.dirname(config))
        yield wait_for_port(port, process)

        answers = []
        for _ in range(2):
            status, body = yield get(port, b"/")
            self.assertEqual(status, "HTTP/1.1 200 OK", body)
            answers.append(body.splitlines()[0])

        self.assertEqual(
            sorted(answers),
            [
                "Hello from demo backend app[0] http://127.0.0.1:%d." % (first,),
                "Hello from demo backend app[1] http://127.0.0.1:%d." % (second,),
            ],
        )
        reason = yield terminate(process)
        self.assertIsInstance(reason, ProcessDone, process.describe())
        self.assertIn("started demo backend app[0] http://127.0.0.1:%d" % (first,), process.stdout)
        self.assertIn("curl http://127.0.0.1:%d/" % (port,), process.stdout)
        self.assertNotIn("Traceback", process.stdout + process.stderr)
