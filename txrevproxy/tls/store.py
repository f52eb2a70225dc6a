"""
The certificates of one C{[tls.NAME]} table as OpenSSL contexts, chosen
per connection by the name the client sends (SNI), and reloaded without
dropping a connection.

Twisted 26 has C{CertificateOptions(contextForServerName=...)}, but the
PyPy 3.9 we run has Twisted 25.5, so SNI is built on pyOpenSSL directly
(which works on both): one L{OpenSSL.SSL.Context} per certificate, built
when the store is (never per handshake), each with the server name
callback already set before any connection uses it.  A connection starts
on the default certificate's context and the callback moves it to the
context of the name the client asked for.
"""

from __future__ import annotations

import collections
import datetime
import hashlib
import time
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, TypeVar

import attr
from OpenSSL import SSL
from twisted.logger import Logger

from .acme.answers import ACME_TLS_PROTOCOL, tls_alpn01_answer
from .acme.certificates import placeholder
from .acme.storage import storages_of
from .files import ACME_ORIGIN, Entry, KeyPair, collect
from .policy import Policy, apply, apply_ciphers, policy_for

T = TypeVar("T")

def session_id_context(name: str) -> bytes:
    """
    The session ID context of every context of the table C{name}: the same
    for all its certificates (a session issued before an SNI switch is
    resumed after it), in every worker and across reloads, since it
    depends on the table's name alone; and different between tables, so a
    session of one is never resumed on another (OpenSSL allows 32 bytes:
    a SHA-256).
    """
    return hashlib.sha256(b"txrevproxy tls." + name.encode("utf-8")).digest()


#: ALPN protocols a listener offers, in the server's order of preference
#: (C{b"h2"} goes first once HTTP/2 is served).
HTTP1_ONLY = (b"http/1.1",)
HTTP2_AND_HTTP1 = (b"h2", b"http/1.1")


def lookup(table: Mapping[str, T], server_name: Optional[str], default: T) -> T:
    """
    Choose by the name a client sent: an exact match first, then a
    wildcard for the left-most label only (C{*.example.test} serves
    C{a.example.test}, not C{a.b.example.test} nor C{example.test}), else
    C{default} (also for a client that sent no name).

    @param table: lower-case names (C{"*.example.test"} for a wildcard) to
        what they select.
    @param server_name: the SNI name as sent, or L{None}.
    """
    if not server_name:
        return default
    name = server_name.lower().rstrip(".")
    found = table.get(name)
    if found is not None:
        return found
    label, dot, parent = name.partition(".")
    if label and dot and parent:
        found = table.get("*." + parent)
        if found is not None:
            return found
    return default


def select_protocol(connection: SSL.Connection, offered: Sequence[bytes]) -> bytes:
    """
    The ALPN callback: the first protocol of the listener's own list that
    the client offered.  The connection's app data is its
    L{TLSMemoryBIOProtocol}, whose factory is a
    L{txrevproxy.tls.server.ListenerTLSFactory}.
    """
    for protocol in connection.get_app_data().factory.alpn_protocols:
        if protocol in offered:
            return protocol
    return SSL.NO_OVERLAPPING_PROTOCOLS


class StapleSlot:
    """
    The OCSP response one certificate's context staples.

    The context's OCSP callback reads it at each handshake that asks for a
    status, so that a response fetched later (L{txrevproxy.tls.stapling})
    reaches new handshakes through this holder, without changing a
    context that connections use (pyOpenSSL warns against that).

    @ivar response: the DER response stapled; C{b""}: none.
    @ivar this_update: its thisUpdate; L{None} without a response.
    @ivar expires: its nextUpdate in POSIX seconds, from which it is no
        longer stapled; L{None}: it does not expire.
    """

    def __init__(self, seconds: Callable[[], float]) -> None:
        """
        @param seconds: the clock's time, in POSIX seconds.
        """
        self._seconds = seconds
        self.response = b""
        self.this_update: Optional[datetime.datetime] = None
        self.expires: Optional[float] = None

    def offer(
        self,
        response: bytes,
        this_update: datetime.datetime,
        next_update: Optional[datetime.datetime],
    ) -> None:
        """
        Staple C{response} from now on, unless it has expired, or the one
        stapled is more recent (a later thisUpdate) and still valid: of a
        response read from a file and one fetched, the newer wins,
        whichever came last.
        """
        expires = None if next_update is None else next_update.timestamp()
        if expires is not None and self._seconds() >= expires:
            return
        if (
            self.this_update is not None
            and self.this_update > this_update
            and not self.expired()
        ):
            return
        self.response = response
        self.this_update = this_update
        self.expires = expires

    def expired(self) -> bool:
        return self.expires is not None and self._seconds() >= self.expires

    def staple(self, connection: SSL.Connection, data: object) -> bytes:
        """
        The OCSP callback of the certificate's context: OpenSSL calls it
        only for a client that sent status_request.  An empty answer
        staples nothing.
        """
        return b"" if self.expired() else self.response


