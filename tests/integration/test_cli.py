"""
Tests for the C{txrevproxy} command (L{txrevproxy.tools.cli}) and the demo
backends it starts (L{txrevproxy.tools.demo}).
"""

from __future__ import annotations

import io
from typing import Tuple

from twisted.trial.unittest import TestCase
from twisted.web.test.requesthelper import DummyRequest

from txrevproxy.config import ConfigError, load_config, parse_config
from txrevproxy.tools.cli import demo_backends, main
from txrevproxy.tools.demo import DemoBackend

from ..support.commands import run
from ..support.processes import SOURCE_ROOT, temporary_directory

QUICKSTART = SOURCE_ROOT / "examples" / "quickstart.toml"

#: A configuration with several problems at once.
INVALID = """\
[listeners.web]
endpoint = "tcp:8080:interface=127.0.0.1"

[upstreams.app]
servers = [{ url = "http://127.0.0.1:9001" }]

[[routes]]
path = "/"
upstream = "nosuch"

[[routes]]
path = "/api/"
upstream = "appp"
"""


class CheckTests(TestCase):
    def write(self, text: str) -> str:
        path = temporary_directory(self) / "proxy.toml"
        path.write_text(text)
        return str(path)

    def test_valid_config_exits_0_with_a_summary(self):
        status, out, err = run(["check", "--config", str(QUICKSTART)])
        self.assertEqual(
            (status, out, err),
            (0, "%s: OK: 2 listeners, 1 upstream (2 servers), 1 route\n" % (QUICKSTART,), ""),
        )

    def test_invalid_config_prints_every_problem_and_exits_1(self):
        path = self.write(INVALID)
        status, out, err = run(["check", "-c", path])
        self.assertEqual(status, 1)
        self.assertEqual(out, "")
        self.assertEqual(
            err.splitlines(),
            [
                'routes[0].upstream: no upstream named "nosuch"',
                'routes[1].upstream: no upstream named "appp"; did you mean "app"?',
            ],
        )

    def test_problems_are_the_loaders_sentences_one_per_line(self):
        path = self.write(INVALID.replace('"tcp:8080:interface=127.0.0.1"', "8080"))
        with self.assertRaises(ConfigError) as raised:
            load_config(path)
        status, out, err = run(["check", "--config", path])
        self.assertEqual(status, 1)
        self.assertEqual(err.splitlines(), raised.exception.problems)
        self.assertGreaterEqual(len(raised.exception.problems), 3)
        self.assertTrue(
            any(line.startswith("listeners.web.endpoint: ") for line in err.splitlines()), err
        )

    def test_missing_file_is_one_sentence(self):
        path = str(temporary_directory(self) / "absent.toml")
        status, out, err = run(["check", "--config", path])
        self.assertEqual(status, 1)
        self.assertEqual(
            err.splitlines(), [path + ": cannot read the configuration file: No such file or directory"]
        )

    def test_config_defaults_to_proxy_toml(self):
        status, out, err = run(["check"])
        self.assertEqual(status, 1)
        self.assertTrue(err.startswith("proxy.toml: "), err)

    def test_a_command_is_required(self):
        error = self.assertRaises(SystemExit, main, [])
        self.assertEqual(error.code, 2)


def config_of(servers: str):
    return parse_config(
        {
            "listeners": {"web": {"endpoint": "tcp:0"}},
            "upstreams": {
                "app": {"servers": [{"url": url} for url in servers.split()]},
                "api": {"servers": [{"url": "http://127.0.0.1:9001"}]},
            },
            "routes": [{"path": "/", "upstream": "app"}],
        }
    )


class DemoBackendsTests(TestCase):
    def test_one_backend_per_distinct_loopback_server(self):
        backends, elsewhere = demo_backends(
            config_of(
                "http://127.0.0.1:9001 http://localhost:9002 http://[::1]:9003 "
                "http://127.0.0.2:9004 http://192.0.2.1:80 http://backend.example:80"
            )
        )
        self.assertEqual(
            backends,
            [
                ("app[0] http://127.0.0.1:9001", "127.0.0.1", 9001),
                ("app[1] http://localhost:9002", "127.0.0.1", 9002),
                ("app[2] http://[::1]:9003", "::1", 9003),
                ("app[3] http://127.0.0.2:9004", "127.0.0.2", 9004),
            ],
        )
        self.assertEqual(elsewhere, ["http://192.0.2.1:80", "http://backend.example:80"])

    def test_quickstart_starts_two_backends(self):
        backends, elsewhere = demo_backends(load_config(str(QUICKSTART)))
        self.assertEqual(
            [(host, port) for name, host, port in backends],
            [("127.0.0.1", 9001), ("127.0.0.1", 9002)],
        )
        self.assertEqual(elsewhere, [])


