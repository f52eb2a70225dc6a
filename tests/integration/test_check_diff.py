"""
The installed C{txrevproxy check --diff}, as a process: against an older
file, and against a running C{twistd -n txrevproxy} through its admin API
(the one of the file's C{[admin]} table, or C{--admin}), before and after
the reload; and C{--strict}.
"""

from __future__ import annotations

import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import List

from twisted.trial.unittest import TestCase

from ..support.commands import run, run_installed
from ..support.processes import free_port, proxy_process, temporary_directory

CONFIG = """
[admin]
endpoint = "tcp:ADMIN:interface=127.0.0.1"
token = "s3cret"

[listeners.web]
endpoint = "tcp:{port}:interface=127.0.0.1"

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:9" }}]

[[routes]]
name = "home"
path = "/"
respond = {{ status = 200, body = "one" }}

[[routes]]
path = "/app/"
upstream = "app"
"""


def configured(admin: int) -> str:
    """
    L{CONFIG} with its admin API on C{admin}, its listener's port left as
    C{{port}} (see L{proxy_process}).
    """
    return CONFIG.replace("ADMIN", str(admin))


def check(arguments: List[str]) -> subprocess.CompletedProcess:
    return run_installed(["check"] + arguments)


class CheckDiffTests(TestCase):
    def test_diff_against_an_older_file(self):
        directory = temporary_directory(self)
        old = directory / "old.toml"
        old.write_text(configured(9901).format(port=8080))
        new = directory / "new.toml"
        new.write_text(
            old.read_text().replace('body = "one"', 'body = "two"')
            + '[upstreams.spare]\nservers = [{ url = "http://127.0.0.1:10" }]\n'
        )
        done = check(["--config", str(new), "--diff", str(old)])
        self.assertEqual((done.returncode, done.stderr), (0, ""))
        self.assertEqual(
            done.stdout.splitlines()[1:],
            [
                "warning: upstreams.spare: unused: no route names it",
                "changes from %s:" % (old,),
                "  upstreams.spare: added",
                '  routes[0] (name "home"): changed',
                '      respond.body: "one" -> "two"',
                "  a reload applies all of it (txrevproxy reload)",
            ],
        )
        done = check(["--config", str(new), "--diff", str(old), "--strict"])
        self.assertEqual(done.returncode, 1)

    def test_diff_against_the_running_proxy(self):
        directory = temporary_directory(self)
        admin = free_port()
        with proxy_process(directory, [], configured(admin)) as proxy:
            config = str(proxy.config)
            done = check(["--config", config, "--diff", "--strict"])
            self.assertEqual((done.returncode, done.stderr), (0, ""))
            self.assertEqual(
                done.stdout.splitlines()[1:],
                [
                    "changes from the running proxy (http://127.0.0.1:%d):" % (admin,),
                    "  no changes",
                ],
            )

            # Edited, not reloaded: the file differs from what is served.
            edited = proxy.config.read_text().replace('body = "one"', 'body = "two"')
            other_token = edited.replace('token = "s3cret"', 'token = "other"')
            proxy.config.write_text("[server]\nworkers = 2\n" + other_token)
            url = "http://127.0.0.1:%d" % (admin,)
            done = check(["--config", config, "--diff", "--admin", url, "--token", "s3cret"])
            self.assertEqual((done.returncode, done.stderr), (0, ""))
            self.assertEqual(
                done.stdout.splitlines()[1:],
                [
                    "changes from the running proxy (http://127.0.0.1:%d):" % (admin,),
                    "  [server]: changed",
                    "      workers: 1 -> 2",
                    '  routes[0] (name "home"): changed',
                    '      respond.body: "one" -> "two"',
                    "  needs a restart (a reload would not apply it):",
                    "      server.workers: changed; this needs a restart",
                    "  a reload applies the rest",
                ],
            )
            self.assertNotIn("other", done.stdout)

            # The file's token is not the one served: the API refuses.
            done = check(["--config", config, "--diff"])
            self.assertEqual((done.returncode, done.stdout.count("changes")), (1, 0))
            self.assertEqual(
                done.stderr,
                "http://127.0.0.1:%d: answered 401: a valid bearer token is required "
                "(give --token or --token-file, or set [admin] token)\n" % (admin,),
            )

            # Reloaded: what is served is the file.
            proxy.config.write_text(edited)
            status, _, err = run(["reload", "--config", config])
            self.assertEqual((status, err), (0, ""))
            done = check(["--config", config, "--diff"])
            self.assertEqual(done.stdout.splitlines()[-1], "  no changes")

    def test_diff_against_an_admin_url_that_is_not_the_admin_api(self):
        """
        A server whose C{GET /config} answers 200 with something else than
        TOML gets a sentence, not a traceback.
        """

        class Page(BaseHTTPRequestHandler):
            def do_GET(self):
                body = b"<html>\xff not a configuration</html>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        server = HTTPServer(("127.0.0.1", 0), Page)
        thread = threading.Thread(target=server.serve_forever)
        thread.start()
        self.addCleanup(thread.join)
        self.addCleanup(server.server_close)
        self.addCleanup(server.shutdown)
        path = temporary_directory(self) / "proxy.toml"
        path.write_text(configured(9901).format(port=8080))
        url = "http://127.0.0.1:%d" % (server.server_address[1],)
        status, out, err = run(["check", "--config", str(path), "--diff", "--admin", url])
        self.assertEqual((status, out.count("changes")), (1, 0))
        self.assertEqual(
            err,
            "%s: answered 200, not a configuration; is this the admin endpoint?\n"
            % (url,),
        )
