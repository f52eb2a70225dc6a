"""
Tests for backends found in the DNS (L{txrevproxy.upstream.discovery}):
answers made into servers, the comparison of address sets, and a
L{Discovery} driven by a fake resolver and a L{Clock}: when it asks again,
what a backend that stays keeps, how one that leaves is drained, and
what a failure or an empty answer does.
"""

from __future__ import annotations

from typing import Dict, List

from twisted.internet.defer import fail, succeed
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.names import dns
from twisted.names.error import DNSNameError, DNSServerError

from txrevproxy.config.model import BackendServer
from txrevproxy.upstream.balancer import NoBackendAvailable
from txrevproxy.upstream.discovery import (
    Discovery,
    a_servers,
    compare,
    make_resolver,
    srv_servers,
    srv_weights,
    system_name_servers,
)

from ..support.balancing import FakeRequest, hold, make_balancer, memory_backend, pick

ENTRY = BackendServer("http://app.test:8080", "http", "app.test", 8080, lookup="dns")
SRV_ENTRY = BackendServer(
    "https://_https._tcp.app.test", "https", "_https._tcp.app.test", 0, lookup="srv"
)


def a_record(name: str, address: str, ttl: int = 30) -> dns.RRHeader:
    return dns.RRHeader(name, dns.A, ttl=ttl, payload=dns.Record_A(address, ttl))


def srv_record(priority, weight, port, target, ttl: int = 30) -> dns.RRHeader:
    return dns.RRHeader(
        "_https._tcp.app.test",
        dns.SRV,
        ttl=ttl,
        payload=dns.Record_SRV(priority, weight, port, target, ttl),
    )


class FakeResolver:
    """
    Answers A queries from C{records} (by name; a name missing is
    NXDOMAIN), or fails them all while C{broken}.
    """

    def __init__(self) -> None:
        self.records: Dict[str, List[dns.RRHeader]] = {}
        self.broken = False
        self.asked = 0

    def lookupAddress(self, name, timeout=None):
        self.asked += 1
        if self.broken:
            return fail(DNSServerError("server failure"))
        if name not in self.records:
            return fail(DNSNameError(name))
        return succeed((self.records[name], [], []))

    def lookupIPV6Address(self, name, timeout=None):
        return succeed(([], [], []))

    def set(self, *addresses: str, ttl: int = 30) -> None:
        self.records["app.test"] = [a_record("app.test", a, ttl) for a in addresses]


def discovery(resolver, clock=None, **upstream_options):
    clock = clock if clock is not None else Clock()
    balancer = make_balancer([ENTRY], clock=clock, **upstream_options)
    found = Discovery(
        balancer,
        ENTRY,
        resolver,
        lambda server: memory_backend(server, clock, balancer.upstream.slow_start),
        clock,
    )
    return found, balancer, clock


def hosts(balancer) -> List[str]:
    return [backend.server.host for backend in balancer.backends]


def test_a_records_become_servers_at_the_entry_s_port_named_by_the_name():
    answer = a_servers(
        ENTRY, "app.test", [a_record("app.test", "10.0.0.1", 20), a_record("app.test", "10.0.0.2", 7)]
    )
    assert [server.url for server in answer.servers] == [
        "http://10.0.0.1:8080",
        "http://10.0.0.2:8080",
    ]
    assert answer.ttl == 7
    assert answer.servers[0].authority == "app.test:8080"
    assert answer.servers[0].lookup is None


def test_srv_lowest_priority_is_primary_and_the_others_are_backups():
    records = [
        srv_record(10, 3, 8443, "a.app.test"),
        srv_record(10, 1, 9443, "b.app.test"),
        srv_record(20, 0, 8443, "c.app.test", ttl=5),
    ]
    addresses = {
        "a.app.test": [("10.0.0.1", 60.0)],
        "b.app.test": [("10.0.0.2", 60.0)],
        "c.app.test": [("10.0.0.3", 60.0)],
    }
    answer = srv_servers(SRV_ENTRY, records, addresses)
    assert [(s.url, s.weight, s.backup, s.resolved_from) for s in answer.servers] == [
        ("https://10.0.0.1:8443", 3, False, "a.app.test"),
        ("https://10.0.0.2:9443", 1, False, "b.app.test"),
        ("https://10.0.0.3:8443", 1, True, "c.app.test"),
    ]
    assert answer.ttl == 5


