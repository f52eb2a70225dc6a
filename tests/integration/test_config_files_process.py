"""
Included files and environment variables as operators meet them: the
installed C{txrevproxy check} command, and C{twistd -n txrevproxy}, run as
processes with their own environment.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Dict, List, Tuple

from twisted.trial.unittest import TestCase

from ..support.commands import run_installed
from ..support.processes import (
    free_port,
    source_tree_environment,
    stop_process,
    temporary_directory,
    twistd_command,
    wait_for_port,
)


MAIN = """
include = ["conf.d/*.toml"]

[admin]
endpoint = "tcp:${ADMIN_PORT:-9901}:interface=127.0.0.1"
token = "${ADMIN_TOKEN}"

[listeners.web]
endpoint = "tcp:${PROXY_PORT}:interface=127.0.0.1"

[upstreams.app]
servers = [{ url = "http://127.0.0.1:9" }]

[[routes]]
upstream = "app"
"""

FIXED = """
[[routes]]
path = "/fixed"
respond = { status = 200, body = "ok from ${GREETING:-conf.d}" }
"""


def write_configuration(directory: Path, included: str = FIXED) -> Path:
    (directory / "conf.d").mkdir()
    (directory / "conf.d" / "fixed.toml").write_text(included)
    main = directory / "proxy.toml"
    main.write_text(MAIN)
    return main


def environment(**variables: str) -> Dict[str, str]:
    env = source_tree_environment()
    for name in ("ADMIN_PORT", "ADMIN_TOKEN", "PROXY_PORT", "GREETING"):
        env.pop(name, None)
    env.update(variables)
    return env


class CheckCommandTests(TestCase):
    """
    The installed C{txrevproxy check}.
    """

    def check(self, arguments: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess:
        return run_installed(["check"] + arguments, env)

    def test_check_reads_included_files_with_the_environment(self):
        main = write_configuration(temporary_directory(self))
        done = self.check(
            ["--config", str(main)], environment(ADMIN_TOKEN="t0ken", PROXY_PORT="8080")
        )
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        self.assertEqual(
            done.stdout,
            "%s: OK: 1 listener, 1 upstream (1 server), 2 routes\n" % (main,),
        )

    def test_check_lists_every_problem_of_every_file(self):
        main = write_configuration(
            temporary_directory(self),
            FIXED + '\n[[routes]]\npath = "/api"\nupstream = "apii"\n',
        )
        done = self.check(["--config", str(main)], environment(PROXY_PORT="x"))
        self.assertEqual(done.returncode, 1)
        self.assertEqual(done.stdout, "")
        included = os.path.join(str(main.parent), "conf.d", "fixed.toml")
        token, endpoint, route = done.stderr.splitlines()
        self.assertEqual(token, "admin.token: environment variable ADMIN_TOKEN is not set")
        self.assertTrue(
            endpoint.startswith(
                'listeners.web.endpoint: invalid server endpoint "tcp:x:interface=127.0.0.1"'
            ),
            endpoint,
        )
        self.assertEqual(
            route, '%s: routes[2].upstream: no upstream named "apii"' % (included,)
        )

    def test_check_dump_prints_a_configuration_check_accepts(self):
        directory = temporary_directory(self)
        main = write_configuration(directory)
        env = environment(ADMIN_TOKEN="t0ken", PROXY_PORT="8080", GREETING="env")
        dumped = self.check(["--dump", "--config", str(main)], env)
        self.assertEqual(dumped.returncode, 0, dumped.stderr)
        self.assertIn('token = "<redacted>"', dumped.stdout)
        self.assertNotIn("t0ken", dumped.stdout)
        self.assertIn('body = "ok from env"', dumped.stdout)
        self.assertIn('endpoint = "tcp:8080:interface=127.0.0.1"', dumped.stdout)
        self.assertTrue(dumped.stderr.startswith("%s: OK: " % (main,)), dumped.stderr)

        shown = self.check(["--dump", "--show-secrets", "--config", str(main)], env)
        self.assertIn('token = "t0ken"', shown.stdout)
        elsewhere = temporary_directory(self) / "effective.toml"
        elsewhere.write_text(shown.stdout)
        again = self.check(["--config", str(elsewhere)], environment())
        self.assertEqual((again.returncode, again.stderr), (0, ""))
        self.assertIn("2 routes", again.stdout)


class TwistdEnvironmentTests(TestCase):
    """
    C{twistd -n txrevproxy} with the ports and the admin token in
    environment variables, and routes in included files.
    """

    def start(self, directory: Path, main: Path, **variables: str) -> subprocess.Popen:
        """
        Run twistd on C{main} with C{variables} in its environment, and
        wait for its listener on C{PROXY_PORT}.
        """
        with open(directory / "proxy.log", "wb") as log:
            process = subprocess.Popen(
                twistd_command("-n", "--pidfile=", "txrevproxy", "--config", str(main)),
                cwd=str(directory),
                env=environment(**variables),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.addCleanup(stop_process, process)
        wait_for_port(int(variables["PROXY_PORT"]), process)
        return process

    def test_twistd_takes_ports_and_token_from_the_environment(self):
        directory = temporary_directory(self)
        main = write_configuration(directory)
        proxy_port, admin_port = free_port(), free_port()
        process = self.start(
            directory,
            main,
            ADMIN_TOKEN="from-env",
            PROXY_PORT=str(proxy_port),
            ADMIN_PORT=str(admin_port),
        )
        self.assertEqual(fetch(proxy_port, "/fixed"), (200, b"ok from conf.d"))
        wait_for_port(admin_port, process)
        status = "http://127.0.0.1:%d/status" % (admin_port,)
        with self.assertRaises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(status, timeout=30)
        self.assertEqual(refused.exception.code, 401)
        request = urllib.request.Request(status, headers={"Authorization": "Bearer from-env"})
        with urllib.request.urlopen(request, timeout=30) as answer:
            self.assertEqual(answer.status, 200)

    def test_sighup_reads_a_file_added_to_the_included_directory(self):
        directory = temporary_directory(self)
        main = write_configuration(directory, included="")
        port = free_port()
        process = self.start(
            directory, main, ADMIN_TOKEN="t", PROXY_PORT=str(port), ADMIN_PORT=str(free_port())
        )
        self.assertEqual(fetch(port, "/fixed")[0], 502)
        (directory / "conf.d" / "more.toml").write_text(FIXED)
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 30
        while fetch(port, "/fixed") != (200, b"ok from conf.d"):
            self.assertLess(time.monotonic(), deadline, "the included route was not added")
            time.sleep(0.05)
        self.assertIsNone(process.poll())


def fetch(port: int, path: str) -> Tuple[int, bytes]:
    """
    The status and body of a GET of C{path} from the proxy.
    """
    try:
        with urllib.request.urlopen(
            "http://127.0.0.1:%d%s" % (port, path), timeout=30
        ) as answer:
            return answer.status, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
