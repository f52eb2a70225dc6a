"""
The built-in balancing policies.

Each class here is an L{IBackendPicker}: the per-upstream state of a policy.
Each also follows changes of the backends (L{IBackendsChanged}: backends
found in the DNS join and leave) keeping its state: the policies that
look only at the candidates of each pick need nothing for it.  The
policies themselves (L{IBalancingPolicy} plugins naming these classes)
are registered in C{twisted/plugins/txrevproxy_balancing.py}, the way a
third party registers its own, and found through L{txrevproxy.plugins}.
"""

from __future__ import annotations

from bisect import bisect
from hashlib import blake2b
from typing import Callable, Dict, Optional, Sequence

from zope.interface import implementer

from ..http.headers import cookie_value
from ..interfaces import IBackendPicker, IBackendsChanged

#: Points on the hash ring per backend of average weight: enough for each
#: backend's share of keys to be within a few percent of its weight.
RING_POINTS = 160


class _FollowsCandidates:
    """
    A picker that keeps nothing per backend: a change of the backends is
    met by the candidates of the next pick, and its state (a rotation's
    position) stays.
    """

    def backends_changed(self, backends) -> None:
        pass


@implementer(IBackendPicker, IBackendsChanged)
class RoundRobin(_FollowsCandidates):
    """
    Each candidate in turn; weights are not considered.
    """

    def __init__(self, upstream, backends, clock, random) -> None:
        self._next = 0

    def pick(self, request, candidates):
        index = self._next % len(candidates)
        self._next = index + 1
        return candidates[index]


@implementer(IBackendPicker, IBackendsChanged)
class WeightedRoundRobin:
    """
    Smooth weighted round robin, as nginx does it: each pick adds every
    candidate's weight to its running score, takes the highest, and takes
    the total off the winner.  Weights 5, 1, 1 give a b a c a a a rather
    than five a's in a row.
    """

    def __init__(self, upstream, backends, clock, random) -> None:
        self._scores: Dict[object, float] = {}

    def pick(self, request, candidates):
        scores = self._scores
        best = None
        best_score = 0.0
        total = 0.0
        for backend in candidates:
            weight = backend.current_weight()
            score = scores.get(backend, 0.0) + weight
            scores[backend] = score
            total += weight
            if best is None or score > best_score:
                best = backend
                best_score = score
        scores[best] = best_score - total
        return best

    def backends_changed(self, backends) -> None:
        """
        Forget the scores of the backends that left; the others keep
        theirs, so the rotation goes on where it was.
        """
        present = set(backends)
        self._scores = {b: s for b, s in self._scores.items() if b in present}


def _load(backend) -> float:
    """
    A backend's in-flight exchanges, counting the one about to be sent,
    per unit of weight.
    """
    return (backend.in_flight + 1) / backend.current_weight()


@implementer(IBackendPicker, IBackendsChanged)
class LeastConnections(_FollowsCandidates):
    """
    The candidate with the fewest exchanges in flight per unit of weight;
    ties go to each tied candidate in turn.
    """

    def __init__(self, upstream, backends, clock, random) -> None:
        self._next = 0

    def pick(self, request, candidates):
        count = len(candidates)
        start = self._next % count
        self._next = start + 1
        best = None
        best_load = 0.0
        for offset in range(count):
            backend = candidates[(start + offset) % count]
            load = _load(backend)
            if best is None or load < best_load:
                best = backend
                best_load = load
        return best


@implementer(IBackendPicker, IBackendsChanged)
class RandomTwoChoices(_FollowsCandidates):
    """
    The power of two random choices: two distinct candidates at random, and
    of those the one with fewer exchanges in flight per unit of weight.
    Nearly as even as least connections, without its herd behaviour when
    several proxies share the backends.
    """

    def __init__(self, upstream, backends, clock, random) -> None:
        self._random = random

    def pick(self, request, candidates):
        count = len(candidates)
        if count == 1:
            return candidates[0]
        first = self._random.randrange(count)
        second = self._random.randrange(count - 1)
        if second >= first:
            second += 1
        a = candidates[first]
        b = candidates[second]
        return a if _load(a) <= _load(b) else b


def _ring_hash(data: bytes) -> int:
    return int.from_bytes(blake2b(data, digest_size=8).digest(), "big")


def key_function(hash_key: str) -> Callable[[object], Optional[bytes]]:
    """
    The function that takes a request's key for C{hash_key}
    (C{"client_ip"}, C{"path"}, C{"header:NAME"} or C{"cookie:NAME"}).
    """
    if hash_key == "client_ip":
        return lambda request: request.connection.client_ip
    if hash_key == "path":
        return lambda request: request.path
    kind, _, name = hash_key.partition(":")
    wanted = name.encode("ascii")
    if kind == "header":

        def header(request) -> Optional[bytes]:
            values = request.requestHeaders.getRawHeaders(wanted)
            return values[0] if values else None

        return header

    def cookie(request) -> Optional[bytes]:
        return cookie_value(request.requestHeaders.getRawHeaders(b"cookie"), wanted)

    return cookie


@implementer(IBackendPicker, IBackendsChanged)
class ConsistentHash:
    """
    The same key goes to the same backend: a consistent-hash ring with
    about L{RING_POINTS} points per backend of average weight, each point a
    hash of the backend's URL and its number.  A backend's points do not
    depend on the others, so adding one moves only its share of the keys,
    and a key whose backend cannot take it goes to the next backend round
    the ring.  A request without a key (no such header or cookie) goes to
    each candidate in turn.  When backends join or leave, the ring is
    made again from the same points: the keys of a backend that left go
    to the next ones round the ring, and a backend that joined takes its
    share from the others; no other key moves.
    """

    def __init__(self, upstream, backends, clock, random) -> None:
        self._key = key_function(upstream.hash_key)
        self._fallback = RoundRobin(upstream, backends, clock, random)
        self.backends_changed(backends)

    def backends_changed(self, backends) -> None:
        """
        Make the ring of C{backends}: each backend's points are hashes of
        its own URL, so they are the same in every ring it is part of.
        """
        total = sum(backend.weight for backend in backends)
        ring = []
        for backend in backends:
            points = max(1, round(RING_POINTS * len(backends) * backend.weight / total))
            url = backend.server.url.encode("utf-8")
            ring.extend(
                (_ring_hash(b"%s#%d" % (url, point)), backend) for point in range(points)
            )
        ring.sort(key=lambda entry: entry[0])
        self._points = [point for point, _ in ring]
        self._owners = [backend for _, backend in ring]
        self._candidates: Sequence = ()
        self._allowed: frozenset = frozenset()

    def pick(self, request, candidates):
        key = self._key(request)
        if key is None:
            return self._fallback.pick(request, candidates)
        if candidates is not self._candidates:
            self._candidates = candidates
            self._allowed = frozenset(candidates)
        allowed = self._allowed
        owners = self._owners
        count = len(owners)
        start = bisect(self._points, _ring_hash(key))
        for offset in range(count):
            backend = owners[(start + offset) % count]
            if backend in allowed:
                return backend
        raise LookupError("no candidate is a backend of this upstream")
