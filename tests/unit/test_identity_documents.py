"""
Unit tests of the identity provider's documents fetched in the background
(L{txrevproxy.filters.documents}): on a L{Clock}, with treq's StubTreq
serving a resource in memory.
"""

from __future__ import annotations

import json

from treq.testing import StubTreq
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txrevproxy.filters.documents import WAIT_TIMEOUT, RemoteDocument, SharedDocuments

URL = "http://idp.test/jwks"


class Counting(Resource):
    isLeaf = True

    def __init__(self):
        super().__init__()
        self.fetches = 0
        self.status = 200
        self.held = None

    def render(self, request):
        self.fetches += 1
        request.setResponseCode(self.status)
        body = json.dumps({"keys": [], "n": self.fetches}).encode()
        if self.held is None:
            return body
        self.held.append((request, body))
        return NOT_DONE_YET

    def release(self):
        for request, body in self.held:
            request.write(body)
            request.finish()
        self.held = None


def remote():
    clock = Clock()
    resource = Counting()
    stub = StubTreq(resource)
    document = RemoteDocument(URL, clock, refresh=600, min_refresh=30, http=stub)
    document.start()
    stub.flush()
    return clock, resource, stub, document


def test_fetched_at_start_then_every_refresh():
    clock, resource, stub, document = remote()
    assert document.document == {"keys": [], "n": 1}
    clock.advance(599)
    stub.flush()
    assert resource.fetches == 1
    clock.advance(1)
    stub.flush()
    assert document.document["n"] == 2 and document.version == 2


def test_asking_for_newer_fetches_at_most_once_per_min_refresh():
    clock, resource, stub, document = remote()
    first, second = document.newer(), document.newer()
    stub.flush()
    assert resource.fetches == 2
    assert [first.result["n"], second.result["n"]] == [2, 2]
    third = document.newer()
    assert third.result["n"] == 2 and resource.fetches == 2
    clock.advance(30)
    document.newer()
    stub.flush()
    assert resource.fetches == 3


def test_failed_fetch_keeps_the_last_document_and_retries_sooner():
    clock, resource, stub, document = remote()
    resource.status = 500
    clock.advance(600)
    stub.flush()
    assert resource.fetches == 2 and document.document["n"] == 1
    resource.status = 200
    clock.advance(30)
    stub.flush()
    assert document.document["n"] == 3


def test_stopped_document_answers_waiters_and_fetches_no_more():
    clock, resource, stub, document = remote()
    document.stop()
    assert document.newer().result["n"] == 1
    clock.advance(3600)
    stub.flush()
    assert resource.fetches == 1


def test_shared_documents_hand_the_same_copy_to_a_reload():
    reactor = MemoryReactorClock()
    shared = SharedDocuments()
    first = shared.acquire(reactor, URL, 600, 30)
    second = shared.acquire(reactor, URL, 300, 10)
    assert first is second and first.refresh == 300
    assert len(reactor.tcpClients) == 1
    assert shared.release(reactor, first) is None
    shared.release(reactor, second)
    assert shared.acquire(reactor, URL, 600, 30) is not first


def test_a_request_waits_for_a_slow_fetch_only_so_long():
    clock, resource, stub, document = remote()
    resource.held = []
    waiting = document.newer()
    stub.flush()
    clock.advance(WAIT_TIMEOUT)
    assert waiting.result["n"] == 1
    resource.release()
    stub.flush()
    assert document.document["n"] == 2
