"""
The leaf of a split route: it chooses the request's side (see
L{txrevproxy.routing.split}) and lets that side's proxy resource forward
it, each side with its own upstream's balancer and timeouts.
"""

from __future__ import annotations

from typing import Mapping, Optional

from twisted.web.resource import Resource
from zope.interface import implementer

from ..interfaces import IFilter
from ..routing.split import WEIGHT, SplitChooser


@implementer(IFilter)
class StickySide:
    """
    The response part of a split's sticky cookie: it sets the cookie that
    names the side a request was drawn for, on whatever answers it (the
    side's backend, or the proxy's own error page).
    """

    def __init__(self, set_cookie: bytes) -> None:
        self._set_cookie = set_cookie

    def request(self, request) -> None:
        return None

    def response(self, request, status, headers) -> None:
        headers.append((b"Set-Cookie", self._set_cookie))
        return None


class SplitResource(Resource):
    """
    A route's leaf that sends each request to one of its sides.

    @param chooser: the route's L{SplitChooser}.
    @param sides: the proxy resource of each side, by upstream name.
    @param cookie: the sticky cookie's name, or L{None}.
    @param path: the route's path, the sticky cookie's C{Path}.
    """

    isLeaf = True

    def __init__(
        self,
        chooser: SplitChooser,
        sides: Mapping[str, Resource],
        cookie: Optional[str] = None,
        path: str = "/",
    ) -> None:
        super().__init__()
        self.chooser = chooser
        self.sides = dict(sides)
        self._sticky = (
            {}
            if cookie is None
            else {
                name: (
                    StickySide(
                        b"%s=%s; Path=%s; HttpOnly; SameSite=Lax"
                        % (cookie.encode("ascii"), name.encode("ascii"), path.encode("ascii"))
                    ),
                )
                for name in sides
            }
        )

    def render(self, request):
        choice = self.chooser.choose(request.requestHeaders)
        request.split_side = choice.side
        if choice.reason == WEIGHT and self._sticky:
            request.passedFilters(self._sticky[choice.side])
        return self.sides[choice.side].render(request)
