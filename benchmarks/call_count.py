"""
Python function calls per request of txrevproxy, counted exactly: the
proxy driven in memory, without sockets, for A/B comparisons of a change
to the hot path that are too small for C{cpu_probe.py} to see on a busy
machine.

Usage::

    PYTHON benchmarks/call_count.py CONFIG.toml [REQUESTS]

It builds the listeners of CONFIG as C{twistd txrevproxy} would (on a
memory reactor), with each backend's connections in memory, and sends
REQUESTS (10,000) keep-alive C{GET /small} to the first listener, each
answered with the head nginx sends for the harness's small body; a new
client connection every 500 requests, under the default
C{max_requests_per_connection}.  It prints one line of JSON: the Python
calls per request (cProfile), with the built-in ones too, and the best
of five timings of the same loop without the profiler, in CPU
microseconds per request (the Python side only: no system calls).  Run
it from another checkout with C{PYTHONPATH=THAT_CHECKOUT} for the other
version.
"""

from __future__ import annotations

import cProfile
import json
import os
import pstats
import sys
import time

# The tests' in-memory endpoint; after PYTHONPATH, so that the version
# of txrevproxy compared is the one PYTHONPATH names.
sys.path.append(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

#: A client connection is replaced after this many requests.
PER_CONNECTION = 500

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"

#: What the harness's backend nginx answers to C{/small}.
ANSWER = (
    b"HTTP/1.1 200 OK\r\nServer: nginx/1.22.1\r\n"
    b"Date: Mon, 07 Dec 2026 12:00:00 GMT\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 14\r\nConnection: keep-alive\r\n\r\nHello, world!\n"
)


def main(config_path: str, requests: int = 10000) -> None:
    from twisted.internet.address import IPv4Address
    from twisted.internet.testing import MemoryReactorClock, StringTransport

    from tests.support.endpoints import FakeEndpoint
    from txrevproxy.app.runtime import Runtime
    from txrevproxy.config import load_config

    config = load_config(config_path)
    runtime = Runtime(config, MemoryReactorClock())
    backends = FakeEndpoint()
    for balancer in runtime.balancers.values():
        for backend in balancer.backends:
            backend.pool.endpoint = backends
    site = runtime.sites[next(iter(config.listeners))]
    peer = IPv4Address("TCP", "127.0.0.1", 40000)

    def connection(count: int) -> None:
        channel = site.buildProtocol(peer)
        client = StringTransport(peerAddress=peer)
        channel.makeConnection(client)
        for _ in range(count):
            channel.dataReceived(REQUEST)
            backend = backends.connections[-1]
            backend.transport.clear()
            backend.dataReceived(ANSWER)
            client.clear()

    def serve(count: int) -> None:
        for _ in range(count // PER_CONNECTION):
            connection(PER_CONNECTION)

    serve(2000)
    if len(backends.connections) != 1:
        sys.exit("the backend connection was not reused: check CONFIG")
    profile = cProfile.Profile()
    profile.enable()
    serve(requests)
    profile.disable()
    stats = pstats.Stats(profile).stats
    python = sum(row[1] for (path, _, _), row in stats.items() if path != "~")
    every = sum(row[1] for row in stats.values())
    timings = []
    for _ in range(5):
        start = time.process_time()
        serve(requests)
        timings.append(time.process_time() - start)
    print(json.dumps({
        "python_calls_per_request": round(python / requests, 1),
        "calls_per_request": round(every / requests, 1),
        "python_us_per_request": round(min(timings) / requests * 1e6, 1),
    }))


if __name__ == "__main__":
    main(sys.argv[1], *(int(a) for a in sys.argv[2:3]))
