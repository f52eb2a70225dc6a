"""
Choosing a backend for each request.

L{Balancer.acquire} returns a L{Deferred} that fires with a L{Lease} on one
backend; the proxy releases the lease when the exchange is over.  The
Deferred shape lets a balancer make a request wait (for a free slot, a
health check) without the proxy knowing; this one never waits.
"""

from __future__ import annotations

from typing import Sequence

from twisted.internet.defer import Deferred, succeed

from .config.model import BackendServer
from .proxy.pool import ConnectionPool


class Backend:
    """
    The runtime state of one backend server.

    @ivar server: its configuration.
    @ivar pool: its keep-alive connections.
    @ivar in_flight: exchanges it is carrying now.
    """

    __slots__ = ("server", "pool", "in_flight")

    def __init__(self, server: BackendServer, pool: ConnectionPool) -> None:
        self.server = server
        self.pool = pool
        self.in_flight = 0


class Lease:
    """
    The right to send one request to L{backend}; release it exactly once.
    """

    __slots__ = ("backend",)

    def __init__(self, backend: Backend) -> None:
        self.backend = backend
        backend.in_flight += 1

    def release(self) -> None:
        """
        The exchange is over (whatever its outcome).
        """
        self.backend.in_flight -= 1


class Balancer:
    """
    Round-robin over the backends of one upstream.
    """

    def __init__(self, backends: Sequence[Backend]) -> None:
        self.backends = tuple(backends)
        self._next = 0

    def acquire(self, request) -> Deferred:
        """
        A lease on the next backend in turn.

        @param request: the request to be sent (unused by round robin;
            hashing policies key on it).
        @return: a L{Deferred} firing with a L{Lease}.
        """
        backends = self.backends
        index = self._next
        self._next = (index + 1) % len(backends)
        return succeed(Lease(backends[index]))

    def close(self) -> None:
        """
        Close every backend's idle connections; busy ones close when done.
        """
        for backend in self.backends:
            backend.pool.close()