def server_context(
    pair: KeyPair,
    policy: Policy,
    session_id: bytes,
    on_server_name,
    client_auth=None,
    staple: Optional[StapleSlot] = None,
    select=select_protocol,
) -> SSL.Context:
    """
    A server context for one certificate with its table's TLS policy
    (L{txrevproxy.tls.policy}), no compression or renegotiation, session
    resumption by a server-side cache and by tickets, and ALPN by
    L{select_protocol}.  0-RTT stays off: OpenSSL accepts early data only
    up to C{max_early_data}, whose default is 0, and nothing here sets it.

    @param session_id: the table's L{session_id_context}.
    @param on_server_name: the SNI callback, set here so that it is in
        place before any connection uses the context.
    @param client_auth: C{(ca_file, required)} to ask clients for a
        certificate from the CAs in C{ca_file} (mutual TLS), or L{None}.
        Every context of a store gets it: OpenSSL verifies the client with
        the context the SNI callback switched to.
    @param staple: the slot of the certificate's OCSP responses, for a
        certificate that staples; OpenSSL asks the context the SNI callback
        switched to, so each certificate staples its own.
    @param select: the ALPN callback (see L{select_protocol}).
    """
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    # OpenSSL frees a connection's read and write buffers while it has
    # nothing to read or send (as nginx has it): an idle keep-alive client
    # then costs a few KiB rather than 50.
    context.set_mode(SSL.MODE_RELEASE_BUFFERS)
    apply(context, policy)
    context.use_certificate(pair.leaf)
    for intermediate in pair.chain[1:]:
        context.add_extra_chain_cert(intermediate)
    context.use_privatekey(pair.key)
    context.check_privatekey()
    context.set_session_id(session_id)
    context.set_session_cache_mode(SSL.SESS_CACHE_SERVER)
    context.set_tlsext_servername_callback(on_server_name)
    context.set_alpn_select_callback(select)
    if client_auth is not None:
        ca_file, required = client_auth
        mode = SSL.VERIFY_PEER
        if required:
            mode |= SSL.VERIFY_FAIL_IF_NO_PEER_CERT
        context.set_verify(mode)
        context.load_verify_locations(ca_file.encode())
        context.load_client_ca(ca_file.encode())
    if staple is not None:
        context.set_ocsp_server_callback(staple.staple)
    apply_ciphers(context, policy)
    return context


