"""
A route's maintenance switch: while it is on, the route answers 503 with
its maintenance page (its 503 error page) instead of forwarding.
"""

from __future__ import annotations


class MaintenanceSwitch:
    """
    The one piece of a route's state that an operator changes at run time
    (through the admin API), without a reload.  It is the only mutable
    object between the configuration and the route's resource: the
    resource reads L{on} once per request, and a reload hands the same
    switch to the new resource of a route with the same C{name}.

    @ivar on: whether the route is in maintenance.
    """

    on = False

    def __repr__(self) -> str:
        return "<MaintenanceSwitch %s>" % ("on" if self.on else "off",)
