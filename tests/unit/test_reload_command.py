"""
C{txrevproxy reload} without a proxy: where it reaches the admin API (a
URL, or the server endpoint description of C{[admin] endpoint} turned into
a client's address), and the mistakes it tells in one line.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from txrevproxy.tools.reload import AdminAddress, ReloadError, admin_address

from ..support.commands import run
from ..support.processes import simple_config, temporary_directory

#: A pid no process can have: above the largest pid_max Linux allows.
NO_PID = 2**22 + 1


class AdminAddressTests(TestCase):
    def test_tcp_endpoints_are_reached_on_their_interface_or_the_loopback(self):
        self.assertEqual(
            admin_address("tcp:9901:interface=127.0.0.2"),
            AdminAddress("http://127.0.0.2:9901", "http", "127.0.0.2", 9901),
        )
        self.assertEqual(
            admin_address("tcp:port=9901:interface=0.0.0.0"),
            AdminAddress("http://127.0.0.1:9901", "http", "127.0.0.1", 9901),
        )
        self.assertEqual(admin_address("tcp:9901").host, "127.0.0.1")

    def test_ipv6_endpoints_with_escaped_colons(self):
        self.assertEqual(
            admin_address(r"tcp6:9901:interface=\:\:1"),
            AdminAddress("http://[::1]:9901", "http", "::1", 9901),
        )
        self.assertEqual(admin_address("tcp6:9901").host, "::1")
        self.assertEqual(admin_address(r"tcp:9901:interface=\:\:").host, "::1")

    def test_unix_socket_endpoints(self):
        expected = AdminAddress(
            "unix:/run/txrevproxy-admin.sock", "unix", "localhost", path="/run/txrevproxy-admin.sock"
        )
        self.assertEqual(admin_address("unix:/run/txrevproxy-admin.sock:mode=600"), expected)
        self.assertEqual(admin_address("unix:address=/run/txrevproxy-admin.sock"), expected)

    def test_urls(self):
        self.assertEqual(
            admin_address("https://admin.example.test/"),
            AdminAddress("https://admin.example.test", "https", "admin.example.test", 443),
        )
        self.assertEqual(admin_address("http://127.0.0.1:9901").port, 9901)

    def test_endpoints_a_client_cannot_reach_ask_for_a_url(self):
        for text in ["ssl:9901:privateKey=k.pem", "systemd:domain=INET:index=0", "tcp:x"]:
            error = self.assertRaises(ReloadError, admin_address, text)
            self.assertEqual(
                str(error),
                "%s: cannot reach an admin API from this endpoint; give its URL "
                "with --admin http://HOST:PORT" % (text,),
            )
        error = self.assertRaises(ReloadError, admin_address, "http://:x")
        self.assertEqual(str(error), "http://:x: not a URL such as http://127.0.0.1:9901")


class MistakeTests(TestCase):
    def setUp(self):
        self.directory = temporary_directory(self)
        self.config = self.directory / "proxy.toml"
        self.config.write_text(simple_config(8080, ["http://127.0.0.1:9001"]))

    def test_a_configuration_without_admin_table_needs_admin_or_pidfile(self):
        self.assertEqual(
            run(["reload", "--config", str(self.config)]),
            (1, "", "%s: no [admin] table; give --admin URL or --pidfile FILE\n" % (self.config,)),
        )

    def test_pid_files_that_name_no_proxy(self):
        pidfile = self.directory / "twistd.pid"
        command = ["reload", "--config", str(self.config), "--pidfile", str(pidfile)]
        self.assertEqual(
            run(command),
            (1, "", "%s: cannot read the pid file: No such file or directory\n" % (pidfile,)),
        )
        pidfile.write_text("twistd\n")
        self.assertEqual(run(command), (1, "", "%s: holds no pid\n" % (pidfile,)))
        pidfile.write_text("%d\n" % (NO_PID,))
        self.assertEqual(
            run(command),
            (1, "", "%s: no process %d; is the proxy running?\n" % (pidfile, NO_PID)),
        )

    def test_unreadable_token_file(self):
        missing = self.directory / "token"
        self.assertEqual(
            run(["reload", "--admin", "tcp:9901", "--token-file", str(missing)]),
            (1, "", "%s: cannot read the token: No such file or directory\n" % (missing,)),
        )
