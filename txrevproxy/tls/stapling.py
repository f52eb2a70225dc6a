"""
OCSP responses fetched from the certificates' responders and stapled,
kept fresh (C{ocsp_fetch}, C{ocsp_responder}): the I/O around
L{txrevproxy.tls.ocsp}, which decides everything.

One L{OCSPStapler} serves a process for its whole life: each certificate
served with C{ocsp_fetch} has a L{_Refresher}, which asks the responder at
start, then halfway through each good response's validity, and again
sooner after a failure.  A good response goes into the certificate's
L{StapleSlot}, which its context reads at each handshake, so new
handshakes staple it and no context is changed.  A reload gives the
stapler the certificates served from then on (L{OCSPStapler.watch}): a
certificate still served keeps its refresher and its response, a new one
gets a refresher, and the refresher of one no longer served stops.
"""

from __future__ import annotations

import datetime
from typing import Callable, Dict, Iterable, List, Optional, Tuple

from cryptography import x509
from twisted.application.service import Service
from cryptography.x509 import ocsp
from twisted.internet.defer import Deferred, DeferredList, maybeDeferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    HTTPConnectionPool,
    PotentialDataLoss,
    RequestTransmissionFailed,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http_headers import Headers
from twisted.web.iweb import IBodyProducer
from zope.interface import implementer

from .files import Fetch
from .ocsp import (
    Answer,
    OCSPError,
    check_answer,
    refresh_delay,
    request_for,
    retry_delay,
    when,
)
from .store import CertificateStore, StapleSlot

#: Seconds a responder has to answer, connection included.
FETCH_TIMEOUT = 10.0

#: The largest answer read from a responder: a response with a delegated
#: responder's certificate is a few KiB.
MAX_ANSWER = 64 * 1024

#: What asks a responder: C{(url, DER request)} to a L{Deferred} firing
#: with the DER answer, or failing with a reason (L{OCSPError}, ...).
Ask = Callable[[str, bytes], Deferred]


@implementer(IBodyProducer)
class _Body:
    """
    A request body already in memory, written at once.
    """

    def __init__(self, data: bytes) -> None:
        self._data = data
        self.length = len(data)

    def startProducing(self, consumer) -> Deferred:
        consumer.write(self._data)
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class ResponderClient:
    """
    Asks OCSP responders over HTTP: a C{POST} of the DER request (RFC
    6960, appendix A.1), on a connection of its own each time (a
    certificate asks a few times a day), within L{FETCH_TIMEOUT}.
    """

    def __init__(self, reactor, timeout: float = FETCH_TIMEOUT) -> None:
        self._clock = reactor
        self._timeout = timeout
        self._agent = Agent(
            reactor,
            connectTimeout=timeout,
            pool=HTTPConnectionPool(reactor, persistent=False),
        )

    def ask(self, url: str, request: bytes) -> Deferred:
        """
        Send C{request} to the responder at C{url}.

        @return: a L{Deferred} firing with the answer's body, or failing
            with a L{OCSPError} that says why.
        """
        headers = Headers(
            {
                b"Content-Type": [b"application/ocsp-request"],
                b"Accept": [b"application/ocsp-response"],
            }
        )
        d = self._agent.request(b"POST", url.encode("ascii"), headers, _Body(request))
        d.addCallback(self._read)
        d.addTimeout(self._timeout, self._clock, onTimeoutCancel=self._timedOut)
        d.addErrback(self._why)
        return d

    def _timedOut(self, result, timeout: float) -> Failure:
        return Failure(OCSPError("no answer within %g s" % (timeout,)))

    def _read(self, response) -> Deferred:
        body = _BoundedBody(MAX_ANSWER)
        response.deliverBody(body)

        def read(data: bytes) -> bytes:
            if response.code != 200:
                raise OCSPError("the responder answered HTTP %d" % (response.code,))
            return data

        return body.done.addCallback(read)

    def _why(self, reason: Failure) -> Failure:
        wrappers = (ResponseFailed, ResponseNeverReceived, RequestTransmissionFailed)
        if reason.check(*wrappers):
            # The Agent wraps what went wrong in a list of failures.
            return Failure(OCSPError(reason.value.reasons[0].getErrorMessage()))
        return reason


