"""
An incremental, sans-I/O reader of HTTP/1.x request heads.

The proxy's HTTP/1.1 channel (L{txrevproxy.server.channel.ProxyChannel})
keeps what a client sent in a L{RequestHeadReader}, which finds each
request head in it, checks it by the rules of
L{txrevproxy.http.request_head} and the site's limits (L{HeadLimits}), and
gives back the parsed L{RequestHead} or the status to answer.  A head that
came whole, the usual case, is split at its CRLFs in one pass; one that
comes in pieces is checked line by line as its lines end, so that a bad
line is answered as soon as it is in, and no line is read twice.

Besides L{txrevproxy.http.request_head}'s rules, the reader makes the
checks Twisted's parser made when it read the heads: a field line without
a colon, a field name that is not a token, and a second field that frames
the body (C{Content-Length} or C{Transfer-Encoding}, the same twice or the
two together) are all refused with 400.  A proxy that reads a body's
length otherwise than its backend is how requests are smuggled.
"""

from __future__ import annotations

from typing import List, Optional, Tuple, Union

import attr

from .request_head import (
    FIELD_NAME,
    UNDERSCORED,
    content_length,
    request_line_status,
    split_field_line,
)

Field = Tuple[bytes, bytes]

_CRLF = b"\r\n"
_END = b"\r\n\r\n"
_HTTP_11 = b"HTTP/1.1"
_HTTP_10 = b"HTTP/1.0"
_CONTENT_LENGTH = b"content-length"
_TRANSFER_ENCODING = b"transfer-encoding"


@attr.s(frozen=True, slots=True)
class HeadLimits:
    """
    The limits a request head must keep (C{[server]} settings).

    @ivar max_request_line: the longest request line, in bytes; a longer
        one is answered 414.
    @ivar max_header_size: the largest head (request line and field lines
        with their CRLFs); a larger one is answered 431.
    @ivar max_headers: the most field lines; more are answered 431.
    @ivar drop_underscored: whether a field whose name contains C{_} is
        dropped (else it is kept; see
        L{txrevproxy.http.request_head.UNDERSCORED}).
    """

    max_request_line: int = attr.ib()
    max_header_size: int = attr.ib()
    max_headers: int = attr.ib()
    drop_underscored: bool = attr.ib(default=False)


@attr.s(frozen=True, slots=True)
class RequestHead:
    """
    A request head that passed every check.

    @ivar method: the method, such as C{b"GET"}.
    @ivar target: the request target, as sent.
    @ivar version: C{b"HTTP/1.1"} or C{b"HTTP/1.0"}.
    @ivar fields: the field lines as C{(name, value)}, names as sent and
        values without the whitespace around them, in their order.
    @ivar length: the body's length: 0 when there is none, L{None} when it
        is chunked.
    """

    method: bytes = attr.ib()
    target: bytes = attr.ib()
    version: bytes = attr.ib()
    fields: List[Field] = attr.ib()
    length: Optional[int] = attr.ib()


