"""
Balancers built in memory for the tests of balancing, health checks and
retries: backends whose pools connect to L{StringTransport}s, a clock, and
a request stand-in that policies can key on.
"""

from __future__ import annotations

import random
from typing import List, Optional

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers

from txrevproxy.config.model import BackendServer, Upstream
from txrevproxy.plugins import balancing_policies
from txrevproxy.upstream.balancer import Backend, Balancer
from txrevproxy.upstream.pool import ConnectionPool

from .endpoints import FakeEndpoint


class SwitchableEndpoint(FakeEndpoint):
    """
    A L{FakeEndpoint} that refuses connections while C{refuse} is set, as a
    backend that is down does, and leaves them unanswered (in C{pending})
    while C{hang} is set.
    """

    def __init__(self) -> None:
        super().__init__()
        self.refuse = False
        self.hang = False
        self.attempts = 0
        self.pending: List[Deferred] = []

    def connect(self, factory):
        self.attempts += 1
        if self.hang:
            d = Deferred()
            self.pending.append(d)
            return d
        if self.refuse:
            return fail(ConnectionRefusedError())
        return super().connect(factory)


def server(number: int, **options) -> BackendServer:
    """
    A backend server at 10.0.0.NUMBER:80.
    """
    host = "10.0.0.%d" % (number,)
    return BackendServer("http://%s" % (host,), "http", host, 80, **options)


def make_balancer(
    servers,
    clock=None,
    seed: int = 0,
    **upstream_options,
) -> Balancer:
    """
    A balancer over C{servers} with the policy C{balance} names (found
    through the plugins, as the runtime finds it); each backend's pool has
    a L{SwitchableEndpoint} as C{pool.endpoint}.
    """
    clock = clock if clock is not None else Clock()
    upstream = Upstream("app", tuple(servers), **upstream_options)
    backends = [
        memory_backend(spec, clock, upstream.slow_start)
        for spec in upstream.servers
        if spec.lookup is None
    ]
    policy = balancing_policies()[upstream.balance]
    rng = random.Random(seed)

    def remake_picker(backends):
        return policy.picker(upstream, backends, clock, rng)

    return Balancer(upstream, backends, remake_picker(backends), clock, remake_picker)


def memory_backend(spec: BackendServer, clock, slow_start: float = 0.0) -> Backend:
    """
    A backend whose pool has a L{SwitchableEndpoint} as C{pool.endpoint}.
    """
    return Backend(
        spec,
        ConnectionPool(clock, SwitchableEndpoint(), spec.url, 30.0, 4),
        clock,
        slow_start,
    )


class Connection:
    def __init__(self, client_ip: bytes) -> None:
        self.client_ip = client_ip


class FakeRequest:
    """
    What a policy or the sticky cookie reads of a request.
    """

    def __init__(
        self,
        path: bytes = b"/",
        client_ip: bytes = b"192.0.2.1",
        headers: Optional[dict] = None,
        method: bytes = b"GET",
    ) -> None:
        self.path = path
        self.method = method
        self.connection = Connection(client_ip)
        self.requestHeaders = Headers(
            {name: [value] for name, value in (headers or {}).items()}
        )


def pick(balancer: Balancer, request=None):
    """
    The backend the balancer leases for one request, released at once.
    """
    leases = []
    balancer.acquire(request or FakeRequest()).addCallback(leases.append)
    [lease] = leases
    lease.release()
    return lease.backend


def hold(balancer: Balancer, request=None):
    """
    A lease the balancer gives at once, kept (not released).
    """
    leases = []
    balancer.acquire(request or FakeRequest()).addCallback(leases.append)
    [lease] = leases
    return lease
