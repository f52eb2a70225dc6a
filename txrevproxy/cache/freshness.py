"""
What a stored response's own fields say about its freshness, as one
cache reads them: its Cache-Control directives, its freshness lifetime
and the age it had when it was stored (RFC 9111 sections 4.2.1 and
4.2.3).

None of it changes while the response is stored, yet every hit needs it:
it is worked out once per response and kept on it (parsing its fields
again on each hit, dates included, was about a quarter of a small hit's
CPU time on PyPy, measured in the process without its sockets).  Only the current age, which goes on with the clock, is left
to each request.
"""

from __future__ import annotations

import attr

from . import policy
from .store import StoredResponse
from .targeted import Targets


@attr.s(frozen=True, auto_attribs=True)
class Freshness:
    """
    A stored response's freshness for one cache's settings.

    @ivar directives: its Cache-Control directives as the cache reads them
        (a targeted field's, when one applies: see L{Targets.rule_fields}).
        Shared by every request that reads it: not to be changed.
    @ivar lifetime: its freshness lifetime, in seconds.
    @ivar initial_age: its corrected initial age (RFC 9111 section 4.2.3).
    @ivar response_time: when it was received.
    """

    directives: policy.Directives
    lifetime: float
    initial_age: float
    response_time: float

    def age(self, now: float) -> float:
        """
        Its current age at C{now}: the age it had plus how long it has
        been stored.
        """
        return self.initial_age + (now - self.response_time)


def freshness(stored: StoredResponse, targets: Targets, default_ttl: float) -> Freshness:
    """
    The L{Freshness} of C{stored} for a cache with C{targets} and
    C{default_ttl}: worked out on the first call, then kept on C{stored}
    for as long as those settings are the ones asked about (a reload that
    hands the store to a cache with other settings works it out again).
    """
    kept = stored.kept
    if kept and kept[0] is targets and kept[1] == default_ttl:
        return kept[2]
    fields = targets.rule_fields(stored.headers)
    timing = stored.timing
    result = Freshness(
        policy.response_cache_control(fields),
        policy.freshness_lifetime(stored.status, fields, default_ttl),
        policy.current_age(stored.headers, timing, timing.response_time),
        timing.response_time,
    )
    kept[:] = (targets, default_ttl, result)
    return result
