"""
C{[log] format = "json"} in a real C{twistd txrevproxy}: every line twistd
writes, its own and the proxy's, is a JSON object, in the foreground, with
C{--logfile}, as a daemon and with workers; a 502 of a refused backend has
the same request ID in the error log and in the access log.  And a reload
that asks for other event log lines says they need a restart.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import List, Tuple

from twisted.internet import reactor
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config import load_config

from ..support.processes import (
    free_port,
    proxy_process,
    simple_config,
    source_tree_environment,
    temporary_directory,
    twistd_command,
)
from ..support.waiting import until_blocking

#: A bound on every wait for the process to do something.
WAIT = 30.0


def config_text(log: str = 'format = "json"', server: str = "") -> str:
    """
    A listener (port C{{port}}, for C{str.format}) whose one route goes
    to a backend that refuses connections, and a C{[log]} table.
    """
    listener = simple_config(0, ["http://127.0.0.1:%d" % (free_port(),)])
    listener = listener.replace("{", "{{").replace("}", "}}")
    return "[server]\n%s\n%s\n[log]\n%s\n" % (
        server,
        listener.replace("tcp:0:", "tcp:{port}:"),
        log,
    )


def refused(port: int) -> str:
    """
    Ask the proxy for a page of the refused backend; its request ID.
    """
    try:
        urllib.request.urlopen("http://127.0.0.1:%d/page" % (port,), timeout=WAIT)
    except urllib.error.HTTPError as error:
        assert error.code == 502, error.code
        return error.headers["X-Request-ID"]
    raise AssertionError("the proxy answered the refused backend's page")


def objects(path: Path) -> List[dict]:
    """
    The JSON object of every line of C{path}; any other line fails.
    """
    lines = path.read_text().splitlines()
    assert lines, path
    return [json.loads(line) for line in lines]


def until_logged(path: Path, condition) -> None:
    """
    Wait until a whole line of C{path}, once parsed, meets C{condition};
    a line that is not JSON fails.
    """

    def logged() -> bool:
        if not path.exists():
            return False
        lines = path.read_text().splitlines(keepends=True)
        return any(condition(json.loads(line)) for line in lines if line.endswith("\n"))

    until_blocking(logged)


def access_and_error(lines: List[dict], request_id: str) -> Tuple[dict, dict]:
    """
    The access log object and the error log object of a request.
    """
    [access] = [o for o in lines if "status" in o and "namespace" not in o]
    [error] = [o for o in lines if o.get("namespace") == "txrevproxy.errors"]
    assert access["request_id"] == error["request_id"] == request_id, (access, error)
    return access, error


class ForegroundTests(TestCase):
    def assert_started(self, lines: List[dict]) -> None:
        [started] = [o for o in lines if o.get("message", "").endswith("starting up.")]
        self.assertEqual(started["level"], "info")
        self.assertRegex(started["time"], r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")

    def test_every_line_on_standard_output_is_json(self):
        directory = temporary_directory(self)
        output = directory / "proxy.log"
        with proxy_process(directory, [], config_text()) as proxy:
            request_id = refused(proxy.port)
            until_logged(output, lambda o: o.get("status") == 502 and "level" not in o)
        lines = objects(output)
        self.assert_started(lines)
        access, error = access_and_error(lines, request_id)
        self.assertEqual(
            [error["level"], error["status"], error["cause"], error["upstream"]],
            ["error", 502, "refused", "app"],
        )
        self.assertNotIn("worker", error)
        self.assertIn("Main loop terminated.", [o.get("message") for o in lines])

    def test_with_logfile_the_event_log_is_json_in_that_file(self):
        directory = temporary_directory(self)
        output, logfile = directory / "proxy.log", directory / "events.log"
        with proxy_process(
            directory, [], config_text(), twistd_options=["--logfile", str(logfile)]
        ) as proxy:
            request_id = refused(proxy.port)
            until_logged(output, lambda o: o.get("status") == 502)
        events = objects(logfile)
        self.assert_started(events)
        self.assertTrue(all("level" in o and "namespace" in o for o in events), events)
        access = objects(output)
        access_and_error(access + events, request_id)

    def test_events_text_keeps_twistds_lines_beside_a_json_access_log(self):
        directory = temporary_directory(self)
        output = directory / "proxy.log"
        with proxy_process(
            directory, [], config_text('format = "json"\nevents = "text"')
        ) as proxy:
            request_id = refused(proxy.port)
            until_blocking(lambda: '"status":502' in output.read_text())
        lines = output.read_text().splitlines()
        [access] = [line for line in lines if line.startswith("{")]
        self.assertEqual(json.loads(access)["request_id"], request_id)
        [error] = [line for line in lines if "[txrevproxy.errors#error] 502 (" in line]
        self.assertIn("request_id=%s " % (request_id,), error)

    def test_a_daemon_writes_json_to_its_logfile(self):
        directory = temporary_directory(self)
        port = free_port()
        config = directory / "proxy.toml"
        config.write_text(config_text().format(port=port))
        pidfile, logfile = directory / "twistd.pid", directory / "twistd.log"
        subprocess.run(
            twistd_command(
                "--pidfile", str(pidfile), "--logfile", str(logfile),
                "txrevproxy", "--config", str(config),
            ),
            cwd=str(directory),
            env=source_tree_environment(),
            check=True,
            timeout=WAIT,
        )
        pid = int(pidfile.read_text())
        self.addCleanup(stop_daemon, pid)
        request_ids: List[str] = []

        def answered() -> bool:
            try:
                request_ids.append(refused(port))
            except OSError:
                return False
            return True

        until_blocking(answered)
        [request_id] = request_ids
        until_logged(logfile, lambda o: o.get("namespace") == "txrevproxy.errors")
        stop_daemon(pid)
        lines = objects(logfile)
        self.assert_started(lines)
        [error] = [o for o in lines if o.get("namespace") == "txrevproxy.errors"]
        self.assertEqual(error["request_id"], request_id)


def stop_daemon(pid: int) -> None:
    """
    Stop a daemonized proxy with SIGTERM and wait until it is gone.
    """
    deadline = time.monotonic() + WAIT
    try:
        os.kill(pid, signal.SIGTERM)
        while time.monotonic() < deadline:
            os.kill(pid, 0)
            time.sleep(0.05)
    except ProcessLookupError:
        return
    os.kill(pid, signal.SIGKILL)


class WorkersTests(TestCase):
    def test_each_line_says_which_process_wrote_it(self):
        directory = temporary_directory(self)
        output = directory / "proxy.log"
        with proxy_process(directory, [], config_text(server="workers = 2")) as proxy:
            request_id = refused(proxy.port)
            until_logged(output, lambda o: o.get("status") == 502 and "level" not in o)
        lines = objects(output)
        events = [o for o in lines if "level" in o]
        self.assertTrue(
            all(o.get("supervisor") is True or o.get("worker") in (0, 1) for o in events),
            events,
        )
        service = "txrevproxy.app.service.ProxyService"
        self.assertEqual({o["worker"] for o in events if o["namespace"] == service}, {0, 1})
        self.assertIn(
            "txrevproxy.app.workers.WorkerSupervisor",
            [o["namespace"] for o in events if o.get("supervisor")],
        )
        access, error = access_and_error(lines, request_id)
        self.assertEqual(access["worker"], error["worker"])


class ReloadTests(TestCase):
    def test_a_reload_to_other_event_lines_says_they_need_a_restart(self):
        path = temporary_directory(self) / "proxy.toml"
        path.write_text(config_text('access = "off"').format(port=0))
        service = ProxyService(load_config(str(path)), reactor)
        service.startService()
        self.addCleanup(service.stopService)
        events: List[dict] = []
        globalLogPublisher.addObserver(events.append)
        self.addCleanup(globalLogPublisher.removeObserver, events.append)
        path.write_text(config_text('access = "off"\nformat = "json"').format(port=0))
        self.assertEqual(service.reload(), [])
        self.assertEqual(service.config.log.events, "json")
        warnings = [e for e in events if "log.events" in e.get("log_format", "")]
        self.assertEqual([e["events"] for e in warnings], ["text"])
        self.assertEqual(service.reload(), [])
        self.assertEqual(len([e for e in events if "log.events" in e.get("log_format", "")]), 2)
