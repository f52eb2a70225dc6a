"""
The last minute of traffic (L{txrevproxy.observe.window}): sampled once a
second from the counters the hot path keeps, summed across processes,
and read as rates, error rates and quantiles from histogram buckets.
"""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txrevproxy.observe.metrics import BUCKETS, Metrics
from txrevproxy.observe.window import (
    SLOT_WIDTH,
    SLOTS,
    MinuteWindow,
    merge_windows,
    quantile,
    summarize,
)


def counts(**by_bound: int):
    """
    Bucket counts with C{by_bound} observations in the bucket of each
    bound (C{b0_005=3}: three in the 5 ms bucket; C{inf=1}: one above).
    """
    values = [0] * (len(BUCKETS) + 1)
    for name, count in by_bound.items():
        bound = float("inf") if name == "inf" else float(name[1:].replace("_", "."))
        index = len(BUCKETS) if bound == float("inf") else BUCKETS.index(bound)
        values[index] = count
    return values


class QuantileTests(SynchronousTestCase):
    def test_no_observations_have_no_quantile(self):
        self.assertIsNone(quantile(0.5, counts()))

    def test_interpolates_inside_the_bucket_of_the_rank(self):
        # 10 observations in (0.01, 0.025]: the median is half-way in.
        self.assertAlmostEqual(quantile(0.5, counts(b0_025=10)), 0.0175)

    def test_the_first_bucket_starts_at_zero(self):
        self.assertAlmostEqual(quantile(0.5, counts(b0_005=4)), 0.0025)

    def test_p99_finds_the_slow_tail(self):
        # 98 fast requests and 2 slow ones: p50 is fast, p99 slow.
        buckets = counts(b0_005=98, b1_0=2)
        self.assertLess(quantile(0.5, buckets), 0.005)
        self.assertGreater(quantile(0.99, buckets), 0.5)

    def test_above_the_last_bound_is_the_last_bound(self):
        self.assertEqual(quantile(0.99, counts(inf=3)), BUCKETS[-1])


def slot(requests: int, errors: int, buckets):
    return [requests, errors] + buckets


class SummarizeTests(SynchronousTestCase):
    def test_rate_error_rate_and_quantiles_over_the_seconds_measured(self):
        idle = slot(0, 0, counts())
        slots = [idle] * (SLOTS - 2) + [
            slot(10, 1, counts(b0_01=10)),
            slot(30, 3, counts(b0_01=29, b2_5=1)),
        ]
        figures = summarize(slots, 4)
        self.assertEqual(figures["rate"], 10.0)
        self.assertEqual(figures["error_rate"], 0.1)
        # 40 requests: the 20th of the 39 in (5 ms, 10 ms], and the one
        # in (1 s, 2.5 s] for the 39.6th.
        self.assertAlmostEqual(figures["p50"], 0.005 + 0.005 * 20 / 39)
        self.assertAlmostEqual(figures["p99"], 1.0 + 1.5 * 0.6)
        self.assertEqual(figures["rates"][-3:], [0, 10, 30])
        self.assertEqual(figures["p99s"][-3], None)
        self.assertLess(figures["p99s"][-2], 0.01)
        self.assertEqual(len(figures["p50s"]), SLOTS)

    def test_no_requests_have_no_error_rate_or_latency(self):
        figures = summarize([[0] * SLOT_WIDTH] * SLOTS, 60)
        self.assertEqual(
            (figures["rate"], figures["error_rate"], figures["p50"], figures["p99"]),
            (0.0, None, None, None),
        )

    def test_nothing_measured_yet_is_no_rate(self):
        self.assertEqual(summarize([[0] * SLOT_WIDTH] * SLOTS, 0)["rate"], 0.0)


class MinuteWindowTests(SynchronousTestCase):
    def setUp(self):
        self.clock = Clock()
        self.metrics = Metrics()
        self.window = MinuteWindow(self.metrics, self.clock)
        self.window.startService()
        self.addCleanup(self.window.stopService)
        self.route = self.metrics.route("web", "shop", "app")

    def answer(self, status: int, seconds: float, n: int = 1):
        for _ in range(n):
            self.route.record(status, seconds, 0, 0)
            self.route.upstream.response_time.observe(seconds / 2)

    def test_requests_before_the_first_sample_are_not_in_the_window(self):
        self.window.stopService()
        self.answer(200, 0.003, n=5)
        window = MinuteWindow(self.metrics, self.clock)
        window.startService()
        self.addCleanup(window.stopService)
        self.clock.advance(1)
        self.assertEqual(window.window()["seconds"], 1)
        self.assertEqual(window.window()["routes"]["shop"][-1][:2], [0, 0])

    def test_each_second_holds_its_own_requests(self):
        self.answer(200, 0.003, n=3)
        self.clock.advance(1)
        self.answer(503, 0.2, n=2)
        self.clock.advance(1)
        window = self.window.window()
        self.assertEqual(window["seconds"], 2)
        route = window["routes"]["shop"]
        self.assertEqual(len(route), SLOTS)
        self.assertEqual([each[:2] for each in route[-2:]], [[3, 0], [2, 2]])
        self.assertEqual(route[-1][2:], counts(b0_25=2))
        upstream = window["upstreams"]["app"]
        self.assertEqual([each[:2] for each in upstream[-2:]], [[3, 0], [2, 2]])
        # The upstream's latency is its response time, not the route's.
        self.assertEqual(upstream[-1][2:], counts(b0_1=2))

    def test_keeps_the_last_minute_only(self):
        self.answer(200, 0.003, n=7)
        self.clock.advance(1)
        self.clock.pump([1] * SLOTS)
        window = self.window.window()
        self.assertEqual(window["seconds"], SLOTS)
        self.assertEqual(sum(each[0] for each in window["routes"]["shop"]), 0)

    def test_figures_of_the_window(self):
        self.answer(200, 0.003, n=9)
        self.answer(502, 0.003)
        self.clock.advance(1)
        window = self.window.window()
        figures = summarize(window["upstreams"]["app"], window["seconds"])
        self.assertEqual((figures["rate"], figures["error_rate"]), (10.0, 0.1))
        self.assertLess(figures["p99"], 0.005)

    def test_stops_sampling_when_stopped(self):
        self.window.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class MergeTests(SynchronousTestCase):
    def test_sums_slot_by_slot_and_keeps_names_of_either(self):
        one = {"seconds": 3, "routes": {"a": [slot(1, 0, counts(b0_01=1))]}, "upstreams": {}}
        two = {
            "seconds": 5,
            "routes": {"a": [slot(2, 1, counts(b0_01=2))], "b": [slot(4, 0, counts())]},
            "upstreams": {"app": [slot(2, 1, counts())]},
        }
        self.assertEqual(
            merge_windows([one, two]),
            {
                "seconds": 5,
                "routes": {"a": [slot(3, 1, counts(b0_01=3))], "b": [slot(4, 0, counts())]},
                "upstreams": {"app": [slot(2, 1, counts())]},
            },
        )
