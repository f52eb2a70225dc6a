"""
An incremental, sans-I/O parser of HTTP/1.x responses from a backend.

It turns bytes into calls on a sink (C{responseHead}, C{responseBody},
C{responseEnd}) and decides the body's framing by the rules of RFC 9112
section 6.3.  It never buffers a body: body bytes are handed on as they
arrive, so a response of any size passes through in constant memory.
"""

from __future__ import annotations

import re
from typing import List, Optional, Tuple

from zope.interface import Interface

Header = Tuple[bytes, bytes]

#: The largest response head (status line and headers) accepted.
MAX_HEAD_SIZE = 64 * 1024
#: The largest chunk-size line (with extensions) accepted.
MAX_CHUNK_LINE = 4096
#: The largest trailer section accepted (it is read and dropped).
MAX_TRAILER_SIZE = 16 * 1024

_TOKEN_CHARS = frozenset(
    b"!#$%&'*+-.^_`|~0123456789"
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
)
_HEX = frozenset(b"0123456789abcdefABCDEF")
#: The fields that decide a response's framing (L{_framing}): one set
#: test skips the others.
_FRAMING_FIELDS = frozenset([b"content-length", b"transfer-encoding", b"connection"])

#: Header field lines as nearly every backend sends them: a token, a
#: colon and a value without CR, LF or NUL, the lines separated by CRLF.
#: A header section that is all such lines is split in one pass; any other
#: (obsolete folding, bare LF, an error to report) is read line by line.
_PLAIN_FIELD_LINES = re.compile(
    rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n\x00]*"
    rb"(?:\r\n[!#$%&'*+\-.^_`|~0-9A-Za-z]+:[^\r\n\x00]*)*"
)


class ResponseParseError(Exception):
    """
    The backend sent something that is not a valid HTTP/1.x response; the
    connection cannot be trusted any further.
    """


class IResponseSink(Interface):
    """
    Receives the parts of a parsed response.
    """

    def responseHead(
        status: int, reason: bytes, headers: List[Header], length: Optional[int]
    ) -> None:
        """
        The final (non-1xx) response head.

        @param length: the body length when the body is framed by
            Content-Length (0 for responses that have no body), or L{None}
            when it is chunked or delimited by the connection closing.
        """

    def responseBody(data: bytes) -> None:
        """
        Some body bytes, already de-chunked.
        """

    def responseUpgraded(rest: bytes) -> None:
        """
        The backend switched protocols (101) as the request asked: from now
        on the connection carries raw bytes, starting with C{rest}.
        """

    def tunnelData(data: bytes) -> None:
        """
        Raw bytes on a connection that switched protocols.
        """

    def responseEnd(reusable: bool) -> None:
        """
        The response is complete.

        @param reusable: whether the connection may carry another request:
            the response allowed it and no stray bytes followed it.
        """


# Parser states.
_IDLE = 0
_HEAD = 1
_LENGTH = 2
_CHUNK_SIZE = 3
_CHUNK_DATA = 4
_CHUNK_CRLF = 5
_TRAILERS = 6
_UNTIL_CLOSE = 7
_TUNNEL = 8


def _find_head_end(buffer: bytes) -> Tuple[int, int]:
    """
    Where the head ends: the index of the blank line and the index just
    after it.  Bare LF line endings are accepted (RFC 9112 section 2.2).
    """
    crlf = buffer.find(b"\r\n\r\n")
    if crlf != -1:
        lf = buffer.find(b"\n\n", 0, crlf)
        if lf == -1:
            return crlf, crlf + 4
        return lf, lf + 2
    lf = buffer.find(b"\n\n")
    mixed = buffer.find(b"\n\r\n")
    if mixed != -1 and (lf == -1 or mixed < lf):
        return mixed, mixed + 3
    if lf != -1:
        return lf, lf + 2
    return -1, -1


