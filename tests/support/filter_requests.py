"""
A request, site and connection as small as a filter needs them.
"""

from __future__ import annotations

import ipaddress

from twisted.web.http_headers import Headers


class FakeSite:
    scheme = b"https"

    def __init__(self, trusted=()):
        self._trusted = [ipaddress.ip_network(n) for n in trusted]

    def is_trusted(self, host):
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            return False
        return any(address in net for net in self._trusted)


class FakeConnection:
    def __init__(self, ip: bytes, trusted: bool):
        self.client_ip = ip
        self.trusted = trusted


class FakeRequest:
    def __init__(
        self, ip=b"192.0.2.1", headers=(), uri=b"/", method=b"GET", trusted=()
    ):
        self.site = FakeSite(trusted)
        self.connection = FakeConnection(ip, self.site.is_trusted(ip.decode()))
        self.requestHeaders = Headers()
        for name, value in headers:
            self.requestHeaders.addRawHeader(name, value)
        self.uri = uri
        self.logged_uri = None
        self.path = uri.split(b"?")[0]
        self.method = method
        self.request_id = b"0123456789abcdef"
        self.route_index = None
