"""
A DNS server of the tests' own: twisted.names serving a zone held in
memory, on 127.0.0.1 (UDP and TCP on one port), whose records a test
changes while the proxy looks them up.
"""

from __future__ import annotations

from typing import Dict, List, Tuple

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.names import authority, dns, server

#: The TTL of every record served: the shortest a record may say.
TTL = 1


class Zone(authority.FileAuthority):
    """
    An authority for C{origin} whose records are set in memory.
    """

    def __init__(self, origin: str) -> None:
        self._origin = origin.encode("ascii")
        super().__init__(origin)

    def loadFile(self, filename) -> None:
        self.soa = (
            self._origin,
            dns.Record_SOA(
                mname=b"ns." + self._origin, rname=b"admin." + self._origin, ttl=TTL
            ),
        )
        self.records: Dict[bytes, List] = {}
        #: How many times each name's A records were asked for.
        self.asked: Dict[bytes, int] = {}
        self._waiting: List[Tuple[bytes, int, Deferred]] = []

    def lookupAddress(self, name, timeout=None):
        self.asked[name.lower()] = self.asked.get(name.lower(), 0) + 1
        for wanted, count, d in list(self._waiting):
            if wanted == name.lower() and self.asked[wanted] >= count:
                self._waiting.remove((wanted, count, d))
                d.callback(None)
        return super().lookupAddress(name, timeout)

    def asked_again(self, name: str, times: int = 2) -> Deferred:
        """
        A Deferred that fires when C{name}'s A records have been asked
        for C{times} more times.  The second query of a client that asks
        again after each answer comes only after it took in the first
        answer, so this waits for a change to be seen without sleeping.
        """
        key = name.lower().encode("ascii")
        d: Deferred = Deferred()
        self._waiting.append((key, self.asked.get(key, 0) + times, d))
        return d

    def set(self, name: str, records: List) -> None:
        """
        Serve C{records} for C{name} from now on (none: the name is gone).
        """
        key = name.lower().encode("ascii")
        if records:
            self.records[key] = list(records)
        else:
            self.records.pop(key, None)


def a(*addresses: str) -> List:
    return [dns.Record_A(address, ttl=TTL) for address in addresses]


def srv(*targets) -> List:
    """
    SRV records of C{(priority, weight, port, target)}.
    """
    return [
        dns.Record_SRV(priority, weight, port, target, ttl=TTL)
        for priority, weight, port, target in targets
    ]


def serve_zone(zone: Zone, testcase) -> int:
    """
    Serve C{zone} on 127.0.0.1 until the end of the test.

    @return: the port number.
    """
    factory = server.DNSServerFactory(authorities=[zone])
    # TCP first: a free UDP port of the same number is the likelier.
    tcp = reactor.listenTCP(0, factory, interface="127.0.0.1")
    testcase.addCleanup(tcp.stopListening)
    number = tcp.getHost().port
    udp = reactor.listenUDP(number, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
    testcase.addCleanup(udp.stopListening)
    return number
