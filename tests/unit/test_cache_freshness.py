"""
L{txrevproxy.cache.freshness}: a stored response's freshness is worked
out once per response and cache settings; and a hit goes to the client
in one write.
"""

from __future__ import annotations

import attr
from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock, StringTransport

from txrevproxy.cache import policy
from txrevproxy.cache.freshness import freshness
from txrevproxy.cache.serve import serve_stored
from txrevproxy.cache.targeted import Targets
from txrevproxy.config.model import CacheSettings, ServerSettings
from txrevproxy.server.site import ProxySite

from ..support.resources import Recorder
from ..support.stored_responses import response

DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"
#: DATE as seconds since the epoch.
AT = 784111777.0


def stored_with(*headers):
    return attr.evolve(response(b"https://h/p"), headers=tuple(headers))


def targets(**settings) -> Targets:
    return Targets.of(CacheSettings(name="c", **settings))


def test_the_fields_give_directives_lifetime_and_age():
    # Stored 10 s after its Date, with an Age of 5 it had on arrival.
    stored = attr.evolve(
        stored_with(
            (b"Cache-Control", b"max-age=60, stale-while-revalidate=30"),
            (b"Date", DATE),
            (b"Age", b"5"),
        ),
        timing=policy.Timing(AT + 9, AT + 10),
    )
    known = freshness(stored, targets(), 0)
    assert known.directives == {b"max-age": b"60", b"stale-while-revalidate": b"30"}
    assert known.lifetime == 60.0
    # The corrected initial age: the larger of the apparent age (10) and
    # Age plus the response delay (5 + 1); then the time since.
    assert known.age(AT + 10) == 10.0
    assert known.age(AT + 25) == 25.0


def test_it_is_worked_out_once_for_the_same_settings():
    stored = stored_with((b"Cache-Control", b"max-age=60"))
    same = targets()
    assert freshness(stored, same, 0) is freshness(stored, same, 0)


def test_other_settings_work_it_out_again():
    # A reload hands the store to a cache that reads a targeted field, or
    # has another heuristic lifetime.
    stored = stored_with(
        (b"Cache-Control", b"max-age=60"),
        (b"CDN-Cache-Control", b"max-age=600"),
        (b"Last-Modified", DATE),
    )
    assert freshness(stored, targets(targets=()), 0).lifetime == 60.0
    assert freshness(stored, targets(targets=("cdn-cache-control",)), 0).lifetime == 600.0
    heuristic = stored_with((b"Last-Modified", DATE))
    assert freshness(heuristic, targets(), 0).lifetime == 0.0
    assert freshness(heuristic, targets(), 30).lifetime == 30.0


def test_a_changed_copy_starts_afresh_and_equality_ignores_it():
    stored = stored_with((b"Cache-Control", b"max-age=60"))
    freshness(stored, targets(), 0)
    changed = attr.evolve(stored, headers=((b"Cache-Control", b"max-age=5"),))
    assert freshness(changed, targets(), 0).lifetime == 5.0
    assert attr.evolve(stored) == stored


class CountingTransport(StringTransport):
    """
    A transport that counts the writes it is given.
    """

    writes = 0

    def write(self, data):
        self.writes += 1
        super().write(data)


def test_a_hit_goes_to_the_client_in_one_write():
    recorder = Recorder()
    site = ProxySite(recorder, reactor=MemoryReactorClock(), settings=ServerSettings())
    channel = site.buildProtocol(None)
    transport = CountingTransport(peerAddress=IPv4Address("TCP", "192.0.2.1", 4321))
    channel.makeConnection(transport)
    channel.dataReceived(b"GET /p HTTP/1.1\r\nHost: h\r\n\r\n")
    [request] = recorder.requests
    stored = stored_with((b"Cache-Control", b"max-age=60"))
    serve_stored(request, stored, 0, 60, (b"hit",), [(b"Host", b"h")])
    assert transport.writes == 1
    head, body = transport.value().split(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nCache-Status: txrevproxy; hit; ttl=60\r\n" in head + b"\r\n"
    assert body == stored.body
