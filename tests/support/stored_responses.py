"""
Stored responses for the tests of cache stores.
"""

from __future__ import annotations

from txrevproxy.cache.policy import Timing
from txrevproxy.cache.store import StoredResponse


def response(key: bytes, body: bytes = b"x" * 100, vary=((), ())) -> StoredResponse:
    return StoredResponse(
        key=key,
        vary_fields=vary[0],
        vary_values=vary[1],
        status=200,
        reason=b"OK",
        headers=(),
        body=body,
        timing=Timing(0, 0),
    )
