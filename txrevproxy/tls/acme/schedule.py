"""
When to renew a certificate, and how long to wait after a failure: plain
functions of times, tested without a reactor.
"""

from __future__ import annotations

from typing import Optional

import attr
from cryptography import x509

#: The first wait after a failed order, in seconds.
FIRST_RETRY = 60.0

#: The longest wait between attempts: a CA that is down for days is still
#: tried a few times a day.
LONGEST_RETRY = 6 * 3600.0


def renewal_time(leaf: x509.Certificate, renew_before: Optional[float]) -> float:
    """
    When to renew C{leaf}, as a Unix time: C{renew_before} seconds before
    it expires, or once two thirds of its lifetime have passed (Let's
    Encrypt's advice: 30 days before the end of 90).  A C{renew_before}
    longer than half the lifetime counts as half: a new certificate is
    never due the moment it is obtained.
    """
    start = leaf.not_valid_before_utc.timestamp()
    end = leaf.not_valid_after_utc.timestamp()
    if renew_before is None:
        return start + (end - start) * 2 / 3
    return max(end - renew_before, start + (end - start) / 2)


@attr.s(auto_attribs=True)
class Backoff:
    """
    The waits after consecutive failures: L{FIRST_RETRY}, doubling each
    time up to L{LONGEST_RETRY}; a success starts over.

    @ivar failures: how many attempts failed in a row.
    """

    first: float = FIRST_RETRY
    longest: float = LONGEST_RETRY
    failures: int = 0

    def failed(self) -> float:
        """
        Count a failure.

        @return: the seconds to wait before the next attempt.
        """
        delay = min(self.first * 2 ** self.failures, self.longest)
        self.failures += 1
        return delay

    def succeeded(self) -> None:
        self.failures = 0
