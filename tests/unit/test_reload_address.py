"""
Where C{txrevproxy reload} reaches the admin API: a URL, or the server
endpoint description of C{[admin] endpoint} turned into a client's address.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from txrevproxy.tools.reload import AdminAddress, ReloadError, admin_address


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
