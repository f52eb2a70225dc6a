"""
Request and response filters: the built-in implementations of
L{txrevproxy.interfaces.IFilterType} and what filters share.

A filter decides on a request with an L{Answer} (or L{None} to let it
through); L{FilterContext} is what its type's C{configure} gets besides
its options.
"""

from __future__ import annotations

import os
from typing import Any, Tuple

import attr

Header = Tuple[bytes, bytes]


@attr.s(frozen=True, auto_attribs=True)
class Answer:
    """
    A filter's own answer to a request, sent instead of forwarding it.

    @ivar status: the status code.
    @ivar headers: extra response fields (Content-Length, Date and
        X-Request-ID are added).
    @ivar body: the body; empty for the proxy's standard error page of
        C{status} (with the request ID).
    """

    status: int
    headers: Tuple[Header, ...] = ()
    body: bytes = b""


@attr.s(frozen=True, auto_attribs=True)
class FilterContext:
    """
    What a filter type's C{configure} gets besides its options.

    @ivar name: the filter table's name (C{NAME} in C{[filters.NAME]}).
    @ivar reactor: the reactor (time, connections), for filters that
        keep time or call services.
    @ivar server: the C{[server]} settings
        (L{txrevproxy.config.model.ServerSettings}), for C{trusted_proxies}.
    @ivar directory: the directory of the configuration file, which
        relative paths in options are taken from.

    While a configuration is only being checked, C{reactor} is L{None}.
    """

    name: str
    reactor: Any
    server: Any
    directory: str = ""

    def path(self, name: str) -> str:
        """
        The path a file option names, relative paths taken from
        L{directory}.
        """
        return os.path.join(self.directory, os.path.expanduser(name))
