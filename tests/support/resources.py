"""
Resources that record what reached them.
"""

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txrevproxy.server.answers import respond_with_error


class Recorder(Resource):
    """
    A leaf that becomes the body handler of each request it renders and
    records what reaches it.
    """

    isLeaf = True

    def __init__(self, answer_at_once=None):
        super().__init__()
        self.requests = []
        self.events = []
        self.answer_at_once = answer_at_once

    def render(self, request):
        self.requests.append(request)
        if self.answer_at_once:
            respond_with_error(request, self.answer_at_once)
            return NOT_DONE_YET
        request.handler = self
        return NOT_DONE_YET

    def bodyReceived(self, data):
        self.events.append(("body", data))

    def bodyFinished(self):
        self.events.append("finished")

    def bodyTooLarge(self):
        self.events.append("too large")

    def clientGone(self):
        self.events.append("gone")
