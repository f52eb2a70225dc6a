"""
HTTP-01 (RFC 8555 section 8.3): on a listener without TLS, a request for
C{/.well-known/acme-challenge/TOKEN} of a pending challenge is answered
with its key authorization before anything else (routes, the listener's
filters, its redirect to HTTPS) sees it.
"""

from __future__ import annotations

from typing import Sequence

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from ..server.answers import send_answer
from ..tls.acme.answers import http01_answer
from ..tls.acme.storage import Storage


class AcmeChallenges(Resource):
    """
    The root of a listener without TLS when some C{[tls.NAME]} table has
    C{acme}: answers the pending HTTP-01 challenges of their storages,
    and lets C{resource} answer every other request.
    """

    isLeaf = True

    def __init__(self, storages: Sequence[Storage], resource) -> None:
        super().__init__()
        self._storages = tuple(storages)
        self.resource = resource

    def render(self, request):
        if request.method in (b"GET", b"HEAD"):
            answer = http01_answer(self._storages, request.path)
            if answer is not None:
                send_answer(
                    request, 200, answer, [(b"Content-Type", b"application/octet-stream")]
                )
                return NOT_DONE_YET
        request.renderLeaf(self.resource)
        return NOT_DONE_YET
