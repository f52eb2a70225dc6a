"""
Status texts: the reason phrase of each status code, as RFC 9110 names it.
"""

from __future__ import annotations

from twisted.web.http import RESPONSES

#: Reason phrases of RFC 9110 where they differ from Twisted's older ones.
_REASONS = {
    413: b"Content Too Large",
    414: b"URI Too Long",
    421: b"Misdirected Request",
    422: b"Unprocessable Content",
    429: b"Too Many Requests",
    431: b"Request Header Fields Too Large",
    504: b"Gateway Timeout",
    505: b"HTTP Version Not Supported",
}


def reason_phrase(code: int) -> bytes:
    """
    The RFC 9110 reason phrase of a status code.
    """
    return _REASONS.get(code) or RESPONSES.get(code, b"Error")
