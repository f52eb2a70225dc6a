"""
The plugin registries: the installed implementations of each extension
point of L{txrevproxy.interfaces}, by the name the configuration uses.

The built-ins are registered in C{twisted/plugins/} exactly as a third
party's plugins are, and every registry is read through
L{twisted.plugin.getPlugins}, so a built-in and a plugin are found, and
named in the configuration, the same way.  Nothing here imports an
implementation: a plugin's code is imported only when a configuration uses
it.
"""

from __future__ import annotations

from typing import Any, Dict, List

from .interfaces import IBalancingPolicy, ICacheStoreType, IFilterType, IMatcherType


def named_plugins(interface) -> Dict[str, Any]:
    """
    Every installed provider of C{interface} (an interface whose providers
    have a C{name}), by name; the first found wins a name.
    """
    from twisted.plugin import getPlugins

    found: Dict[str, Any] = {}
    for plugin in getPlugins(interface):
        found.setdefault(plugin.name, plugin)
    return found


def balancing_policies() -> Dict[str, IBalancingPolicy]:
    """
    Every installed balancing policy (an upstream's C{balance}), by name.
    """
    return named_plugins(IBalancingPolicy)


def policy_names() -> List[str]:
    """
    The names an upstream's C{balance} key accepts, sorted.
    """
    return sorted(balancing_policies())


def filter_types() -> Dict[str, IFilterType]:
    """
    Every installed filter type (a C{[filters.NAME]} table's C{type}), by
    name.
    """
    return named_plugins(IFilterType)


def matcher_types() -> Dict[str, IMatcherType]:
    """
    Every installed route matcher type (a key of a route's C{match}
    table), by name.
    """
    return named_plugins(IMatcherType)


def cache_store_types() -> Dict[str, ICacheStoreType]:
    """
    Every installed cache store type (a C{[caches.NAME]} table's
    C{store}), by name.
    """
    return named_plugins(ICacheStoreType)