def render(path: bytes, method: bytes = b"GET", body: bytes = b"") -> Tuple[DummyRequest, bytes]:
    request = DummyRequest(path.lstrip(b"/").split(b"/"))
    request.method = method
    request.uri = request.path = path
    request.content = io.BytesIO(body)
    request.requestHeaders.addRawHeader(b"X-Forwarded-For", b"203.0.113.9")
    request.requestHeaders.addRawHeader(b"Via", b"1.1 txrevproxy")
    result = DemoBackend("app[1] http://127.0.0.1:9002").render(request)
    return request, result


class DemoBackendTests(TestCase):
    def test_answer_names_the_backend_request_and_headers(self):
        request, body = render(b"/shop/cart?id=7")
        self.assertEqual(
            body.decode("utf-8").splitlines(),
            [
                "Hello from demo backend app[1] http://127.0.0.1:9002.",
                "",
                "Request: GET /shop/cart?id=7",
                "Body: 0 bytes",
                "",
                "Headers as this backend received them:",
                "  Via: 1.1 txrevproxy",
                "  X-Forwarded-For: 203.0.113.9",
            ],
        )
        self.assertEqual(
            request.responseHeaders.getRawHeaders(b"X-Demo-Backend"),
            [b"app[1] http://127.0.0.1:9002"],
        )

    def test_request_body_is_counted(self):
        request, body = render(b"/upload", b"POST", b"x" * 200000)
        self.assertIn(b"Request: POST /upload\nBody: 200000 bytes\n", body)

    def test_healthz_answers_ok(self):
        request, body = render(b"/healthz")
        self.assertEqual(body, b"ok\n")
        self.assertIsNone(request.responseCode)  # twisted.web's default, 200


class TwistdVersionAndDaemonTests(TestCase):
    """
    C{twistd txrevproxy --version}, and a daemonizing twistd whose port is
    taken: both as real processes.
    """

    def run_twistd(self, *arguments: str):
        import subprocess

        from ..support.processes import source_tree_environment, twistd_command

        directory = temporary_directory(self)
        return subprocess.run(
            twistd_command(*arguments),
            cwd=str(directory),
            env=source_tree_environment(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            timeout=120,
        ), directory

    def test_twistd_version_prints_txrevproxys(self):
        from txrevproxy import __version__

        result, _ = self.run_twistd("txrevproxy", "--version")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertTrue(
            result.stdout.decode().startswith("txrevproxy %s " % (__version__,)),
            result.stdout,
        )

    def test_daemon_start_with_a_port_in_use_prints_the_whole_sentence(self):
        import socket

        from ..support.processes import simple_config

        taken = socket.socket()
        self.addCleanup(taken.close)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        directory = temporary_directory(self)
        config = directory / "proxy.toml"
        config.write_text(simple_config(port, ["http://127.0.0.1:9"]))
        result, _ = self.run_twistd(
            "--pidfile", str(directory / "twistd.pid"),
            "--logfile", str(directory / "twistd.log"),
            "txrevproxy", "--config", str(config),
        )
        self.assertEqual(result.returncode, 1)
        stderr = result.stderr.decode()
        self.assertIn(
            "listeners.web.endpoint: cannot listen on tcp:%d:interface=127.0.0.1: "
            "Couldn't listen on 127.0.0.1:%d: [Errno 98] Address already in use." % (port, port),
            stderr,
        )
        self.assertNotIn("b'", stderr)


class VersionTests(TestCase):
    def test_txrevproxy_version(self):
        from txrevproxy import __version__

        with self.assertRaises(SystemExit):
            import contextlib

            out = io.StringIO()
            with contextlib.redirect_stdout(out):
                main(["--version"])
        self.assertEqual(out.getvalue(), "txrevproxy %s\n" % (__version__,))