def test_srv_weights_keep_their_proportions_within_256():
    assert srv_weights([0, 1, 255]) == [1, 1, 255]
    assert srv_weights([1000, 500, 0]) == [256, 128, 1]


def test_an_srv_target_s_tls_server_name_is_the_target():
    from txrevproxy.config.model import Upstream

    [server] = srv_servers(
        SRV_ENTRY, [srv_record(0, 1, 443, "a.app.test")], {"a.app.test": [("10.0.0.1", 9.0)]}
    ).servers
    assert Upstream("app", (SRV_ENTRY,)).backend_tls(server).server_name == "a.app.test"


def test_compare_keeps_adds_and_removes_by_url():
    clock = Clock()
    held = [
        memory_backend(server, clock)
        for server in a_servers(
            ENTRY, "app.test", [a_record("app.test", "10.0.0.1"), a_record("app.test", "10.0.0.2")]
        ).servers
    ]
    wanted = a_servers(
        ENTRY, "app.test", [a_record("app.test", "10.0.0.2"), a_record("app.test", "10.0.0.3")]
    ).servers
    comparison = compare(held, wanted)
    assert comparison.kept == ((held[1], wanted[0]),)
    assert comparison.added == (wanted[1],)
    assert comparison.removed == (held[0],)


def test_looks_up_at_start_and_again_when_the_ttl_runs_out_within_floor_and_ceiling():
    resolver = FakeResolver()
    resolver.set("10.0.0.1", ttl=1)
    found, balancer, clock = discovery(resolver, dns_min_ttl=5.0, dns_max_ttl=60.0)
    found.startService()
    assert hosts(balancer) == ["10.0.0.1"]
    assert resolver.asked == 1
    clock.advance(4.9)
    assert resolver.asked == 1
    clock.advance(0.1)
    assert resolver.asked == 2
    resolver.set("10.0.0.1", ttl=3600)
    clock.advance(5)
    clock.advance(59.9)
    assert resolver.asked == 3
    clock.advance(0.1)
    assert resolver.asked == 4
    found.stopService()
    clock.advance(3600)
    assert resolver.asked == 4


def test_a_change_keeps_backends_that_stay_adds_new_ones_and_drains_those_that_left():
    resolver = FakeResolver()
    resolver.set("10.0.0.1", "10.0.0.2")
    found, balancer, clock = discovery(resolver, dns_min_ttl=5.0)
    found.startService()
    first, second = balancer.backends
    balancer.drain(second.server.url)
    busy = [hold(balancer)]
    assert busy[0].backend is first

    resolver.set("10.0.0.2", "10.0.0.3")
    clock.advance(30)
    assert hosts(balancer) == ["10.0.0.2", "10.0.0.3"]
    assert balancer.backends[0] is second
    assert second.draining
    # The backend that left takes no new request and finishes its own.
    assert balancer.leaving == [first]
    assert {pick(balancer).server.host for _ in range(4)} == {"10.0.0.3"}
    assert not first.pool._closed
    busy[0].release()
    assert balancer.leaving == []
    assert first.pool._closed


