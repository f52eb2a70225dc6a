"""
The access log: one line per request, in the Apache/nginx C{combined}
format or as one JSON object per line.

A line is formatted from parts the request already holds (the date part
is worked out once a second), appended to a buffer, and the buffer is
written by a timer once a second (or when it grows past L{FLUSH_SIZE}):
no log observer, no file write per request.  C{reopen} (on SIGUSR1)
opens the file again after logrotate moved it.
"""

from __future__ import annotations

import json
import os
import re
import time
from typing import Callable, List, Optional

from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from ..config.model import LogSettings

#: Buffered bytes beyond which the buffer is written at once.
FLUSH_SIZE = 64 * 1024

#: Seconds between writes of the buffer.
FLUSH_INTERVAL = 1.0

_MONTHS = (
    "Jan", "Feb", "Mar", "Apr", "May", "Jun",
    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
)

#: What nginx escapes in a combined line: quotes, backslashes, and bytes
#: that are not printable ASCII.
_UNSAFE = re.compile(rb'["\\\x00-\x1f\x7f-\xff]')


def _escape(value: bytes) -> bytes:
    if _UNSAFE.search(value) is None:
        return value
    return _UNSAFE.sub(lambda match: b"\\x%02X" % (match.group()[0],), value)


def _header(request, name: bytes) -> Optional[bytes]:
    values = request.requestHeaders.getRawHeaders(name)
    return None if not values else values[0]


def _text(value: Optional[bytes]) -> Optional[str]:
    return None if value is None else value.decode("utf-8", "backslashreplace")


def logged_target(request) -> bytes:
    """
    A request's target as logs write it: with the secret a filter found in
    it hidden (see C{logged_uri} of L{txrevproxy.server.request.ProxyRequest};
    a plain Twisted request has none).
    """
    return getattr(request, "logged_uri", None) or request.uri


def combined_line(request, date: bytes, duration, upstream, route, worker) -> bytes:
    """
    The Apache/nginx C{combined} line: client, identity and user (always
    C{-}), date, request line, status, body bytes (C{-} for none),
    referer, user agent; then C{timeout=KIND} when a timeout ended the
    request (see L{txrevproxy.upstream.deadlines}) and C{trace=ID} when
    tracing is on (see L{txrevproxy.observe.tracing}), which tools that
    read the combined format ignore as trailing fields.

    It reads what it says from the request and nothing more (not the
    duration, upstream, route or worker a JSON line has): this is the
    default format, written for every request.
    """
    headers = request.requestHeaders
    referer = headers.getRawHeaders(b"referer")
    user_agent = headers.getRawHeaders(b"user-agent")
    sent = request.sentLength
    line = b'%s - - [%s] "%s %s %s" %d %s "%s" "%s"' % (
        request.connection.client_ip,
        date,
        _escape(request.method),
        _escape(logged_target(request)),
        request.clientproto,
        request.code,
        b"%d" % (sent,) if sent else b"-",
        _escape(referer[0]) if referer else b"-",
        _escape(user_agent[0]) if user_agent else b"-",
    )
    if request.timed_out is not None:
        line += b" timeout=%s" % (request.timed_out.encode("ascii"),)
    if request.trace is not None:
        line += b" trace=%s" % (request.trace.trace_id_text().encode("ascii"),)
    return line + b"\n"


def json_line(request, date: bytes, duration, upstream, route, worker) -> bytes:
    """
    One JSON object, on one line: the request line's parts (C{uri} as
    sent, and its C{path} and C{query} apart), the C{host} asked for, the
    C{route} (its label) and C{upstream} that took it, the C{backend} that
    answered, the client's address and TLS version, the status, the body
    bytes both ways, the C{duration}, the request id, the user agent and
    referer, the timeout that ended it; with C{[server] workers}, the
    C{worker} that served it.  C{trace_id} is L{None} unless tracing is
    on.

    The client's facts come from C{request.connection}, which the request
    keeps from its start: a request logged because its client went has no
    channel any more.
    """
    connection = request.connection
    target = logged_target(request)
    path, mark, query = target.partition(b"?")
    backend = request.backend
    trace = request.trace
    document = {
        "time": date.decode("ascii"),
        "client": connection.client_ip.decode("ascii"),
        "method": _text(request.method),
        "path": _text(path),
        "query": _text(query) if mark else None,
        "uri": _text(target),
        "host": _text(_header(request, b"host")),
        "route": route,
        "protocol": request.clientproto.decode("ascii", "replace"),
        "status": request.code,
        "bytes": request.sentLength,
        "received": request.bodyBytes,
        "duration": round(duration, 6),
        "upstream": upstream,
        "backend": None if backend is None else backend.server.url,
        "request_id": _text(request.request_id),
        "tls": connection.tls_version,
        "user_agent": _text(_header(request, b"user-agent")),
        "referer": _text(_header(request, b"referer")),
        "timeout": request.timed_out,
        "trace_id": None if trace is None else trace.trace_id_text(),
    }
    if worker is not None:
        document["worker"] = worker
    return json.dumps(document, separators=(",", ":")).encode("utf-8") + b"\n"


