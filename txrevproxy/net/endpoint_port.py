"""
The TCP port a parsed server endpoint will listen on, before it listens.

Twisted's TCP and SSL server endpoints accept any integer as a port, and
the mistake shows only when they listen; checking a configuration wants to
find it earlier.  The endpoints keep the port in a private attribute and
have no public way to read it.
"""

from __future__ import annotations

from typing import Optional

from twisted.internet.interfaces import IStreamServerEndpoint

TWISTED_PRIVATE = (
    "twisted.internet.endpoints.TCP4ServerEndpoint._port",
    "twisted.internet.endpoints.TCP6ServerEndpoint._port",
    "twisted.internet.endpoints.SSL4ServerEndpoint._port",
)


def endpoint_port(endpoint: IStreamServerEndpoint) -> Optional[int]:
    """
    The port C{endpoint} will listen on, as it was given (not checked to
    be in range); L{None} for an endpoint that does not listen on a port
    of its own (a UNIX socket, a socket from systemd...).
    """
    port = getattr(endpoint, "_port", None)
    return port if isinstance(port, int) else None
