"""
The last minute of traffic, for the admin status page: requests per
second, error rate and p50/p99 latency of each route and upstream.

Nothing is recorded per request: once a second L{MinuteWindow} reads the
cumulative counters and histogram buckets the hot path already keeps
(L{txrevproxy.observe.metrics.Metrics.request_totals}) and keeps the
difference from the previous second, sixty of them.  A quantile is read
from the buckets of the seconds it covers, as Prometheus's
C{histogram_quantile} does, so that several processes' windows add up
(L{merge_windows}) before anything is derived from them (L{summarize}).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Dict, Iterable, List, Optional, Sequence

from twisted.application.service import Service
from twisted.internet.task import LoopingCall

from .metrics import BUCKETS

#: Seconds the window covers, one slot each.
SLOTS = 60

#: A window as plain data (JSON, summed across workers): C{"seconds"},
#: how many of the L{SLOTS} are measured yet, then under C{"routes"} and
#: C{"upstreams"}, by name, a list of L{SLOTS} slots, oldest first, each
#: C{[requests, 5xx answers, latency bucket counts...]} of one second.
Window = Dict[str, Any]

#: The numbers of one slot.
SLOT_WIDTH = 2 + len(BUCKETS) + 1


class MinuteWindow(Service):
    """
    Samples C{metrics} every second while running, and answers the last
    minute (L{window}).

    @param clock: what drives the sampling (the reactor).
    """

    def __init__(self, metrics, clock) -> None:
        self._metrics = metrics
        self._clock = clock
        self._previous: Optional[Dict[str, Dict[str, List[int]]]] = None
        self._slots: Deque[Dict[str, Dict[str, List[int]]]] = deque(maxlen=SLOTS)
        self._sampler = LoopingCall(self.sample)
        self._sampler.clock = clock

    def startService(self) -> None:
        super().startService()
        self._sampler.start(1.0, now=True)

    def stopService(self):
        super().stopService()
        if self._sampler.running:
            self._sampler.stop()

    def sample(self) -> None:
        """
        Take the second since the previous sample (the first sample only
        sets where counting starts).
        """
        totals = self._metrics.request_totals()
        previous, self._previous = self._previous, totals
        if previous is None:
            return
        self._slots.append(
            {
                kind: {
                    name: _minus(values, previous[kind].get(name))
                    for name, values in named.items()
                }
                for kind, named in totals.items()
            }
        )

    def window(self) -> Window:
        """
        The last minute, as L{Window} plain data.
        """
        slots = list(self._slots)
        padded = [{}] * (SLOTS - len(slots)) + slots
        document: Window = {"seconds": len(slots)}
        quiet = [0] * SLOT_WIDTH
        for kind in ("routes", "upstreams"):
            names = {name for slot in slots for name in slot.get(kind, {})}
            document[kind] = {
                name: [slot.get(kind, {}).get(name) or quiet for slot in padded]
                for name in sorted(names)
            }
        return document


def _minus(values: List[int], before: Optional[List[int]]) -> List[int]:
    if before is None:
        return list(values)
    return [a - b for a, b in zip(values, before)]


def merge_windows(windows: Iterable[Window]) -> Window:
    """
    The sum of several processes' windows, slot by slot (their seconds
    are not aligned, which a minute's figures do not notice).
    """
    total: Window = {"seconds": 0, "routes": {}, "upstreams": {}}
    for window in windows:
        total["seconds"] = max(total["seconds"], window["seconds"])
        for kind in ("routes", "upstreams"):
            for name, slots in window[kind].items():
                present = total[kind].get(name)
                total[kind][name] = (
                    slots
                    if present is None
                    else [[a + b for a, b in zip(x, y)] for x, y in zip(present, slots)]
                )
    return total


def quantile(q: float, counts: Sequence[int]) -> Optional[float]:
    """
    The C{q} quantile (0 to 1) of the observations counted in C{counts}
    (one per bucket of L{BUCKETS}, then +Inf), interpolating linearly
    inside its bucket as Prometheus does; the highest finite bound when it
    falls in +Inf, L{None} without observations.
    """
    total = sum(counts)
    if not total:
        return None
    rank = q * total
    below = 0
    for index, count in enumerate(counts):
        if count and below + count >= rank:
            if index == len(BUCKETS):
                return BUCKETS[-1]
            lower = BUCKETS[index - 1] if index else 0.0
            return lower + (BUCKETS[index] - lower) * (rank - below) / count
        below += count
    return BUCKETS[-1]


def summarize(slots: Sequence[Sequence[int]], seconds: int) -> Dict[str, Any]:
    """
    The figures of one route's or upstream's window: over the C{seconds}
    measured, its requests per second (C{rate}), the share answered 5xx
    (C{error_rate}, L{None} without requests), the p50 and p99 latency in
    seconds (L{None} without requests), and per second of the window,
    oldest first, for sparklines: C{rates}, C{p50s} and C{p99s}.
    """
    buckets = [sum(column) for column in zip(*(slot[2:] for slot in slots))]
    requests = sum(slot[0] for slot in slots)
    errors = sum(slot[1] for slot in slots)
    return {
        "rate": requests / seconds if seconds else 0.0,
        "error_rate": errors / requests if requests else None,
        "p50": quantile(0.5, buckets),
        "p99": quantile(0.99, buckets),
        "rates": [slot[0] for slot in slots],
        "p50s": [quantile(0.5, slot[2:]) for slot in slots],
        "p99s": [quantile(0.99, slot[2:]) for slot in slots],
    }