def combined_date(seconds: int) -> bytes:
    """
    C{10/Oct/2026:13:55:36 +0000}: the date of a combined line, in UTC.
    """
    t = time.gmtime(seconds)
    return b"%02d/%s/%04d:%02d:%02d:%02d +0000" % (
        t.tm_mday, _MONTHS[t.tm_mon - 1].encode("ascii"), t.tm_year,
        t.tm_hour, t.tm_min, t.tm_sec,
    )


def iso_date(seconds: int) -> bytes:
    """
    C{2026-10-10T13:55:36Z}: the time of a JSON line, in UTC.
    """
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds)).encode("ascii")


#: Each format's line maker and date maker.
FORMATS = {
    "combined": (combined_line, combined_date),
    "json": (json_line, iso_date),
}


def _append(path: str) -> int:
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


class AccessLog:
    """
    Lines buffered in memory and written once a second to standard output
    (C{access = "-"}) or a file opened for appending.

    One object serves the whole life of the process: a reload that changes
    the C{[log]} table L{configure}s it again, and requests still in flight
    on the old configuration are written with the new settings.

    @ivar path: C{"-"}, the file's path, or L{None} when off.
    @param opener: opens a path for appending and returns a file
        descriptor (tests pass another).
    @param worker: the index of the worker process it logs for, which
        JSON lines carry; L{None} in a single process.
    """

    log = Logger()

    def __init__(
        self,
        clock,
        opener: Callable[[str], int] = _append,
        worker: Optional[int] = None,
    ) -> None:
        self._clock = clock
        self._opener = opener
        self._worker = worker
        self.path: Optional[str] = None
        self.format = ""
        self._fd: Optional[int] = None
        self._buffer: List[bytes] = []
        self._size = 0
        self._second = -1
        self._date = b""
        self._flusher: Optional[LoopingCall] = None

    def configure(self, settings: LogSettings) -> None:
        """
        Write lines to C{settings.access} in C{settings.format} from now
        on; what is buffered goes where it was meant to first.

        @raise OSError: the file cannot be opened; nothing changes.
        """
        if (settings.access, settings.format) == (self.path, self.format):
            return
        fd = None
        if settings.access not in (None, "-"):
            fd = self._opener(settings.access)
        elif settings.access == "-":
            fd = 1
        self.flush()
        self._close()
        self.path, self.format, self._fd = settings.access, settings.format, fd
        self._line, self._date_of = FORMATS[settings.format]
        self._second = -1

    def start(self) -> None:
        """
        Start the timer that writes the buffer.
        """
        self._flusher = LoopingCall(self.flush)
        self._flusher.clock = self._clock
        self._flusher.start(FLUSH_INTERVAL, now=False)

    def stop(self) -> None:
        """
        Write what is buffered, stop the timer, close the file.
        """
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        self._flusher = None
        self.flush()
        self._close()
        self._fd = None

    def _close(self) -> None:
        if self._fd not in (None, 1):
            os.close(self._fd)

    def reopen(self) -> None:
        """
        Open the file again under its name (after logrotate renamed it);
        what is buffered goes to the old file first.
        """
        self.flush()
        if self._fd in (None, 1):
            return
        try:
            fd = self._opener(self.path)
        except OSError as error:
            self.log.error(
                "log.access: cannot open {path} again: {error}; still writing "
                "to the old file",
                path=self.path,
                error=error.strerror or error,
            )
            return
        os.close(self._fd)
        self._fd = fd

    def record(
        self,
        request,
        duration: float,
        upstream: Optional[str],
        route: Optional[str] = None,
    ) -> None:
        """
        Add the line of a finished request (nothing when the log is off).

        @param duration: seconds from its head to the end of its response.
        @param upstream: the upstream of its route, if any.
        @param route: the label of its route, if one took it.
        """
        if self._fd is None:
            return
        now = int(self._clock.seconds())
        if now != self._second:
            self._second = now
            self._date = self._date_of(now)
        line = self._line(request, self._date, duration, upstream, route, self._worker)
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= FLUSH_SIZE:
            self.flush()

    def flush(self) -> None:
        """
        Write the buffered lines.
        """
        if not self._buffer or self._fd is None:
            return
        data = b"".join(self._buffer)
        self._buffer = []
        self._size = 0
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view):]
        except OSError as error:
            self.log.error(
                "log.access: cannot write to {path}: {error}; {lost} bytes lost",
                path=self.path,
                error=error.strerror or error,
                lost=len(view),
            )
