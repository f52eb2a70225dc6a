"""
Tests for the built-in balancing policies (L{txrevproxy.upstream.policies}): each is
an installed plugin, and each spreads requests as it promises, measured
over many picks with a fixed random source and a L{Clock}.
"""

from __future__ import annotations

from collections import Counter

import pytest
from twisted.internet.task import Clock
from twisted.plugin import IPlugin
from zope.interface.verify import verifyObject

from txrevproxy.interfaces import IBackendPicker, IBalancingPolicy
from txrevproxy.plugins import balancing_policies, policy_names
from txrevproxy.upstream.policies import key_function

from ..support.balancing import FakeRequest, hold, make_balancer, pick, server
from ..support.processes import proxy_modules_imported_by

BUILT_IN = [
    "hash",
    "least_connections",
    "random_two_choices",
    "round_robin",
    "weighted_round_robin",
]


def test_importing_the_policy_plugins_imports_only_the_interfaces():
    """
    twistd imports every plugin module to list its commands: the module of
    the built-in policies brings in no reactor and no proxy code.
    """
    assert proxy_modules_imported_by("twisted.plugins.txrevproxy_balancing") == [
        "txrevproxy",
        "txrevproxy.interfaces",
    ]


def test_built_in_policies_are_plugins():
    assert policy_names() == BUILT_IN
    for name, policy in balancing_policies().items():
        assert verifyObject(IPlugin, policy)
        assert verifyObject(IBalancingPolicy, policy)
        assert policy.name == name


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_picker_provides_the_interface(name):
    balancer = make_balancer([server(1), server(2)], balance=name)
    assert verifyObject(IBackendPicker, balancer._picker)


def test_round_robin_takes_each_backend_in_turn():
    balancer = make_balancer([server(1), server(2), server(3)])
    picked = [pick(balancer).server.host for _ in range(6)]
    assert picked == ["10.0.0.1", "10.0.0.2", "10.0.0.3"] * 2


def test_weighted_round_robin_is_smooth_like_nginx():
    """
    Weights 5, 1, 1 interleave the light backends instead of sending five
    requests in a row to the heavy one (nginx's example).
    """
    balancer = make_balancer(
        [server(1, weight=5), server(2), server(3)], balance="weighted_round_robin"
    )
    picked = [pick(balancer).server.host[-1] for _ in range(7)]
    assert "".join(picked) == "1121311"


def test_weighted_round_robin_honours_weights():
    balancer = make_balancer(
        [server(1, weight=3), server(2, weight=2), server(3, weight=1)],
        balance="weighted_round_robin",
    )
    counts = Counter(pick(balancer).server.host for _ in range(6000))
    assert counts == {"10.0.0.1": 3000, "10.0.0.2": 2000, "10.0.0.3": 1000}


def test_least_connections_spreads_in_flight_requests_by_weight():
    balancer = make_balancer(
        [server(1, weight=3), server(2, weight=1)], balance="least_connections"
    )
    for _ in range(400):
        hold(balancer)
    assert [backend.in_flight for backend in balancer.backends] == [300, 100]


def test_least_connections_prefers_the_least_busy_backend():
    balancer = make_balancer([server(1), server(2), server(3)], balance="least_connections")
    first = hold(balancer)
    hold(balancer)
    first.release()
    # Backend 1 is free again, 2 is busy, 3 was never used: ties go in turn.
    picked = {hold(balancer).backend.server.host, hold(balancer).backend.server.host}
    assert picked == {"10.0.0.1", "10.0.0.3"}


def test_random_two_choices_is_even_for_short_requests():
    balancer = make_balancer(
        [server(1), server(2), server(3)], balance="random_two_choices", seed=7
    )
    counts = Counter(pick(balancer).server.host for _ in range(9000))
    for count in counts.values():
        assert abs(count - 3000) < 300


def test_random_two_choices_spreads_in_flight_requests_by_weight():
    balancer = make_balancer(
        [server(1), server(2), server(3, weight=2)], balance="random_two_choices", seed=3
    )
    for _ in range(4000):
        hold(balancer)
    in_flight = [backend.in_flight for backend in balancer.backends]
    for count, expected in zip(in_flight, [1000, 1000, 2000]):
        assert abs(count - expected) < expected * 0.05


