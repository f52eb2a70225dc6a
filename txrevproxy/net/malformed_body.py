"""
How a request's body decoder tells Twisted's HTTP channel that the body is
malformed.

L{twisted.web.http.HTTPChannel} feeds the bytes of a request body to its
transfer decoder, and answers 400 Bad Request and closes the connection
when the decoder raises Twisted's private C{_MalformedChunkedDataError};
any other error escapes the protocol, and the connection is dropped
without an answer.  A decoder of the proxy's own, given to the channel in
Twisted's decoder's place, raises an error that is also a
L{BadRequestBody}, so that the channel answers it as it answers its own.
"""

from __future__ import annotations

from twisted.web.http import _MalformedChunkedDataError

TWISTED_PRIVATE = ("twisted.web.http._MalformedChunkedDataError",)

#: The error a transfer decoder raises for a malformed request body, which
#: Twisted's channel answers with 400 Bad Request.
BadRequestBody = _MalformedChunkedDataError
