"""
The built-in balancing policies, registered as Twisted plugins exactly as a
third party's are (see docs/balancing.rst), so that C{balance = "..."}
finds them all the same way.

Kept tiny on purpose: twistd imports every plugin module to list its
commands, so the pickers are imported only when a policy is used.
"""

from __future__ import annotations

from twisted.plugin import IPlugin
from zope.interface import implementer

from txrevproxy.interfaces import IBalancingPolicy


@implementer(IPlugin, IBalancingPolicy)
class BuiltInPolicy:
    """
    A policy whose picker is a class of L{txrevproxy.upstream.policies}.
    """

    def __init__(self, name: str, picker_class: str) -> None:
        self.name = name
        self._picker_class = picker_class

    def picker(self, upstream, backends, clock, random):
        from txrevproxy.upstream import policies

        picker_class = getattr(policies, self._picker_class)
        return picker_class(upstream, backends, clock, random)


roundRobin = BuiltInPolicy("round_robin", "RoundRobin")
weightedRoundRobin = BuiltInPolicy("weighted_round_robin", "WeightedRoundRobin")
leastConnections = BuiltInPolicy("least_connections", "LeastConnections")
randomTwoChoices = BuiltInPolicy("random_two_choices", "RandomTwoChoices")
consistentHash = BuiltInPolicy("hash", "ConsistentHash")