def test_random_two_choices_uses_the_random_source_it_is_given():
    def picks(seed):
        balancer = make_balancer(
            [server(n) for n in range(1, 6)], balance="random_two_choices", seed=seed
        )
        return [pick(balancer).server.host for _ in range(50)]

    assert picks(1) == picks(1)
    assert picks(1) != picks(2)


def keyed(count: int):
    return [FakeRequest(headers={b"x-user": b"user-%d" % (n,)}) for n in range(count)]


def test_hash_sends_a_key_to_the_same_backend():
    balancer = make_balancer(
        [server(n) for n in range(1, 5)], balance="hash", hash_key="header:x-user"
    )
    requests = keyed(100)
    first = [pick(balancer, request) for request in requests]
    assert [pick(balancer, request) for request in requests] == first


def test_hash_spreads_keys_by_weight():
    balancer = make_balancer(
        [server(1), server(2), server(3, weight=2)], balance="hash", hash_key="header:x-user"
    )
    counts = Counter(pick(balancer, request).server.host for request in keyed(20000))
    for host, expected in [("10.0.0.1", 5000), ("10.0.0.2", 5000), ("10.0.0.3", 10000)]:
        assert abs(counts[host] - expected) < expected * 0.15, counts


def test_hash_moves_about_one_in_n_keys_when_a_backend_is_added():
    requests = keyed(20000)
    four = make_balancer([server(n) for n in range(1, 5)], balance="hash", hash_key="header:x-user")
    five = make_balancer([server(n) for n in range(1, 6)], balance="hash", hash_key="header:x-user")
    before = [pick(four, request).server.host for request in requests]
    after = [pick(five, request).server.host for request in requests]
    moved = [(old, new) for old, new in zip(before, after) if old != new]
    # Only keys that now belong to the new backend move.
    assert {new for _, new in moved} == {"10.0.0.5"}
    assert abs(len(moved) / len(requests) - 1 / 5) < 0.04


def test_hash_goes_round_the_ring_when_a_backend_cannot_take_the_key():
    balancer = make_balancer(
        [server(n) for n in range(1, 5)], balance="hash", hash_key="header:x-user"
    )
    requests = keyed(2000)
    before = [pick(balancer, request) for request in requests]
    balancer.drain(0)
    after = [pick(balancer, request) for request in requests]
    for old, new in zip(before, after):
        if old is balancer.backends[0]:
            assert new is not old
        else:
            assert new is old


def test_hash_without_a_key_goes_to_each_backend_in_turn():
    balancer = make_balancer([server(1), server(2)], balance="hash", hash_key="cookie:session")
    picked = [pick(balancer).server.host for _ in range(4)]
    assert picked == ["10.0.0.1", "10.0.0.2"] * 2


@pytest.mark.parametrize(
    "hash_key, request_, key",
    [
        ("client_ip", FakeRequest(client_ip=b"198.51.100.7"), b"198.51.100.7"),
        ("path", FakeRequest(path=b"/a/b"), b"/a/b"),
        ("header:x-user", FakeRequest(headers={b"X-User": b"u1"}), b"u1"),
        ("header:x-user", FakeRequest(), None),
        ("cookie:sid", FakeRequest(headers={b"Cookie": b"a=1; sid=s2"}), b"s2"),
        ("cookie:sid", FakeRequest(headers={b"Cookie": b"a=1"}), None),
    ],
)
def test_hash_keys(hash_key, request_, key):
    assert key_function(hash_key)(request_) == key


def test_slow_start_ramps_a_returning_backends_weight():
    clock = Clock()
    balancer = make_balancer(
        [server(1), server(2)], clock=clock, balance="weighted_round_robin", slow_start=30.0
    )
    balancer.drain(1)
    balancer.enable(1)
    returning = balancer.backends[1]
    assert returning.current_weight() == pytest.approx(0.1)
    clock.advance(15)
    assert returning.current_weight() == pytest.approx(0.5)
    counts = Counter(pick(balancer).server.host for _ in range(300))
    assert counts["10.0.0.2"] == 100
    clock.advance(15)
    assert returning.current_weight() == 1
    counts = Counter(pick(balancer).server.host for _ in range(300))
    assert counts["10.0.0.2"] == 150
