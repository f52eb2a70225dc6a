"""
W3C Trace Context (U{https://www.w3.org/TR/trace-context/}): reading the
C{traceparent} a client sent, writing the one a backend gets, and passing
C{tracestate} on.

Plain functions on header values, so that the rules of the specification
are tested without a reactor and without the OpenTelemetry SDK, which the
proxy loads only when tracing is on.
"""

from __future__ import annotations

import re
from typing import List, Optional, Sequence, Tuple

import attr

Header = Tuple[bytes, bytes]

TRACEPARENT = b"traceparent"
TRACESTATE = b"tracestate"

#: The C{sampled} bit of C{trace-flags}: the caller may have recorded its
#: span, and asks the callee to record too.
SAMPLED = 0x01

#: The most C{tracestate} list members passed on (section 3.3.1.1: a
#: vendor may drop the members past 32).
MAX_TRACESTATE_MEMBERS = 32

#: C{version-format} of version 00 (section 3.2.2): lower-case hex only.
#: A later version keeps these four fields first and may append fields
#: after another C{-} (section 3.2.4), which a version-00 reader ignores.
_TRACEPARENT = re.compile(
    rb"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x21-\x7e]*)?\Z"
)


@attr.s(frozen=True, slots=True, auto_attribs=True)
class TraceParent:
    """
    A valid C{traceparent}.

    @ivar trace_id: the trace's ID, a non-zero 128-bit integer.
    @ivar span_id: the caller's span (C{parent-id}), a non-zero 64-bit
        integer.
    @ivar flags: C{trace-flags}; only L{SAMPLED} means anything in
        version 00.
    """

    trace_id: int
    span_id: int
    flags: int

    @property
    def sampled(self) -> bool:
        return bool(self.flags & SAMPLED)


def parse_traceparent(values: Optional[Sequence[bytes]]) -> Optional[TraceParent]:
    """
    The C{traceparent} of a request's field values, or L{None} when there
    is none or it is invalid (section 3.2.2 and 4.3: the receiver then
    starts a new trace): not exactly one field, upper-case hex, a version
    of C{ff}, a version 00 value with anything after its flags, or an
    all-zero trace or parent ID.  Spaces and tabs around the value are
    ignored, as around any field value.
    """
    if not values or len(values) != 1:
        return None
    match = _TRACEPARENT.match(values[0].strip(b" \t"))
    if match is None:
        return None
    version, trace, parent, flags, rest = match.groups()
    if version == b"ff" or (version == b"00" and rest is not None):
        return None
    trace_id = int(trace, 16)
    span_id = int(parent, 16)
    if not trace_id or not span_id:
        return None
    return TraceParent(trace_id, span_id, int(flags, 16))


def format_traceparent(trace_id: int, span_id: int, sampled: bool) -> bytes:
    """
    A version 00 C{traceparent} naming C{span_id} as the parent of whoever
    receives it.
    """
    return b"00-%032x-%016x-%02x" % (trace_id, span_id, SAMPLED if sampled else 0)


def trace_id_text(trace_id: int) -> str:
    """
    A trace ID as a trace viewer and a C{traceparent} show it: 32
    lower-case hex digits.
    """
    return "%032x" % (trace_id,)


def parse_tracestate(values: Optional[Sequence[bytes]]) -> Optional[bytes]:
    """
    The C{tracestate} to pass on: the list members of every field, in
    order, as they were (each vendor reads its own), empty members
    dropped, at most L{MAX_TRACESTATE_MEMBERS}; L{None} when there are
    none.
    """
    if not values:
        return None
    members = [
        member
        for member in (part.strip(b" \t") for part in b",".join(values).split(b","))
        if member
    ]
    if not members:
        return None
    return b",".join(members[:MAX_TRACESTATE_MEMBERS])


def with_trace_context(
    headers: List[Header], traceparent: bytes, tracestate: Optional[bytes]
) -> List[Header]:
    """
    C{headers} with the C{traceparent} and C{tracestate} fields replaced by
    these (a client's own never reaches the backend beside the proxy's).
    """
    out = [
        (name, value)
        for name, value in headers
        if name.lower() not in (TRACEPARENT, TRACESTATE)
    ]
    out.append((b"traceparent", traceparent))
    if tracestate is not None:
        out.append((b"tracestate", tracestate))
    return out
