"""
Which side of a split route a request goes to: a pure decision on the
request's fields, made before the side's balancer picks a backend.

In order: the override field, then the override cookie, when its value
names a side (a tester's C{X-Canary: new}); then the sticky cookie, when
it names a side that still exists; else a draw weighted by the sides'
C{weight}s, whose result the sticky cookie then keeps.
"""

from __future__ import annotations

import bisect
from typing import Dict, List, Optional, Sequence

import attr

from ..config.model import SplitOverride, SplitSide
from ..http.headers import cookie_value

#: Why a side was chosen: L{Choice.reason}.
OVERRIDE_HEADER = "override header"
OVERRIDE_COOKIE = "override cookie"
STICKY = "sticky cookie"
WEIGHT = "weight"


@attr.s(frozen=True, auto_attribs=True)
class Choice:
    """
    The side a request goes to, and why (one of the module's reasons).
    """

    side: str
    reason: str


class SplitChooser:
    """
    Chooses the side of one split route for each request.

    @param random: a L{random.Random}, injected so that tests draw a
        known sequence.
    """

    def __init__(
        self,
        sides: Sequence[SplitSide],
        random,
        cookie: Optional[str] = None,
        override: Optional[SplitOverride] = None,
    ) -> None:
        self.sides = tuple(sides)
        self._names: Dict[bytes, str] = {
            side.name.encode("ascii"): side.name for side in sides
        }
        self._bounds: List[int] = []
        total = 0
        for side in sides:
            total += side.weight
            self._bounds.append(total)
        self._total = total
        self._random = random
        self._cookie = None if cookie is None else cookie.encode("ascii")
        header = None if override is None else override.header
        self._override_header = None if header is None else header.encode("ascii")
        cookie = None if override is None else override.cookie
        self._override_cookie = None if cookie is None else cookie.encode("ascii")

    def choose(self, fields) -> Choice:
        """
        The side of a request with the header fields C{fields} (a
        L{twisted.web.http_headers.Headers}).
        """
        choice = self.decided(fields)
        if choice is None:
            return Choice(self.draw(self._random.randrange(self._total)), WEIGHT)
        return choice

    def decided(self, fields) -> Optional[Choice]:
        """
        The side C{fields} send a request to by an override or the sticky
        cookie, or L{None}: the side is drawn by weight.
        """
        names = self._names
        if self._override_header is not None:
            values = fields.getRawHeaders(self._override_header)
            if values:
                side = names.get(values[0].strip())
                if side is not None:
                    return Choice(side, OVERRIDE_HEADER)
        cookies = None
        if self._override_cookie is not None or self._cookie is not None:
            cookies = fields.getRawHeaders(b"cookie")
        if cookies:
            for name, reason in (
                (self._override_cookie, OVERRIDE_COOKIE),
                (self._cookie, STICKY),
            ):
                if name is not None:
                    side = names.get(cookie_value(cookies, name) or b"")
                    if side is not None:
                        return Choice(side, reason)
        return None

    def draw(self, number: int) -> str:
        """
        The side a weighted draw of C{number} (from 0 to the sum of the
        weights, excluded) falls on: the first side owns the first
        C{weight} numbers, and so on.
        """
        return self.sides[bisect.bisect_right(self._bounds, number)].name

    def shares(self) -> Dict[str, float]:
        """
        Each side's share of the drawn requests, in percent.
        """
        return {side.name: 100.0 * side.weight / self._total for side in self.sides}
