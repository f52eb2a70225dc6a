"""
JSON documents of an identity provider (a JWK Set, an OpenID Connect
discovery document), fetched in the background and shared.

A request never waits for a fetch of its own: a document is fetched when
the first filter that needs it is made, then again every C{refresh}; a
filter that finds it lacking (a token signed by a key it does not hold
yet) asks for a newer one with L{RemoteDocument.newer}, which waits on the
fetch in flight or starts one, but starts at most one per C{min_refresh}
however many requests ask, so a client sending made-up key IDs cannot
make the proxy hammer the provider.

Documents are kept in L{DOCUMENTS} by reactor and URL, with a count of
the filters using them: a reload makes the new filters before it closes
the old ones, so the new runtime gets the same document, already fetched.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional, Tuple

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

from .forward_auth import read_bounded

#: The longest a fetch may take.
FETCH_TIMEOUT = 10.0

#: The longest a request waits for a fetch it asked for; the fetch goes
#: on, and later requests get its result.
WAIT_TIMEOUT = 3.0

#: The largest document read.
MAX_DOCUMENT = 1024 * 1024


def service_client(reactor):
    """
    A treq client with its own pool of kept-alive connections, for calls
    to an identity provider.

    @return: the client and the pool (to close).
    """
    from treq.client import HTTPClient
    from twisted.web.client import Agent, HTTPConnectionPool

    pool = HTTPConnectionPool(reactor, persistent=True)
    return HTTPClient(Agent(reactor, pool=pool)), pool


def json_object(body: bytes) -> Dict[str, Any]:
    """
    The JSON object of a body.

    @raise ValueError: for a body that is no JSON object.
    """
    document = json.loads(body)
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


def read_json(response) -> Deferred:
    """
    The JSON object of a response's body (up to L{MAX_DOCUMENT} bytes),
    or a L{ValueError} through the L{Deferred}.
    """
    return read_bounded(response, MAX_DOCUMENT).addCallback(json_object)


class RemoteDocument:
    """
    A JSON document at a URL, fetched again every C{refresh} (after a
    failed fetch, every C{min_refresh}), the last good copy kept.

    @ivar document: the last document fetched, or L{None} before any.
    @ivar version: counts the documents fetched, so a user can tell a new
        one and convert it once.
    """

    log = Logger()

    def __init__(
        self, url: str, reactor, refresh: float, min_refresh: float, http=None
    ) -> None:
        """
        @param http: the treq client to fetch with; by default one of its
            own (L{service_client}).
        """
        self.url = url
        self.refresh = refresh
        self.min_refresh = min_refresh
        self.document: Optional[Dict[str, Any]] = None
        self.version = 0
        self._reactor = reactor
        self._http, self._pool = (
            service_client(reactor) if http is None else (http, None)
        )
        self._asked_at: Optional[float] = None
        self._inflight: Optional[Deferred] = None
        self._waiting: List[Deferred] = []
        self._next = None
        self._stopped = False

    def start(self) -> None:
        self._fetch()

    def newer(self) -> Deferred:
        """
        Wait for a newer copy than the one held: the fetch in flight, or a
        new one unless the last one asked for began less than
        C{min_refresh} ago (the fetches every C{refresh} do not count).

        @return: a L{Deferred} firing with the document then held (maybe
            the same, or L{None}), after L{WAIT_TIMEOUT} at the latest; it
            never fails.
        """
        if self._stopped:
            return succeed(self.document)
        now = self._reactor.seconds()
        if self._inflight is None:
            asked = self._asked_at
            if asked is not None and now - asked < self.min_refresh:
                return succeed(self.document)
            self._asked_at = now
        waiting: Deferred = Deferred()
        self._waiting.append(waiting)
        self._fetch()
        if not waiting.called:
            waiting.addTimeout(
                WAIT_TIMEOUT,
                self._reactor,
                onTimeoutCancel=lambda result, timeout: self.document,
            )
        return waiting

    def _fetch(self) -> None:
        if self._inflight is not None or self._stopped:
            return
        if self._next is not None and self._next.active():
            self._next.cancel()
        self._next = None
        # In flight before any callback can run: a fetch that fails at
        # once must find itself to end.
        d = self._inflight = self._http.get(
            self.url, headers={b"Accept": [b"application/json"]}, allow_redirects=False
        )
        d.addTimeout(FETCH_TIMEOUT, self._reactor)
        d.addCallback(self._read)
        d.addCallbacks(self._fetched, self._failed)

    def _read(self, response) -> Deferred:
        def check(body: bytes) -> Dict[str, Any]:
            if response.code != 200:
                raise ValueError("status %d" % (response.code,))
            return json_object(body)

        return read_bounded(response, MAX_DOCUMENT).addCallback(check)

    def _fetched(self, document: Dict[str, Any]) -> None:
        self.document = document
        self.version += 1
        self._done(self.refresh)

    def _failed(self, reason) -> None:
        if not self._stopped:
            self.log.warn(
                "could not fetch {url}: {reason}",
                url=self.url,
                reason=reason.getErrorMessage(),
            )
        self._done(self.min_refresh)

    def _done(self, delay: float) -> None:
        self._inflight = None
        waiting, self._waiting = self._waiting, []
        for each in waiting:
            if not each.called:
                each.callback(self.document)
        if not self._stopped:
            self._next = self._reactor.callLater(delay, self._fetch)

    def stop(self) -> Optional[Deferred]:
        """
        Stop fetching, and close the kept-alive connections.
        """
        self._stopped = True
        if self._next is not None and self._next.active():
            self._next.cancel()
        if self._inflight is not None:
            self._inflight.cancel()
        return None if self._pool is None else self._pool.closeCachedConnections()


class SharedDocuments:
    """
    The documents in use, one per reactor and URL, with the count of the
    filters using each; the last one to let go stops it.
    """

    def __init__(self) -> None:
        self._held: Dict[Tuple[Any, str], Tuple[RemoteDocument, int]] = {}

    def acquire(
        self, reactor, url: str, refresh: float, min_refresh: float
    ) -> RemoteDocument:
        """
        The document at C{url}: the one already held (taking the latest
        intervals), or a new one, fetched now.
        """
        key = (reactor, url)
        if key in self._held:
            document, users = self._held[key]
            document.refresh, document.min_refresh = refresh, min_refresh
        else:
            document, users = RemoteDocument(url, reactor, refresh, min_refresh), 0
            document.start()
        self._held[key] = (document, users + 1)
        return document

    def release(self, reactor, document: RemoteDocument) -> Optional[Deferred]:
        """
        A filter no longer uses C{document}.
        """
        key = (reactor, document.url)
        held, users = self._held[key]
        if users > 1:
            self._held[key] = (held, users - 1)
            return None
        del self._held[key]
        return held.stop()


#: The documents of every filter of the process.
DOCUMENTS = SharedDocuments()
