"""
Request and response filters: the built-in implementations of
L{txrevproxy.interfaces.IFilterType} (a module each) and how a route runs
them (L{txrevproxy.filters.chain}).

L{Answer} and L{FilterContext} belong to the filter extension point and
are defined in L{txrevproxy.interfaces}; they are named here too because
this is where a filter plugin has always imported them from.
"""

from __future__ import annotations

from ..interfaces import Answer, FilterContext, Header

__all__ = ["Answer", "FilterContext", "Header"]
