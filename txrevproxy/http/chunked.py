"""
A strict decoder of chunked request bodies (RFC 9112 section 7.1).

Twisted's own decoder takes chunk sizes of any length and waits for a CRLF
that a bare LF never brings; a backend that reads the same bytes otherwise
is the setting of a smuggling attack.  This one refuses, as soon as it sees
them: chunk sizes of more than 16 hex digits, anything but hex digits
before an optional extension, a line break other than CRLF, data not
followed by CRLF, over-long size or trailer lines, and malformed trailer
fields.  Trailer fields are read and dropped (the backend request ends
with an empty trailer section).
"""

from __future__ import annotations

import re
from typing import Callable

#: chunk-size [ chunk-ext ]: at most 16 hex digits (a size below 2**64),
#: then extensions of visible characters, spaces and tabs.
_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,16})(?:[ \t]*;[\x20-\x7e\x80-\xff\t]*)?\Z")

#: A trailer field line: a token, a colon, a value without control
#: characters other than HTAB.
_TRAILER_LINE = re.compile(
    rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[\x20-\x7e\x80-\xff\t]*\Z"
)

#: The longest size line or trailer line, and the largest trailer section.
MAX_LINE = 4096
MAX_TRAILER = 16384

_SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(5)


class MalformedChunks(Exception):
    """
    The body is not a valid chunked body.
    """


class ChunkedDecoder:
    """
    Decodes a chunked body fed in pieces of any size.

    @param on_data: called with each piece of decoded body.
    @param on_end: called once with the bytes that followed the body (the
        start of a pipelined request).
    """

    def __init__(
        self, on_data: Callable[[bytes], None], on_end: Callable[[bytes], None]
    ) -> None:
        self._on_data = on_data
        self._on_end = on_end
        self._state = _SIZE
        self._line = b""
        self._remaining = 0
        self._trailer_size = 0

    def dataReceived(self, data: bytes) -> None:
        """
        Decode the next bytes of the body.

        @raise MalformedChunks: when they break RFC 9112 section 7.1.
        """
        while data and self._state != _DONE:
            state = self._state
            if state == _DATA:
                piece = data[: self._remaining]
                data = data[self._remaining :]
                self._remaining -= len(piece)
                if not self._remaining:
                    self._state = _DATA_END
                self._on_data(piece)
            elif state == _DATA_END:
                data = self._readDataEnd(data)
            else:
                data = self._readLine(data)

    def _readDataEnd(self, data: bytes) -> bytes:
        """
        The CRLF after a chunk's data.
        """
        ending = self._line + data[: 2 - len(self._line)]
        if ending != b"\r\n"[: len(ending)]:
            raise MalformedChunks("chunk data not followed by CRLF")
        rest = data[2 - len(self._line) :]
        if len(ending) < 2:
            self._line = ending
            return b""
        self._line = b""
        self._state = _SIZE
        return rest

    def _readLine(self, data: bytes) -> bytes:
        """
        Collect a size or trailer line up to its CRLF, then act on it.
        """
        buffered = self._line + data
        end = buffered.find(b"\r\n")
        if end < 0:
            # Only a final CR may wait for its LF.
            if b"\n" in buffered or b"\r" in buffered[:-1]:
                raise MalformedChunks("line break other than CRLF")
            if len(buffered) > MAX_LINE:
                raise MalformedChunks("chunk line too long")
            self._line = buffered
            return b""
        line = buffered[:end]
        rest = buffered[end + 2 :]
        self._line = b""
        if len(line) > MAX_LINE:
            raise MalformedChunks("chunk line too long")
        if self._state == _SIZE:
            match = _SIZE_LINE.match(line)
            if match is None:
                raise MalformedChunks("invalid chunk size line")
            size = int(match.group(1), 16)
            if size:
                self._remaining = size
                self._state = _DATA
            else:
                self._state = _TRAILER
            return rest
        if not line:
            self._state = _DONE
            self._on_end(rest)
            return b""
        self._trailer_size += len(line) + 2
        if self._trailer_size > MAX_TRAILER or not _TRAILER_LINE.match(line):
            raise MalformedChunks("invalid trailer section")
        return rest

    def noMoreData(self) -> None:
        """
        The connection closed: a body cut short is malformed.
        """
        if self._state != _DONE:
            raise MalformedChunks("chunked body cut short")