class RequestHeadReader:
    """
    Holds the bytes a client sent that were not read yet, and reads request
    heads from them, one at a time (L{read}).

    @ivar limits: the L{HeadLimits} the heads keep; the channel replaces
        them when its site changes.
    """

    __slots__ = (
        "limits",
        "_buffer",
        "_checked",
        "_requestLine",
        "_version",
        "_fields",
        "_lines",
        "_size",
        "_length",
        "_framed",
        "_skipped",
    )

    def __init__(self, limits: HeadLimits) -> None:
        self.limits = limits
        self._buffer = b""
        self._reset()

    def _reset(self) -> None:
        #: How far the buffer's lines are checked: the head's lines before
        #: this offset are.
        self._checked = 0
        self._requestLine: Optional[bytes] = None
        self._version = _HTTP_11
        self._fields: List[Field] = []
        #: The request line and the field lines kept, as the limit counts.
        self._lines = 0
        self._size = 0
        self._length: Optional[int] = 0
        self._framed = False
        #: Whether the one empty line taken before a request was skipped.
        self._skipped = False

    def feed(self, data: bytes) -> None:
        """
        Keep C{data}, what the client sent next, to be read later.
        """
        self._buffer += data

    def buffered(self) -> int:
        """
        How many bytes wait to be read.
        """
        return len(self._buffer)

    def take(self) -> bytes:
        """
        Take every byte waiting (a body's, after its head, or a tunnel's).
        """
        data, self._buffer = self._buffer, b""
        return data

    def read(self) -> Union[None, int, RequestHead]:
        """
        Read the next head from what is buffered.

        @return: the L{RequestHead}, whose bytes are then taken from the
            buffer (what follows stays: a body, or the next request);
            L{None} when the head is not whole yet and nothing in it is
            wrong so far; or the status to answer it with: 400, 414, 431
            or 505.  After a status, the reader must not be used again.
        """
        buffer = self._buffer
        if not buffer:
            return None
        if self._requestLine is None and buffer[:2] == _CRLF and not self._skipped:
            # One empty line before a request is skipped, as Twisted did
            # (old clients sent a CRLF after a POST body).
            self._skipped = True
            buffer = self._buffer = buffer[2:]
        checked = self._checked
        end = buffer.find(_END, max(checked - 2, 0))
        if end < 0:
            return self._readPart(buffer, checked)
        if end >= checked:
            for line in buffer[checked:end].split(_CRLF):
                status = self._line(line)
                if status:
                    return status
        if self._requestLine is None:
            # The head is an empty line: an empty request line.
            return 400
        self._buffer = buffer[end + 4 :]
        method, target, version = self._requestLine.split(b" ")
        head = RequestHead(method, target, version, self._fields, self._length)
        self._reset()
        return head

    def _readPart(self, buffer: bytes, checked: int) -> Optional[int]:
        """
        Check the lines of a head that is not whole yet, then what was read
        of the line after them.
        """
        last = buffer.rfind(_CRLF, checked)
        if last >= checked:
            for line in buffer[checked:last].split(_CRLF):
                status = self._line(line)
                if status:
                    return status
            checked = self._checked = last + 2
        limits = self.limits
        pending = len(buffer) - checked
        if pending >= max(limits.max_request_line, limits.max_header_size) + 2:
            # A line longer than any the limits let through: Twisted's
            # line reader's bound, kept.
            return 414 if self._requestLine is None else 431
        if buffer.find(b"\n", checked) >= 0 or buffer.find(b"\r", checked, -1) >= 0:
            # A line ended by a bare LF or CR: waiting for a CRLF that is
            # not coming would only hold the connection open.
            return 400
        return None

    def _line(self, line: bytes) -> int:
        """
        Check one line of the head and keep what it says.

        @return: 0, or the status to answer.
        """
        limits = self.limits
        if self._requestLine is None:
            if len(line) > limits.max_request_line:
                return 414
            status = request_line_status(line)
            if status:
                return status
            self._requestLine = line
            self._version = _HTTP_11 if line.endswith(_HTTP_11) else _HTTP_10
            self._lines = 1
            self._size = len(line) + 2
            return 0
        self._size += len(line) + 2
        if self._lines > limits.max_headers or self._size > limits.max_header_size:
            return 431
        status, name, value = split_field_line(line, self._version)
        if status > 0:
            return status
        if status == UNDERSCORED and limits.drop_underscored:
            # As nginx's "underscores_in_headers off": the field is not
            # read, so nothing behind the proxy sees it.
            return 0
        self._lines += 1
        if value is None or FIELD_NAME.match(name) is None:
            return 400
        lower = name.lower()
        if lower == _CONTENT_LENGTH or lower == _TRANSFER_ENCODING:
            if self._framed:
                # Two framings, or one twice: a backend may read either.
                return 400
            self._framed = True
            # split_field_line allowed only one decimal length, or chunked.
            self._length = content_length(value) if lower == _CONTENT_LENGTH else None
        self._fields.append((name, value))
        return 0