def test_a_new_backend_starts_slowly_and_a_failed_lookup_keeps_the_last_servers():
    resolver = FakeResolver()
    resolver.set("10.0.0.1")
    found, balancer, clock = discovery(resolver, dns_min_ttl=5.0, dns_max_ttl=40.0, slow_start=10.0)
    found.startService()
    assert balancer.backends[0].ramp_until == 0.0
    resolver.set("10.0.0.1", "10.0.0.2")
    clock.advance(30)
    assert balancer.backends[1].ramp_until == 40.0

    resolver.broken = True
    delays = []
    for _ in range(5):
        asked = resolver.asked
        waited = 0.0
        while resolver.asked == asked:
            clock.advance(1)
            waited += 1
        delays.append(waited)
    assert delays == [30, 5, 10, 20, 40]
    assert hosts(balancer) == ["10.0.0.1", "10.0.0.2"]
    assert found.last_error == "server failure"


def test_a_name_gone_after_an_answer_keeps_its_servers_for_the_ceiling():
    resolver = FakeResolver()
    resolver.set("10.0.0.1")
    found, balancer, clock = discovery(resolver, dns_min_ttl=5.0, dns_max_ttl=60.0)
    found.startService()
    del resolver.records["app.test"]
    clock.advance(30)
    for _ in range(11):
        clock.advance(5)
        assert hosts(balancer) == ["10.0.0.1"]
    clock.advance(5)
    assert hosts(balancer) == []


def test_requests_wait_for_the_first_lookup_and_get_503_when_it_finds_nothing():
    resolver = FakeResolver()
    found, balancer, clock = discovery(resolver, dns_min_ttl=5.0)
    waiting = balancer.acquire(FakeRequest())
    assert balancer.queued == 1
    found.startService()
    failures = []
    waiting.addErrback(failures.append)
    [failure] = failures
    assert failure.check(NoBackendAvailable)
    assert balancer.awaiting == 0

    resolver.set("10.0.0.1")
    clock.advance(5)
    assert pick(balancer).server.host == "10.0.0.1"


def test_a_queued_request_is_served_when_the_first_lookup_answers():
    resolver = FakeResolver()
    resolver.set("10.0.0.1")
    found, balancer, clock = discovery(resolver)
    leases = []
    balancer.acquire(FakeRequest()).addCallback(leases.append)
    found.startService()
    [lease] = leases
    assert lease.backend.server.host == "10.0.0.1"


def test_known_servers_of_a_replaced_runtime_serve_before_the_first_lookup():
    resolver = FakeResolver()
    resolver.broken = True
    clock = Clock()
    balancer = make_balancer([ENTRY], clock=clock)
    known = a_servers(ENTRY, "app.test", [a_record("app.test", "10.0.0.9")]).servers
    found = Discovery(
        balancer, ENTRY, resolver, lambda s: memory_backend(s, clock), clock, known
    )
    assert hosts(balancer) == ["10.0.0.9"]
    assert balancer.awaiting == 0
    found.startService()
    assert hosts(balancer) == ["10.0.0.9"]


def test_state_says_what_was_found_and_when_it_asks_again():
    resolver = FakeResolver()
    resolver.set("10.0.0.1", ttl=20)
    found, balancer, clock = discovery(resolver, dns_min_ttl=5.0)
    found.startService()
    clock.advance(4)
    assert balancer.state()["lookups"] == [
        {
            "dns": "app.test",
            "servers": ["http://10.0.0.1:8080"],
            "error": None,
            "next_lookup_seconds": 16.0,
        }
    ]
    resolver.broken = True
    clock.advance(16)
    [state] = balancer.state()["lookups"]
    assert (state["error"], state["servers"]) == ("server failure", ["http://10.0.0.1:8080"])


def test_the_system_name_servers_are_read_once_from_resolv_conf(tmp_path):
    conf = tmp_path / "resolv.conf"
    conf.write_text("# local\nsearch example.test\nnameserver 10.0.0.2\nnameserver ::1\n")
    assert system_name_servers(str(conf)) == [("10.0.0.2", 53), ("::1", 53)]
    assert system_name_servers(str(tmp_path / "missing")) == [("127.0.0.1", 53)]
    reactor = MemoryReactorClock()
    make_resolver((), reactor)
    assert reactor.getDelayedCalls() == []
