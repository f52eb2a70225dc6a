"""
The service that obtains and renews one table's ACME certificate.

At start it reads the certificate in the storage: a valid one for every
name is served already (the store read it) and is renewed at its
L{renewal_time}; a missing, expired or incomplete one is ordered at once.
A failed order is tried again after a L{Backoff} wait, logged at warning
with the CA's problem document.  After an order, the new files are in
the storage and C{renewed} is called, which reloads the store (the same
swap as C{SIGHUP}).

Only one process orders: the supervisor with C{[server] workers}, else
the proxy's one process; workers read the certificate from the storage
(see L{txrevproxy.tls.watch}).
"""

from __future__ import annotations

import os
from typing import Any, Callable, Optional

from cryptography.hazmat.primitives import serialization
from twisted.application.service import Service
from twisted.internet.defer import CancelledError, Deferred, ensureDeferred
from twisted.logger import Logger

from ..devcerts import key_pem
from ..files import FileProblem, read_pair
from .answers import HTTP01, TLS_ALPN01, Responder
from .certificates import new_key, signing_request
from .schedule import Backoff, renewal_time
from .storage import Storage, read_file, write_file


def challenge_kind(config, block) -> str:
    """
    The challenge a table's certificate is validated with: its
    C{challenge}, or HTTP-01 when some listener has no TLS (ACME CAs
    validate on port 80), else TLS-ALPN-01 (on port 443).
    """
    if block.acme.challenge is not None:
        return block.acme.challenge
    if any(listener.tls is None for listener in config.listeners.values()):
        return HTTP01
    return TLS_ALPN01


def account_key(storage: Storage) -> Any:
    """
    The account's key from the storage, made and stored (0600) the first
    time.
    """
    data = read_file(storage.account_key)
    if data is None:
        key = new_key()
        write_file(storage.account_key, key_pem(key), private=True)
        return key
    return serialization.load_pem_private_key(data, password=None)


class CertificateManager(Service):
    """
    Obtains and renews the certificate of one C{[tls.NAME] acme} table.

    A reload keeps it (its timer and any order in progress) as long as
    the table's C{acme} and challenge stay the same (see
    L{txrevproxy.app.certificates}).

    @ivar acme: the L{txrevproxy.config.model.ACME} it serves.
    @ivar kind: the challenge, C{"http-01"} or C{"tls-alpn-01"}.
    @ivar backoff: the waits after failed orders.
    """

    log = Logger()

    def __init__(
        self, table: str, acme, kind: str, reactor, renewed: Callable[[], Any]
    ) -> None:
        """
        @param table: the C{[tls.NAME]} table's name, for messages.
        @param renewed: called after a new certificate was stored.
        """
        self.table = table
        self.acme = acme
        self.kind = kind
        self.backoff = Backoff()
        self._reactor = reactor
        self._renewed = renewed
        self._storage = Storage.of(acme)
        self._timer: Any = None
        self._ordering: Optional[Deferred] = None

    @property
    def next_attempt(self) -> Optional[float]:
        """
        When the next order is due (a reactor time), or L{None} while one
        is in progress or the service is stopped.
        """
        return None if self._timer is None else self._timer.getTime()

    def startService(self) -> None:
        super().startService()
        self._schedule(self._due())

    def stopService(self):
        super().stopService()
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        if self._ordering is not None:
            self._ordering.cancel()

    def _due(self) -> float:
        """
        When the stored certificate should be renewed: now when there is
        none, it cannot be used, or it lacks a name.
        """
        storage = self._storage
        now = self._reactor.seconds()
        if not os.path.exists(storage.chain):
            self.log.info(
                "tls.{table}.acme: no certificate for {names} yet; ordering it",
                table=self.table,
                names=", ".join(self.acme.names),
            )
            return now
        try:
            pair = read_pair(storage.chain, storage.key)
        except FileProblem as problem:
            self.log.warn(
                "tls.{table}.acme: {problem}; ordering a new certificate",
                table=self.table,
                problem=problem.message,
            )
            return now
        missing = set(self.acme.names) - set(pair.dns_names)
        if missing:
            self.log.info(
                "tls.{table}.acme: the stored certificate lacks {missing}; "
                "ordering a new one",
                table=self.table,
                missing=", ".join(sorted(missing)),
            )
            return now
        return renewal_time(pair.leaf, self.acme.renew_before)

    def _schedule(self, when: float) -> None:
        delay = max(0.0, when - self._reactor.seconds())
        self._timer = self._reactor.callLater(delay, self._order)

    def _order(self) -> None:
        self._timer = None
        self._ordering = ensureDeferred(self._obtain())
        self._ordering.addCallbacks(self._obtained, self._failed)

    async def _obtain(self) -> None:
        # Imported on the first order: the ACME client's libraries (acme,
        # josepy, treq, requests) cost every proxy process 5 MiB and more
        # at rest, most of which never orders a certificate.
        from .client import AcmeClient, http_client

        acme, storage = self.acme, self._storage
        client = AcmeClient(
            http_client(self._reactor, acme.ca_bundle),
            acme.directory,
            account_key(storage),
            self._reactor,
        )
        await client.register(acme.email)
        key = new_key()
        chain = await client.issue(
            acme.names, signing_request(acme.names, key), self.kind, Responder(storage)
        )
        storage.save_certificate(chain, key_pem(key))

    def _obtained(self, _: None) -> None:
        self._ordering = None
        self.backoff.succeeded()
        self.log.info(
            "tls.{table}.acme: obtained a certificate for {names} from {directory}",
            table=self.table,
            names=", ".join(self.acme.names),
            directory=self.acme.directory,
        )
        self._renewed()
        self._schedule(self._due())

    def _failed(self, failure) -> None:
        self._ordering = None
        if failure.check(CancelledError) and not self.running:
            return
        delay = self.backoff.failed()
        self.log.warn(
            "tls.{table}.acme: ordering a certificate for {names} from "
            "{directory} failed ({failures} in a row): {problem}; trying "
            "again in {delay:.0f}s",
            table=self.table,
            names=", ".join(self.acme.names),
            directory=self.acme.directory,
            failures=self.backoff.failures,
            problem=str(failure.value) or failure.type.__name__,
            delay=delay,
        )
        self._schedule(self._reactor.seconds() + delay)
