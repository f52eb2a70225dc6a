"""
The word the error log gives for why a backend request failed (see
C{ProxyRequest.error_cause}): what an operator greps for, and what tells
a dead backend (C{refused}) from a slow one (C{connect_timeout}) or a
broken one (C{reset}).
"""

from __future__ import annotations

from h2.exceptions import ProtocolError as HTTP2ProtocolError
from OpenSSL.SSL import Error as TLSError
from twisted.internet import error
from twisted.python.failure import Failure

from ..http.response_parser import ResponseParseError
from ..upstream.balancer import NoBackendAvailable
from ..upstream.h2connection import NoHTTP2, NotProcessed, StreamReset

#: Failures and their cause, the most particular first (a refused
#: connection is also a connect error).
_CAUSES = (
    (NoBackendAvailable, "no_backend"),
    (error.TimeoutError, "connect_timeout"),
    (error.ConnectionRefusedError, "refused"),
    (error.DNSLookupError, "dns"),
    (TLSError, "tls"),
    ((ResponseParseError, HTTP2ProtocolError, NoHTTP2), "bad_response"),
    (
        (
            StreamReset,
            NotProcessed,
            error.ConnectionLost,
            error.ConnectionDone,
            error.ConnectionAborted,
            ConnectionResetError,
        ),
        "reset",
    ),
    (error.ConnectError, "connect_failed"),
)


def failure_cause(reason: Failure) -> str:
    """
    The cause word of a backend failure: C{no_backend}, C{connect_timeout},
    C{refused}, C{dns}, C{tls}, C{bad_response}, C{reset},
    C{connect_failed}, else C{error}.
    """
    for kinds, cause in _CAUSES:
        if reason.check(*(kinds if isinstance(kinds, tuple) else (kinds,))):
            return cause
    return "error"
