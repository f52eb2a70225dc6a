"""
A DNS server of the tests' own: twisted.names serving a zone held in
memory, on 127.0.0.1 (UDP and TCP on one port), whose records a test
changes while the proxy looks them up.
"""

from __future__ import annotations

from typing import Dict, List

from twisted.internet import reactor
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