class _BoundedBody(Protocol):
    """
    Reads an answer's body, up to C{limit} bytes: C{done} fires with it,
    or fails when it is larger or the connection is lost first.
    Cancelling C{done} closes the connection.
    """

    def __init__(self, limit: int) -> None:
        self.done: Deferred = Deferred(lambda _: self.transport.stopProducing())
        self._limit = limit
        self._parts: List[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self._size += len(data)
        if self._size > self._limit:
            self.transport.stopProducing()
            self.done.errback(
                OCSPError("the answer is larger than %d bytes" % (self._limit,))
            )
            return
        self._parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.done.called:
            return
        if reason.check(ResponseDone, PotentialDataLoss):
            self.done.callback(b"".join(self._parts))
        else:
            self.done.errback(reason)


class _Refresher:
    """
    Keeps the OCSP staple of one certificate fresh: asks its responder on
    L{start}, then again when L{refresh_delay} says, or L{retry_delay}
    after a failure.  Only a good answer is stapled; after a failure, or
    an answer that says revoked or unknown, the slots keep the previous
    good response until it expires (as nginx does).

    @ivar label: the certificate's key path, for the log.
    @ivar url: its responder's URL.
    @ivar slots: where its responses are stapled: the slot of each table
        serving it.
    @ivar answer: the last good answer, L{None} before the first.
    @ivar failures: failures in a row since the last good answer.
    """

    log = Logger()

    def __init__(
        self, label: str, leaf: x509.Certificate, fetch: Fetch, clock, ask: Ask
    ) -> None:
        self.label = label
        self.url = fetch.url
        self._leaf = leaf
        self._issuer = fetch.issuer
        self._request = request_for(leaf, fetch.issuer)
        self._clock = clock
        self._ask = ask
        self.slots: List[StapleSlot] = []
        self.answer: Optional[Answer] = None
        self.failures = 0
        self._call: Optional[IDelayedCall] = None
        self._asking: Optional[Deferred] = None

    def serve(self, slots: List[StapleSlot]) -> None:
        """
        Staple into C{slots} from now on (those of the contexts a reload
        made), starting with the good answer in hand.
        """
        self.slots = slots
        if self.answer is not None:
            self._staple(self.answer)

    def start(self) -> None:
        if self._call is None and self._asking is None:
            self.refresh()

    def stop(self) -> None:
        """
        Stop asking: cancel the next refresh, or the question in flight.
        """
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()
        asking, self._asking = self._asking, None
        if asking is not None:
            asking.cancel()

    def refresh(self) -> Deferred:
        """
        Ask the responder now (again, if a question is in flight); when it
        answers or fails, schedule the next time.

        @return: a L{Deferred} that fires once it is scheduled.
        """
        self.stop()
        asking = self._asking = maybeDeferred(self._ask, self.url, self._request)

        def failed(reason: Failure) -> Optional[float]:
            if self._asking is not asking:
                # L{stop} cancelled it: nothing to say or schedule.
                return None
            return self._failed(reason)

        def schedule(delay: Optional[float]) -> None:
            if self._asking is asking:
                self._asking = None
                self._call = self._clock.callLater(delay, self.refresh)

        asking.addCallback(self._received)
        asking.addErrback(failed)
        return asking.addCallback(schedule)

    def _now(self) -> datetime.datetime:
        return datetime.datetime.fromtimestamp(
            self._clock.seconds(), datetime.timezone.utc
        )

    def _received(self, der: bytes) -> float:
        now = self._now()
        answer = check_answer(der, self._leaf, self._issuer, now)
        if answer.status == ocsp.OCSPCertStatus.REVOKED:
            raise OCSPError(
                "the responder says the certificate was revoked on %s; "
                "not stapled" % (when(answer.revocation_time),)
            )
        if not answer.good:
            raise OCSPError(
                "the responder does not know the certificate (status unknown); "
                "not stapled"
            )
        self.answer = answer
        self.failures = 0
        self._staple(answer)
        self.log.info(
            "{label}: stapling the OCSP response of {url}, valid until {until}",
            label=self.label,
            url=self.url,
            until="further notice"
            if answer.next_update is None
            else when(answer.next_update),
        )
        return refresh_delay(answer, now)

    def _staple(self, answer: Answer) -> None:
        for slot in self.slots:
            slot.offer(answer.der, answer.this_update, answer.next_update)

    def _failed(self, reason: Failure) -> float:
        self.failures += 1
        delay = retry_delay(self.failures)
        self.log.warn(
            "{label}: OCSP responder {url}: {why}; {kept}; asking again in "
            "{delay:.0f} s",
            label=self.label,
            url=self.url,
            why=reason.getErrorMessage().rstrip("."),
            kept=self._kept(),
            delay=delay,
        )
        return delay

    def _kept(self) -> str:
        """
        What the handshakes staple meanwhile, for the log.
        """
        answer = self.answer
        if answer is None:
            return "nothing fetched is stapled yet"
        if answer.next_update is None:
            return "the previous response stays stapled"
        if answer.next_update <= self._now():
            return "the previous response expired on %s and is not stapled" % (
                when(answer.next_update),
            )
        return "the previous response stays stapled until %s" % (
            when(answer.next_update),
        )


#: What identifies a certificate whose responses are fetched, across
#: reloads and tables: its leaf, its issuer and the responder's URL.
_Key = Tuple[x509.Certificate, x509.Certificate, str]


class OCSPStapler(Service):
    """
    Fetches and refreshes the OCSP responses of the certificates served
    with C{ocsp_fetch} (a child service of the
    L{txrevproxy.app.service.ProxyService}, kept across reloads).

    In C{workers} mode each worker process has its own and asks the
    responders itself.
    """

    def __init__(self, clock, ask: Ask) -> None:
        """
        @param clock: the L{IReactorTime} of refreshes and of the checks
            of a response's validity.
        @param ask: what asks a responder (L{ResponderClient.ask}).
        """
        self._clock = clock
        self._ask = ask
        self._refreshers: Dict[_Key, _Refresher] = {}
        self._stores: List[CertificateStore] = []

    def watch(self, stores: Iterable[CertificateStore]) -> None:
        """
        Staple for the certificates C{stores} serve from now on (at start,
        after each reload of the configuration): those still served keep
        their refresher and their good response, which goes into their new
        contexts' slots at once; new ones are asked for when the service
        runs; the others are no longer asked for.  A store that reads its
        certificates again on its own (SIGHUP's certificate reload, the
        watch of its files) is followed too.
        """
        stores = list(stores)
        for store in stores:
            if not any(store is known for known in self._stores):
                store.whenReloaded(lambda store=store: self._storeReloaded(store))
        self._stores = stores
        self._serve(stores)

    def _storeReloaded(self, store: CertificateStore) -> None:
        # A store of a configuration a reload replaced is no longer served.
        if any(store is current for current in self._stores):
            self._serve(self._stores)

    def _serve(self, stores: List[CertificateStore]) -> None:
        wanted: Dict[_Key, Tuple[str, x509.Certificate, Fetch, List[StapleSlot]]] = {}
        for store in stores:
            for served in store.fetching():
                entry = served.entry
                key = (entry.pair.leaf, entry.fetch.issuer, entry.fetch.url)
                label = "tls.%s.%s" % (store.name, entry.origin)
                wanted.setdefault(key, (label, entry.pair.leaf, entry.fetch, []))[
                    3
                ].append(served.slot)
        for key in list(self._refreshers):
            if key not in wanted:
                self._refreshers.pop(key).stop()
        for key, (label, leaf, fetch, slots) in wanted.items():
            refresher = self._refreshers.get(key)
            if refresher is None:
                refresher = self._refreshers[key] = _Refresher(
                    label, leaf, fetch, self._clock, self._ask
                )
                if self.running:
                    refresher.start()
            refresher.serve(slots)

    def refresh(self) -> Deferred:
        """
        Ask every responder now, rather than when scheduled.

        @return: a L{Deferred} that fires once each has answered or failed,
            and its next question is scheduled.
        """
        return DeferredList(
            [refresher.refresh() for refresher in self._refreshers.values()]
        )

    def startService(self) -> None:
        super().startService()
        for refresher in self._refreshers.values():
            refresher.start()

    def stopService(self) -> None:
        super().stopService()
        for refresher in self._refreshers.values():
            refresher.stop()
