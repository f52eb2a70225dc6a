"""
Finding the implementations of an extension point: the built-in ones and
those of any plugin module in the C{twisted.plugins} package, by name.
"""

from __future__ import annotations

from typing import Any, Dict


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
