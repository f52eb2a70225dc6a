"""
L{HalfClosedClient}: what happens to the log lines of the requests of a
client that sent a FIN, as the probe of its connection answers, with the
clock moved by hand; and L{delivery_probe}'s fallback.
"""

from __future__ import annotations

from typing import List, Optional

import attr
from twisted.internet.error import ConnectionDone, ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

from txrevproxy.net.delivery import DELIVERED, GONE, delivery_probe
from txrevproxy.server.halfclose import (
    INTERVAL,
    LIMIT,
    MAX_INTERVAL,
    HalfClosedClient,
)


@attr.s(auto_attribs=True)
class Site:
    logged: List = attr.Factory(list)

    def log(self, request) -> None:
        self.logged.append((request.uri, request.code, request.ended))


@attr.s(auto_attribs=True)
class Request:
    uri: bytes
    site: Site
    code: int = 200
    ended: Optional[float] = None


class Transport(StringTransport):
    aborted = False

    def abortConnection(self) -> None:
        self.aborted = True


class Channel:
    def __init__(self) -> None:
        self.transport = Transport()
        self.watch = None


class Watched:
    """
    A channel watched by a L{HalfClosedClient} whose probe says what
    C{verdict} holds.
    """

    def __init__(self) -> None:
        self.clock = Clock()
        self.site = Site()
        self.channel = Channel()
        self.verdict: Optional[bool] = None
        self.watch = HalfClosedClient(self.channel, lambda: self.verdict, self.clock)
        self.channel.watch = self.watch

    def answer(self, uri: bytes) -> Request:
        request = Request(uri, self.site)
        self.watch.hold(request)
        return request


class HalfClosedClientTests(TestCase):
    def test_an_acknowledged_answer_is_logged_with_its_status_and_closed(self):
        watched = Watched()
        watched.clock.advance(1.0)
        watched.answer(b"/a")
        watched.watch.answered()
        watched.clock.advance(INTERVAL)
        self.assertEqual(watched.site.logged, [])
        watched.verdict = DELIVERED
        watched.clock.advance(INTERVAL)
        # The duration ends when the answer was written.
        self.assertEqual(watched.site.logged, [(b"/a", 200, 1.0)])
        self.assertTrue(watched.channel.transport.disconnecting)
        self.assertIsNone(watched.channel.watch)
        self.assertEqual(watched.clock.getDelayedCalls(), [])

    def test_an_empty_queue_before_the_last_answer_proves_nothing(self):
        watched = Watched()
        watched.answer(b"/a")
        watched.verdict = DELIVERED
        watched.clock.advance(INTERVAL * 3)
        self.assertEqual(watched.site.logged, [])
        self.assertFalse(watched.channel.transport.disconnecting)

    def test_a_reset_aborts_and_the_loss_logs_499(self):
        watched = Watched()
        watched.answer(b"/a")
        watched.answer(b"/b")
        watched.watch.answered()
        watched.verdict = GONE
        watched.clock.advance(INTERVAL)
        self.assertTrue(watched.channel.transport.aborted)
        self.assertEqual(watched.clock.getDelayedCalls(), [])
        watched.watch.lost(Failure(ConnectionLost()))
        self.assertEqual([(u, c) for u, c, _ in watched.site.logged], [(b"/a", 499), (b"/b", 499)])

    def test_a_reset_while_answering_aborts(self):
        watched = Watched()
        watched.verdict = GONE
        watched.clock.advance(INTERVAL)
        self.assertTrue(watched.channel.transport.aborted)

    def test_a_long_answer_is_probed_ever_less_often_then_closely_once_written(self):
        """
        A client that half-closes while its answer is slow to come costs a
        probe a second at most, not twenty: many of them would otherwise
        keep the reactor busy doing nothing.  Once the answer is written,
        probes come every L{INTERVAL} again.
        """
        watched = Watched()
        probes = []
        watched.watch._probe = lambda: probes.append(watched.clock.seconds())
        watched.clock.pump([INTERVAL] * int(60 / INTERVAL))
        self.assertLessEqual(len(probes), 60 + 10)
        self.assertLessEqual(probes[-1] - probes[-2], MAX_INTERVAL)
        watched.answer(b"/a")
        watched.watch.answered()
        del probes[:]
        watched.clock.advance(INTERVAL)
        self.assertEqual(len(probes), 1)

    def test_no_verdict_within_the_limit_counts_as_delivered(self):
        watched = Watched()
        watched.answer(b"/a")
        watched.watch.answered()
        watched.clock.pump([INTERVAL] * int(LIMIT / INTERVAL - 2))
        self.assertEqual(watched.site.logged, [])
        watched.clock.pump([INTERVAL] * 3)
        self.assertEqual([(u, c) for u, c, _ in watched.site.logged], [(b"/a", 200)])
        self.assertTrue(watched.channel.transport.disconnecting)

    def test_a_clean_close_keeps_the_status(self):
        watched = Watched()
        watched.answer(b"/a")
        watched.watch.lost(Failure(ConnectionDone()))
        self.assertEqual([(u, c) for u, c, _ in watched.site.logged], [(b"/a", 200)])
        self.assertEqual(watched.clock.getDelayedCalls(), [])


class DeliveryProbeTests(TestCase):
    def test_no_probe_off_a_plain_tcp_connection(self):
        self.assertIsNone(delivery_probe(StringTransport()))
