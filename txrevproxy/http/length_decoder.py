"""
The decoder of a request body framed by its C{Content-Length}.
"""

from __future__ import annotations

from typing import Callable


class LengthDecoder:
    """
    Hands on the bytes of a body of a known length as they come, then
    what follows it.

    @param length: the body's length, in bytes (more than 0).
    @param on_data: called with each piece of the body.
    @param on_end: called once with the bytes that followed the body (the
        start of a pipelined request).
    """

    __slots__ = ("_remaining", "_on_data", "_on_end")

    def __init__(
        self,
        length: int,
        on_data: Callable[[bytes], None],
        on_end: Callable[[bytes], None],
    ) -> None:
        self._remaining = length
        self._on_data = on_data
        self._on_end = on_end

    def dataReceived(self, data: bytes) -> None:
        """
        Take the next bytes of the body, and of what follows once it ended.
        """
        remaining = self._remaining
        if len(data) < remaining:
            self._remaining = remaining - len(data)
            self._on_data(data)
            return
        self._remaining = 0
        self._on_data(data[:remaining])
        self._on_end(data[remaining:])
