"""
RESP2, the Redis serialization protocol, over one connection: commands
are written as they come (pipelined), and each reply fires the oldest
waiting L{Deferred}, since Redis answers in order.

The parser is sans-I/O (L{parse_reply}); L{RedisProtocol} only moves
bytes.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Deque, Sequence, Tuple, Union

from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectionClosed, ConnectionLost
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure

Argument = Union[bytes, str, int, float]

#: A reply whose parse needs more bytes.
INCOMPLETE = object()

#: The longest reply line (a simple string, error or length) accepted.
MAX_LINE = 64 * 1024


class RedisError(Exception):
    """
    The server answered a command with an error (C{-ERR ...}); the
    message is the error line.
    """


class ProtocolError(Exception):
    """
    The server sent something that is not RESP2: the connection is no
    longer usable.
    """


def encode_command(arguments: Sequence[Argument]) -> bytes:
    """
    A command as a RESP array of bulk strings.
    """
    parts = [b"*%d\r\n" % (len(arguments),)]
    for argument in arguments:
        if isinstance(argument, str):
            argument = argument.encode("utf-8")
        elif not isinstance(argument, bytes):
            argument = repr(argument).encode("ascii")
        parts.append(b"$%d\r\n%s\r\n" % (len(argument), argument))
    return b"".join(parts)


def parse_reply(data: bytes, start: int = 0) -> Tuple[Any, int]:
    """
    Parse one reply from C{data} at C{start}.

    @return: the reply (L{bytes}, L{int}, L{None}, a L{list}, or a
        L{RedisError} instance for an error reply) and the offset after
        it; or L{INCOMPLETE} and C{start} when C{data} ends first.
    @raise ProtocolError: for bytes that are not RESP2.
    """
    end = data.find(b"\r\n", start)
    if end < 0:
        if len(data) - start > MAX_LINE:
            raise ProtocolError("reply line too long")
        return INCOMPLETE, start
    kind, line, after = data[start : start + 1], data[start + 1 : end], end + 2
    if kind == b"+":
        return line, after
    if kind == b"-":
        return RedisError(line.decode("utf-8", "replace")), after
    try:
        number = int(line)
    except ValueError:
        raise ProtocolError("not a number: %r" % (line[:40],))
    if kind == b":":
        return number, after
    if kind == b"$":
        if number < 0:
            return None, after
        if len(data) < after + number + 2:
            return INCOMPLETE, start
        return data[after : after + number], after + number + 2
    if kind == b"*":
        if number < 0:
            return None, after
        items = []
        for _ in range(number):
            item, after = parse_reply(data, after)
            if item is INCOMPLETE:
                return INCOMPLETE, start
            items.append(item)
        return items, after
    raise ProtocolError("unknown reply type %r" % (kind,))


class RedisProtocol(Protocol):
    """
    One connection to a Redis server.

    @ivar pending: the L{Deferred}s of the commands sent and not yet
        answered, oldest first.
    @ivar lost: the reason the connection was lost, once it was.
    """

    def __init__(self) -> None:
        self.pending: Deque[Deferred] = deque()
        self._unparsed = b""
        self.lost: Failure = None  # type: ignore[assignment]

    def execute(self, *arguments: Argument) -> Deferred:
        """
        Send a command.

        @return: a L{Deferred} that fires with the reply, or fails with
            L{RedisError} for an error reply or L{ConnectionClosed} when
            the connection is lost first.  Cancelling it only stops the
            caller waiting: the reply, when it comes, is dropped.
        """
        if self.lost is not None:
            return fail(self.lost)
        waiting: Deferred = Deferred()
        self.pending.append(waiting)
        self.transport.write(encode_command(arguments))
        return waiting

    def dataReceived(self, data: bytes) -> None:
        buffer = self._unparsed + data if self._unparsed else data
        offset = 0
        try:
            while offset < len(buffer):
                reply, offset = parse_reply(buffer, offset)
                if reply is INCOMPLETE:
                    break
                self._reply(reply)
        except ProtocolError:
            self._unparsed = b""
            self.transport.abortConnection()
            return
        self._unparsed = buffer[offset:]

    def _reply(self, reply: Any) -> None:
        if not self.pending:
            # Nothing asked for it (RESP2 has no pushes outside pub/sub).
            self.transport.abortConnection()
            return
        waiting = self.pending.popleft()
        if waiting.called:
            return  # cancelled: the caller stopped waiting.
        if isinstance(reply, RedisError):
            waiting.errback(reply)
        else:
            waiting.callback(reply)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if reason is None or not reason.check(ConnectionClosed):
            reason = Failure(ConnectionLost("connection to Redis lost"))
        self.lost = reason
        pending, self.pending = self.pending, deque()
        for waiting in pending:
            if not waiting.called:
                waiting.errback(reason)
