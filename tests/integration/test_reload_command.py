"""
C{txrevproxy reload} against a running C{twistd -n txrevproxy}: through
the admin API found in the configuration file (TCP or a UNIX socket, with
its token) or given with C{--admin}, and by C{SIGHUP} to the pid in a pid
file after checking the configuration.  Exit 0 only when the proxy serves
the new configuration; otherwise the problems, with their key paths, and
exit 1, the old configuration still served.
"""

from __future__ import annotations

import socket
import time
import urllib.request
from pathlib import Path

from twisted.trial.unittest import TestCase

from ..support.commands import run
from ..support.processes import free_port, proxy_process, temporary_directory

CONFIG = """
[admin]
endpoint = "ADMIN"
TOKEN
[listeners.web]
endpoint = "tcp:{port}:interface=127.0.0.1"

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:9" }}]

[[routes]]
path = "/"
respond = {{ status = 200, body = "one" }}
"""

#: A configuration the proxy refuses: a route to an upstream not defined.
BROKEN_ROUTE = 'path = "/"\nupstream = "nosuch"\n'


def served(port: int) -> bytes:
    with urllib.request.urlopen("http://127.0.0.1:%d/" % (port,), timeout=10) as answer:
        return answer.read()


def configured(admin: str, token: str = "") -> str:
    return CONFIG.replace("ADMIN", admin).replace(
        "TOKEN\n", 'token = "%s"\n' % (token,) if token else ""
    )


def change_body(config: Path, body: str) -> None:
    text = config.read_text()
    start = text.index('body = "') + len('body = "')
    config.write_text(text[:start] + body + text[text.index('"', start) :])


class ReloadCommandTests(TestCase):
    def test_reload_by_the_configuration_admin_api(self):
        directory = temporary_directory(self)
        admin = "tcp:%d:interface=127.0.0.1" % (free_port(),)
        with proxy_process(directory, [], configured(admin)) as proxy:
            config = str(proxy.config)
            change_body(proxy.config, "two")
            status, out, err = run(["reload", "--config", config])
            self.assertEqual((status, err), (0, ""))
            self.assertEqual(out, "%s: reloaded\n" % ("http://127.0.0.1:" + admin.split(":")[1],))
            self.assertEqual(served(proxy.port), b"two")

            # A configuration with problems: told with key paths, not sent.
            good = proxy.config.read_text()
            proxy.config.write_text(good.replace('path = "/"\nrespond', BROKEN_ROUTE + "respond", 1))
            status, out, err = run(["reload", "--config", config])
            self.assertEqual((status, out), (1, ""))
            self.assertIn('routes[0].upstream: no upstream named "nosuch"', err)
            self.assertTrue(err.endswith("not reloaded: the proxy keeps its configuration\n"))
            self.assertEqual(served(proxy.port), b"two")

            # Valid here, refused by the proxy: its answer's problems.
            proxy.config.write_text("[server]\nworkers = 2\n" + good.replace('"two"', '"three"'))
            status, out, err = run(["reload", "--config", config])
            self.assertEqual((status, out), (1, ""))
            self.assertEqual(
                err.splitlines()[-1],
                "reload failed: still serving the previous configuration",
            )
            self.assertIn("server.workers: changed; this needs a restart", err)
            self.assertEqual(served(proxy.port), b"two")

    def test_reload_over_a_unix_socket_with_the_token(self):
        directory = temporary_directory(self)
        socket_path = directory / "admin.sock"
        admin = "unix:%s" % (socket_path,)
        with proxy_process(directory, [], configured(admin, "s3cret")) as proxy:
            change_body(proxy.config, "two")
            status, out, err = run(["reload", "--admin", admin])
            self.assertEqual((status, out), (1, ""))
            self.assertEqual(
                err,
                "%s: answered 401: a valid bearer token is required (give --token "
                "or --token-file, or set [admin] token)\n" % (admin,),
            )
            self.assertEqual(served(proxy.port), b"one")

            token_file = directory / "token"
            token_file.write_text("s3cret\n")
            status, out, err = run(["reload", "--admin", admin, "--token-file", str(token_file)])
            self.assertEqual((status, out, err), (0, "%s: reloaded\n" % (admin,), ""))
            self.assertEqual(served(proxy.port), b"two")

            # The token of the [admin] table, the socket of its endpoint.
            change_body(proxy.config, "three")
            status, out, err = run(["reload", "--config", str(proxy.config)])
            self.assertEqual((status, out, err), (0, "%s: reloaded\n" % (admin,), ""))
            self.assertEqual(served(proxy.port), b"three")

    def test_reload_by_pidfile_signals_only_a_valid_configuration(self):
        directory = temporary_directory(self)
        admin = "tcp:%d:interface=127.0.0.1" % (free_port(),)
        with proxy_process(directory, [], configured(admin)) as proxy:
            pidfile = directory / "twistd.pid"
            pidfile.write_text("%d\n" % (proxy.pid,))
            config = str(proxy.config)
            good = proxy.config.read_text()

            proxy.config.write_text(good.replace('path = "/"\nrespond', BROKEN_ROUTE + "respond", 1))
            status, out, err = run(["reload", "--config", config, "--pidfile", str(pidfile)])
            self.assertEqual((status, out), (1, ""))
            self.assertIn('routes[0].upstream: no upstream named "nosuch"', err)
            # A signal is handled before the next request is: had one been
            # sent, its failure would be in the log by the probe's answer.
            probe = "http://127.0.0.1:%s/health" % (admin.split(":")[1],)
            with urllib.request.urlopen(probe, timeout=10) as answer:
                self.assertEqual(answer.read(), b"ok\n")
            self.assertNotIn(b"reload failed", (directory / "proxy.log").read_bytes())
            self.assertEqual(served(proxy.port), b"one")

            proxy.config.write_text(good.replace('"one"', '"two"'))
            status, out, err = run(["reload", "--config", config, "--pidfile", str(pidfile)])
            self.assertEqual((status, out, err), (0, "sent SIGHUP to process %d\n" % (proxy.pid,), ""))
            deadline = time.monotonic() + 20
            while served(proxy.port) != b"two":
                self.assertLess(time.monotonic(), deadline, "the SIGHUP was not obeyed")
                time.sleep(0.05)

    def test_unreachable_admin_api_is_one_line_and_exit_1(self):
        port = free_port()
        status, out, err = run(["reload", "--admin", "http://127.0.0.1:%d" % (port,)])
        self.assertEqual((status, out), (1, ""))
        self.assertEqual(
            err,
            "http://127.0.0.1:%d: cannot reach the admin API: Connection refused\n" % (port,),
        )

    def test_admin_api_that_does_not_answer_in_time_is_one_line_and_exit_1(self):
        silent = socket.socket()
        self.addCleanup(silent.close)
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)
        url = "http://127.0.0.1:%d" % (silent.getsockname()[1],)
        status, out, err = run(["reload", "--admin", url, "--timeout", "0.2"])
        self.assertEqual(
            (status, out, err),
            (1, "", "%s: the admin API did not answer within 0.2 seconds\n" % (url,)),
        )
