"""
CPU time of TLS itself per request, in memory: a small request and its
response between a listener's TLS protocol and a client one of the
proxy's (L{SizedReadsTLSFactory}), each on a L{StringTransport}, the bytes
moved by hand.  Both sides' TLS work is counted, with no socket, no
reactor and no other process: it moves far less with the load of a
shared machine than C{cpu_probe.py} does, so it tells a change to the TLS
layer (C{txrevproxy/net/sized_reads.py}, C{openssl_io.py}) apart from
the noise where the proxy under load cannot.

Usage, with the checkout to measure on the path (A/B: run each
version's in turn, A B A B, and compare the best batches)::

    PYTHONPATH=CHECKOUT taskset -c 0 PYTHON benchmarks/tls_exchange.py \\
        [WARMUP [BATCH [BATCHES]]]

It makes WARMUP exchanges (100,000: PyPy's JIT needs them), then BATCHES
batches (8) of BATCH (10,000), and prints the CPU microseconds per
exchange of the best batch and of each.  On CPython, 3000 2000 5 is
enough.
"""

from __future__ import annotations

import resource
import sys

from twisted.internet.protocol import Factory, Protocol
from twisted.internet.ssl import CertificateOptions
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tests.support.memory_tls import Creator, pump
from txrevproxy.net.server_tls import ServerTLSFactory
from txrevproxy.net.sized_reads import SizedReadsTLSFactory

REQUEST = b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: wrk\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nServer: x\r\nContent-Length: 100\r\n\r\n" + b"x" * 100


class Answer(Protocol):
    """
    The server's side: a response to each request.
    """

    def dataReceived(self, data: bytes) -> None:
        self.transport.write(RESPONSE)


class Count(Protocol):
    """
    The client's side: counts what it receives.
    """

    received = 0

    def dataReceived(self, data: bytes) -> None:
        Count.received += len(data)


def cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def main(warmup: int = 100_000, batch: int = 10_000, batches: int = 8) -> None:
    clock = Clock()
    server = ServerTLSFactory(
        Creator(), Factory.forProtocol(Answer), clock
    ).buildProtocol(None)
    server_transport = StringTransport()
    server.makeConnection(server_transport)
    client = SizedReadsTLSFactory(
        CertificateOptions(), True, Factory.forProtocol(Count), clock
    ).buildProtocol(None)
    client_transport = StringTransport()
    client.makeConnection(client_transport)
    pairs = ((client_transport, server), (server_transport, client))

    def exchange(count: int) -> None:
        for _ in range(count):
            client.write(REQUEST)
            pump(clock, *pairs)

    pump(clock, *pairs)
    exchange(warmup)
    costs = []
    for _ in range(batches):
        start = cpu()
        exchange(batch)
        costs.append((cpu() - start) / batch * 1e6)
    assert Count.received == (warmup + batch * batches) * len(RESPONSE)
    print("best %.2f us, all %s" % (min(costs), " ".join("%.1f" % c for c in costs)))


if __name__ == "__main__":
    main(*map(int, sys.argv[1:4]))