class CertificateError(Exception):
    """
    A store cannot be built: no certificate of its table could be read.

    @ivar problems: the sentences, each starting with a key path.
    """

    def __init__(self, problems: List[str]) -> None:
        super().__init__(problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


@attr.s(frozen=True, auto_attribs=True)
class ServedCertificate:
    """
    One certificate being served.

    @ivar slot: the slot of its OCSP responses, for one that staples (one
        with C{ocsp}, C{ocsp_fetch} or C{ocsp_responder}); else L{None}.
    """

    entry: Entry
    context: SSL.Context
    slot: Optional[StapleSlot]


class _Served:
    """
    The certificates being served: the name to context table and the
    default context, replaced whole by a reload.
    """

    def __init__(
        self,
        certificates: "collections.OrderedDict[str, ServedCertificate]",
        default_name: Optional[str],
    ) -> None:
        self.certificates = certificates
        self.by_name: Dict[str, SSL.Context] = {}
        for served in certificates.values():
            for name in served.entry.names:
                self.by_name.setdefault(name, served.context)
        first = next(iter(certificates.values())).context
        self.default = (
            first if default_name is None else self.by_name.get(default_name, first)
        )


class CertificateStore:
    """
    The certificates of one C{[tls.NAME]} table.

    New connections start on L{default_context}; the SNI callback moves
    each to the context of the name it asked for.  L{reload} reads the
    files again and replaces what is served in one assignment, so new
    handshakes get the new certificates while established connections keep
    the context they were made with.

    @ivar name: the table's name, for messages.
    """

    log = Logger()

    def __init__(self, block, clock=None) -> None:
        """
        @param block: a L{txrevproxy.config.model.TLS} whose paths are
            absolute (as L{txrevproxy.config.load_config} makes them).
        @param clock: the L{IReactorTime} by which an OCSP response
            expires; L{None}: the system's time.
        @raise CertificateError: when a certificate cannot be read (its files
            changed since the configuration was validated).
        """
        self.name = block.name
        self._block = block
        self._seconds = time.time if clock is None else clock.seconds
        self._served: Optional[_Served] = None
        self._reloaded: List[Callable[[], None]] = []
        self._acme = storages_of(block)
        problems = self._load()
        if problems:
            raise CertificateError(problems)

    def whenReloaded(self, callback: Callable[[], None]) -> None:
        """
        Call C{callback} after each L{reload}, whoever asked for it (a
        SIGHUP, the admin API, the watch of its files), so that what
        depends on the certificates served (the OCSP stapler) follows.
        """
        self._reloaded.append(callback)

    @property
    def default_context(self) -> SSL.Context:
        """
        The context a new connection starts with.
        """
        return self._served.default

    def context_for(self, server_name: Optional[str]) -> SSL.Context:
        """
        The context serving C{server_name} (L{None}: no SNI).
        """
        served = self._served
        return lookup(served.by_name, server_name, served.default)

    def expiries(self) -> List[Tuple[str, Tuple[str, ...], float]]:
        """
        When each certificate served now expires, for the metrics: its
        origin (C{"certificates[0]"}, or its file in C{directory}), the
        names it serves, and its notAfter as a Unix time.
        """
        return [
            (entry.origin, entry.names, entry.pair.leaf.not_valid_after_utc.timestamp())
            for entry in (served.entry for served in self._served.certificates.values())
        ]

    def _on_server_name(self, connection: SSL.Connection) -> None:
        name = connection.get_servername()
        context = self.context_for(name.decode("ascii", "replace") if name else None)
        if context is not connection.get_context():
            connection.set_context(context)

    def _select_protocol(
        self, connection: SSL.Connection, offered: Sequence[bytes]
    ) -> bytes:
        """
        The ALPN callback of a table with C{acme}: a client offering
        C{acme-tls/1} for a name with a pending TLS-ALPN-01 challenge (a
        CA validating, RFC 8737) gets the challenge certificate and that
        protocol alone.  The callback runs before OpenSSL picks the
        certificate, so setting it on the connection here is in time.
        """
        if ACME_TLS_PROTOCOL in offered:
            name = connection.get_servername()
            answer = tls_alpn01_answer(
                self._acme, name.decode("ascii", "replace") if name else None
            )
            if answer is not None:
                certificate, key = answer
                connection.use_certificate(certificate)
                connection.use_privatekey(key)
                return ACME_TLS_PROTOCOL
        return select_protocol(connection, offered)

    def reload(self) -> List[str]:
        """
        Read every certificate (and OCSP response) again and serve the new
        set: the contexts, which carry the OCSP responses, are replaced in
        one assignment.

        A certificate whose files are now broken (missing, unreadable, a
        key that does not match, expired) keeps being served from its
        previous files, and is reported; one that is gone from the
        directory stops being served.

        @return: the problems, each a sentence starting with its key path
            (C{tls.default.certificates[1].cert: /etc/certs/a.pem: expired
            on 2024-01-01 00:00 UTC}); empty when everything was read.
        """
        problems = self._load()
        for problem in problems:
            self.log.error("{problem}", problem=problem)
        for callback in self._reloaded:
            callback()
        return problems

    def _load(self) -> List[str]:
        block = self._block
        client_auth = (
            None
            if block.client_ca is None
            else (block.client_ca, block.client_auth == "require")
        )
        collection = collect(block)
        if not collection.entries and block.acme is not None:
            # Nothing to serve until the ACME certificate comes.
            collection.entries.append(placeholder(block.acme.names))
        select = select_protocol if not self._acme else self._select_protocol
        policy = policy_for(block)
        session_id = session_id_context(block.name)
        previous = self._served.certificates if self._served is not None else {}
        certificates: "collections.OrderedDict[str, ServedCertificate]" = (
            collections.OrderedDict()
        )
        fresh: "collections.OrderedDict[str, ServedCertificate]" = (
            collections.OrderedDict()
        )
        for entry in collection.entries:
            slot = None
            if entry.staple is not None or entry.fetch is not None:
                slot = StapleSlot(self._seconds)
            if entry.staple is not None and entry.staple.response is not None:
                slot.offer(
                    entry.staple.response,
                    entry.staple.this_update,
                    entry.staple.next_update,
                )
            context = server_context(
                entry.pair,
                policy,
                session_id,
                self._on_server_name,
                client_auth,
                slot,
                select,
            )
            fresh[entry.origin] = ServedCertificate(entry, context, slot)
        # Keep the table's order, so that the first certificate stays the
        # default when no default is named.
        for origin, served in previous.items():
            if origin in collection.failed:
                certificates[origin] = served
            elif origin in fresh:
                certificates[origin] = fresh.pop(origin)
        certificates.update(fresh)
        if ACME_ORIGIN in certificates:
            # The ACME certificate serves its names before any listed one.
            certificates.move_to_end(ACME_ORIGIN, last=False)
        for path, message in collection.warnings:
            self.log.warn(
                "tls.{table}{path}: {warning}",
                table=self.name,
                path=path,
                warning=message,
            )
        for entry in collection.entries:
            if entry.staple is not None and entry.staple.expired is not None:
                self.log.warn(
                    "tls.{table}.{origin}.ocsp: {problem}",
                    table=self.name,
                    origin=entry.origin,
                    problem=entry.staple.expired,
                )
        problems = [
            "tls.%s%s: %s" % (self.name, path, message)
            for path, message in collection.problems
        ]
        if certificates:
            self._served = _Served(certificates, block.default)
        return problems

    def fetching(self) -> List[ServedCertificate]:
        """
        The certificates served whose OCSP responses are fetched, for
        L{txrevproxy.tls.stapling.OCSPStapler.watch}.
        """
        return [
            served
            for served in self._served.certificates.values()
            if served.entry.fetch is not None
        ]
