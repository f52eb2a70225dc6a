"""
Tests for balancing policies over a list of backends that changes while
they serve (backends found in the DNS join and leave): each built-in
picker follows the change keeping its state (L{IBackendsChanged}), the
hash ring moves only the keys it must, and a plugin's picker that does not
follow changes is made again.
"""

from __future__ import annotations

import pytest
from twisted.internet.task import Clock
from zope.interface import implementer
from zope.interface.verify import verifyObject

from txrevproxy.config.model import Upstream
from txrevproxy.interfaces import IBackendPicker, IBackendsChanged
from txrevproxy.upstream.balancer import Balancer

from ..support.balancing import FakeRequest, make_balancer, memory_backend, pick, server
from .test_policies import BUILT_IN


@pytest.mark.parametrize("policy", BUILT_IN)
def test_each_built_in_picker_follows_changes(policy):
    balancer = make_balancer([server(n) for n in (1, 2, 3)], balance=policy)
    verifyObject(IBackendsChanged, balancer._picker)
    picker = balancer._picker
    gone = balancer.backends[0]
    new = memory_backend(server(4), balancer.clock)
    balancer.change([new], [gone])
    assert balancer._picker is picker
    picked = {
        pick(balancer, FakeRequest(client_ip=b"192.0.2.%d" % (n,))) for n in range(200)
    }
    assert picked == set(balancer.backends)
    assert gone not in picked


def test_round_robin_goes_on_where_it_was():
    balancer = make_balancer([server(n) for n in (1, 2, 3)])
    assert [pick(balancer).server.host for _ in range(2)] == ["10.0.0.1", "10.0.0.2"]
    balancer.change([memory_backend(server(4), balancer.clock)], [])
    assert [pick(balancer).server.host for _ in range(3)] == [
        "10.0.0.3",
        "10.0.0.4",
        "10.0.0.1",
    ]


def test_weighted_round_robin_forgets_the_scores_of_backends_that_left():
    balancer = make_balancer(
        [server(1, weight=5), server(2), server(3)], balance="weighted_round_robin"
    )
    for _ in range(4):
        pick(balancer)
    gone = balancer.backends[0]
    balancer.change([], [gone])
    assert gone not in balancer._picker._scores


def owners(balancer, keys):
    return {
        key: pick(balancer, FakeRequest(headers={b"x-user": key})) for key in keys
    }


def test_the_hash_ring_moves_only_the_keys_it_must():
    balancer = make_balancer(
        [server(n) for n in (1, 2, 3, 4)], balance="hash", hash_key="header:X-User"
    )
    keys = [b"user-%d" % (n,) for n in range(2000)]
    before = owners(balancer, keys)
    new = memory_backend(server(5), balancer.clock)
    balancer.change([new], [])
    after = owners(balancer, keys)
    moved = [key for key in keys if after[key] is not before[key]]
    assert moved and all(after[key] is new for key in moved)
    # About a fifth of the keys move to the fifth backend.
    assert 250 < len(moved) < 550

    gone = balancer.backends[1]
    balancer.change([], [gone])
    last = owners(balancer, keys)
    assert [key for key in keys if last[key] is not after[key]] == [
        key for key in keys if after[key] is gone
    ]


@implementer(IBackendPicker)
class FirstOfAll:
    """
    A plugin's picker that knows the backends it was made with, and does
    not follow changes.
    """

    def __init__(self, backends) -> None:
        self.backends = list(backends)

    def pick(self, request, candidates):
        return next(b for b in self.backends if b in candidates)


def test_a_picker_that_does_not_follow_changes_is_made_again():
    clock = Clock()
    backends = [memory_backend(server(1), clock)]
    made = []

    def remake(backends):
        made.append(FirstOfAll(backends))
        return made[-1]

    upstream = Upstream("app", (server(1),))
    balancer = Balancer(upstream, backends, remake(backends), clock, remake)
    new = memory_backend(server(2), clock)
    balancer.change([new], backends)
    assert len(made) == 2
    assert made[-1].backends == [new]
    assert pick(balancer) is new