def parse_head(head: bytes) -> Tuple[bytes, int, bytes, List[Header]]:
    """
    Parse a status line and header fields.

    Obsolete line folding is replaced by a space, as RFC 9112 section 5.2
    allows a proxy to do; whitespace between a field name and its colon is
    refused (section 5.1).

    @return: the version, status code, reason phrase and headers.
    @raise ResponseParseError: when the head is malformed.
    """
    status_line, _, fields = head.partition(b"\r\n")
    if b"\n" in status_line:
        status_line, _, fields = head.partition(b"\n")
        status_line = status_line.rstrip(b"\r")
    parts = status_line.split(b" ", 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/1."):
        raise ResponseParseError("invalid status line %r" % (status_line[:80],))
    code = parts[1]
    if len(code) != 3 or not code.isdigit():
        raise ResponseParseError("invalid status code %r" % (code[:10],))
    reason = parts[2] if len(parts) == 3 else b""
    if _PLAIN_FIELD_LINES.fullmatch(fields):
        # A loop rather than a comprehension over a generator: one frame
        # less to resume per line (about a third of this on CPython).
        headers = []
        for line in fields.split(b"\r\n"):
            name, _, value = line.partition(b":")
            headers.append((name, value.strip(b" \t")))
    else:
        headers = _parse_field_lines(fields)
    return parts[0], int(code), reason, headers


def _parse_field_lines(fields: bytes) -> List[Header]:
    """
    Parse header field lines one by one, unfolding obsolete line folding.

    @raise ResponseParseError: when a line is malformed.
    """
    headers: List[Header] = []
    for line in fields.split(b"\n"):
        line = line.rstrip(b"\r")
        if not line:
            continue
        if line[0] in b" \t":
            if not headers:
                raise ResponseParseError("continuation line before any header")
            name, value = headers[-1]
            headers[-1] = (name, value + b" " + line.strip(b" \t"))
            continue
        name, colon, value = line.partition(b":")
        if not colon or not name or not _TOKEN_CHARS.issuperset(name):
            raise ResponseParseError("invalid header line %r" % (line[:80],))
        value = value.strip(b" \t")
        if b"\x00" in value or b"\r" in value:
            raise ResponseParseError("invalid character in header %r" % (name,))
        headers.append((name, value))
    return headers


def _framing(
    version: bytes, status: int, headers: List[Header], head_request: bool
) -> Tuple[Optional[int], bool, bool]:
    """
    The body framing of a response (RFC 9112 section 6.3).

    @return: C{(length, chunked, keep_alive)}; C{length} is None for a
        chunked or close-delimited body.
    """
    content_lengths = []
    transfer_codings = []
    keep_alive = version == b"HTTP/1.1"
    for name, value in headers:
        lname = name.lower()
        if lname not in _FRAMING_FIELDS:
            continue
        if lname == b"content-length":
            if b"," in value:
                content_lengths.extend(v.strip() for v in value.split(b","))
            else:
                content_lengths.append(value.strip())
        elif lname == b"transfer-encoding":
            transfer_codings.extend(
                c.strip().lower() for c in value.split(b",") if c.strip()
            )
        else:
            # Connection.  Split only a value that has "close" in it
            # somewhere: most say "keep-alive".
            lvalue = value.lower()
            if b"close" in lvalue and b"close" in (
                t.strip() for t in lvalue.split(b",")
            ):
                keep_alive = False
    if head_request or status in (204, 304) or 100 <= status < 200:
        return 0, False, keep_alive
    if transfer_codings:
        # Transfer-Encoding overrides Content-Length, and a message that has
        # both may be an attempt at smuggling: never reuse the connection.
        keep_alive = keep_alive and not content_lengths
        if transfer_codings[-1] == b"chunked":
            return None, True, keep_alive
        return None, False, False
    if content_lengths:
        if (
            len(content_lengths) != 1 and len(set(content_lengths)) != 1
        ) or not content_lengths[0].isdigit():
            raise ResponseParseError("invalid Content-Length")
        return int(content_lengths[0]), False, keep_alive
    return None, False, False


class ResponseParser:
    """
    Parses one response after another from a backend connection.

    Call L{expect} before each response, then L{feed} with bytes as they
    arrive and L{feed_eof} when the connection closes.
    """

    def __init__(self, sink: IResponseSink) -> None:
        self._sink = sink
        self._state = _IDLE
        self._buffer = b""
        self._remaining = 0
        self._head_request = False
        self._upgrade = False
        self._keep_alive = False
        self._trailer_size = 0

    @property
    def idle(self) -> bool:
        """
        Whether no response is expected or under way.
        """
        return self._state == _IDLE

    @property
    def started(self) -> bool:
        """
        Whether bytes of the expected response (or more) have arrived.
        """
        return self._state != _HEAD or bool(self._buffer)

    def expect(self, head_request: bool, upgrade: bool = False) -> None:
        """
        Prepare for the response to a request just sent.

        @param head_request: whether the request was HEAD, whose response
            has no body whatever its headers say.
        @param upgrade: whether the request asked to switch protocols, so
            that a 101 answer is acceptable.
        """
        self._head_request = head_request
        self._upgrade = upgrade
        self._state = _HEAD

    def feed(self, data: bytes) -> None:
        """
        Parse some bytes from the connection.

        @raise ResponseParseError: when the backend breaks the protocol,
            including bytes that arrive when no response is expected.
        """
        if self._buffer:
            data = self._buffer + data
            self._buffer = b""
        while data:
            state = self._state
            if state == _LENGTH:
                remaining = self._remaining
                if len(data) < remaining:
                    self._remaining = remaining - len(data)
                    self._sink.responseBody(data)
                    return
                body, data = data[:remaining], data[remaining:]
                if body:
                    self._sink.responseBody(body)
                self._finish(data)
            elif state == _HEAD:
                data = self._parse_head(data)
            elif state == _CHUNK_DATA:
                remaining = self._remaining
                if len(data) <= remaining:
                    self._remaining = remaining - len(data)
                    if self._remaining == 0:
                        self._state = _CHUNK_CRLF
                    self._sink.responseBody(data)
                    return
                body, data = data[:remaining], data[remaining:]
                self._state = _CHUNK_CRLF
                self._sink.responseBody(body)
            elif state == _CHUNK_SIZE:
                data = self._parse_chunk_size(data)
            elif state == _CHUNK_CRLF:
                if data.startswith(b"\r\n"):
                    data = data[2:]
                elif data.startswith(b"\n"):
                    data = data[1:]
                elif data == b"\r":
                    self._buffer = data
                    return
                else:
                    raise ResponseParseError("chunk data not followed by CRLF")
                self._state = _CHUNK_SIZE
            elif state == _TRAILERS:
                data = self._parse_trailers(data)
            elif state == _UNTIL_CLOSE:
                self._sink.responseBody(data)
                return
            elif state == _TUNNEL:
                self._sink.tunnelData(data)
                return
            else:
                raise ResponseParseError("data received when no response was due")

    def feed_eof(self) -> bool:
        """
        The connection closed.

        @return: C{True} when that completed a close-delimited response;
            C{False} when the response was cut short (or none was expected).
        """
        if self._state == _UNTIL_CLOSE:
            self._state = _IDLE
            self._sink.responseEnd(False)
            return True
        return False

    def _finish(self, rest: bytes) -> None:
        """
        The response is complete.  Bytes after it (C{rest}) are a protocol
        error that the caller's loop will raise; they also make the
        connection unusable, which the sink learns first, so that it can
        pool a clean connection before anything else happens.
        """
        self._state = _IDLE
        self._sink.responseEnd(self._keep_alive and not rest)

    def _parse_head(self, data: bytes) -> bytes:
        # Where the head ends, as _find_head_end says, without its call for
        # a head of CRLF lines (nearly every one).
        end = data.find(b"\r\n\r\n")
        if end != -1 and data.find(b"\n\n", 0, end) == -1:
            after = end + 4
        else:
            end, after = _find_head_end(data)
        if end == -1:
            if len(data) > MAX_HEAD_SIZE:
                raise ResponseParseError("response head too large")
            self._buffer = data
            return b""
        if end > MAX_HEAD_SIZE:
            raise ResponseParseError("response head too large")
        # A response may be preceded by empty lines; skip them.
        head = data[:end].lstrip(b"\r\n")
        rest = data[after:]
        if not head:
            return rest
        version, status, reason, headers = parse_head(head)
        if status < 200:
            if status == 101:
                if not self._upgrade:
                    raise ResponseParseError("unexpected 101 Switching Protocols")
                self._state = _TUNNEL
                self._sink.responseHead(status, reason, headers, 0)
                self._sink.responseUpgraded(rest)
                return b""
            # Interim responses (100 Continue, 103 Early Hints) are dropped:
            # the proxy answered Expect itself.
            return rest
        length, chunked, keep_alive = _framing(
            version, status, headers, self._head_request
        )
        self._keep_alive = keep_alive
        self._sink.responseHead(status, reason, headers, length)
        if chunked:
            self._state = _CHUNK_SIZE
        elif length is None:
            self._state = _UNTIL_CLOSE
        elif length == 0:
            self._finish(rest)
        else:
            self._remaining = length
            self._state = _LENGTH
        return rest

    def _parse_chunk_size(self, data: bytes) -> bytes:
        newline = data.find(b"\n")
        if newline == -1:
            if len(data) > MAX_CHUNK_LINE:
                raise ResponseParseError("chunk size line too long")
            self._buffer = data
            return b""
        line = data[:newline].rstrip(b"\r")
        size_text = line.split(b";", 1)[0].strip(b" \t")
        if not size_text or not _HEX.issuperset(size_text) or len(size_text) > 16:
            raise ResponseParseError("invalid chunk size %r" % (line[:40],))
        size = int(size_text, 16)
        if size == 0:
            self._state = _TRAILERS
            self._trailer_size = 0
        else:
            self._remaining = size
            self._state = _CHUNK_DATA
        return data[newline + 1 :]

    def _parse_trailers(self, data: bytes) -> bytes:
        while True:
            newline = data.find(b"\n")
            if newline == -1:
                self._trailer_size += len(data)
                if self._trailer_size > MAX_TRAILER_SIZE:
                    raise ResponseParseError("trailer section too large")
                self._buffer = data
                return b""
            line = data[:newline].rstrip(b"\r")
            data = data[newline + 1 :]
            if not line:
                self._finish(data)
                return data
            self._trailer_size += len(line)
            if self._trailer_size > MAX_TRAILER_SIZE:
                raise ResponseParseError("trailer section too large")
