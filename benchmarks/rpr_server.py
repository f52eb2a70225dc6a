"""
Twisted's own C{twisted.web.proxy.ReverseProxyResource}, as a baseline.

This is what a Twisted user gets without txrevproxy: a new backend connection
per request and no backpressure toward the client.  Usage::

    python rpr_server.py BACKEND_PORT PORT TLS_PORT CERT KEY

It serves plain HTTP on C{PORT} and HTTPS (through an C{ssl:} endpoint) on
C{TLS_PORT}, both on 127.0.0.1, until killed.
"""

from __future__ import annotations

import sys

from twisted.internet import endpoints, reactor
from twisted.web import proxy, server

# The same listen queue as nginx's default on Linux, so that a burst of
# connections is not met by Twisted's default of 50.
BACKLOG = 511


class QuietSite(server.Site):
    """
    A Site without an access log: the other proxies measured run without one.
    """

    def log(self, request: server.Request) -> None:
        pass


def main(argv: list[str]) -> None:
    backend_port, port, tls_port, cert, key = argv
    site = QuietSite(proxy.ReverseProxyResource("127.0.0.1", int(backend_port), b""))
    descriptions = [
        "tcp:{}:interface=127.0.0.1:backlog={}".format(port, BACKLOG),
        "ssl:{}:interface=127.0.0.1:backlog={}:privateKey={}:certKey={}".format(
            tls_port, BACKLOG, key, cert
        ),
    ]
    for description in descriptions:
        endpoints.serverFromString(reactor, description).listen(site)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1:])
