"""
Reading and checking certificate and key files, and the OCSP responses
stapled for certificates.

Validation (C{txrevproxy check}, start-up, reload) and the certificate
store read files through these functions, so both report the same
sentences: each problem names the file as the configuration wrote it and
what is wrong with it (C{certs/example.pem: no such file}).

Nothing here touches OpenSSL contexts or the reactor; the files are read
with C{cryptography}.
"""

from __future__ import annotations

import datetime
import errno
import os
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import attr
from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtensionOID

from .acme.storage import Storage
from .ocsp import issuer_of, responder_url

#: A problem, as in L{txrevproxy.config.schema}: a key path relative to
#: the C{[tls.NAME]} table (C{".certificates[1].cert"}) and a sentence.
Problem = Tuple[str, str]

#: The pairs of file names accepted in a certificate directory, as
#: (certificate suffix, key suffix) of one stem.
DIRECTORY_PAIRS = ((".pem", "-key.pem"), (".crt", ".key"))

#: The pair of files accepted in a subdirectory (certbot's C{live/NAME}).
SUBDIRECTORY_PAIR = ("fullchain.pem", "privkey.pem")


class FileProblem(Exception):
    """
    A certificate or key file cannot be used.

    @ivar which: C{"cert"} or C{"key"}: the file at fault.
    @ivar message: a sentence starting with the file's name.
    """

    def __init__(self, which: str, message: str) -> None:
        super().__init__(which, message)
        self.which = which
        self.message = message


@attr.s(frozen=True, auto_attribs=True)
class KeyPair:
    """
    A certificate chain and its private key, read and checked.

    @ivar chain: the certificates, the leaf first, then intermediates as
        the file lists them.
    @ivar key: the leaf's private key (RSA, ECDSA or EdDSA).
    """

    chain: Tuple[x509.Certificate, ...]
    key: Any

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]

    @property
    def dns_names(self) -> Tuple[str, ...]:
        """
        The leaf's subjectAltName DNS names, lower-case.
        """
        try:
            extension = self.leaf.extensions.get_extension_for_oid(
                ExtensionOID.SUBJECT_ALTERNATIVE_NAME
            )
        except x509.ExtensionNotFound:
            return ()
        names = extension.value.get_values_for_type(x509.DNSName)
        return tuple(dict.fromkeys(name.lower() for name in names))

    @property
    def is_ca(self) -> bool:
        try:
            extension = self.leaf.extensions.get_extension_for_oid(
                ExtensionOID.BASIC_CONSTRAINTS
            )
        except x509.ExtensionNotFound:
            return False
        return bool(extension.value.ca)


def _read(which: str, shown: str, path: str) -> bytes:
    try:
        with open(path, "rb") as file:
            return file.read()
    except OSError as error:
        if error.errno == errno.ENOENT:
            raise FileProblem(which, "%s: no such file" % (shown,))
        raise FileProblem(
            which, "%s: cannot read: %s" % (shown, error.strerror or error)
        )


def _when(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _public(key: Any) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.DER,
        serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def read_pair(
    cert: str,
    key: str,
    base: str = "",
    now: Optional[datetime.datetime] = None,
) -> KeyPair:
    """
    Read a PEM certificate chain and its PEM private key, and check them.

    @param cert: the chain's path as written (leaf first); relative paths
        are taken from C{base}.
    @param key: the key's path as written.
    @param now: the time to check validity at (default: now, UTC).
    @raise FileProblem: when a file is missing or unreadable, is not PEM,
        the key is encrypted or does not match the leaf, or the leaf has
        expired or is not valid yet.
    """
    cert_data = _read("cert", cert, os.path.join(base, cert))
    key_data = _read("key", key, os.path.join(base, key))
    try:
        chain = tuple(x509.load_pem_x509_certificates(cert_data))
    except ValueError:
        raise FileProblem("cert", "%s: not a PEM certificate" % (cert,))
    try:
        private = serialization.load_pem_private_key(key_data, password=None)
    except TypeError:
        raise FileProblem(
            "key", "%s: is encrypted; give a key without a passphrase" % (key,)
        )
    except (ValueError, UnsupportedAlgorithm):
        raise FileProblem("key", "%s: not a PEM private key" % (key,))
    leaf = chain[0]
    if _public(private) != _public(leaf):
        raise FileProblem(
            "key", "%s: does not match the certificate %s" % (key, cert)
        )
    now = now or datetime.datetime.now(datetime.timezone.utc)
    if leaf.not_valid_after_utc < now:
        raise FileProblem(
            "cert", "%s: expired on %s" % (cert, _when(leaf.not_valid_after_utc))
        )
    if leaf.not_valid_before_utc > now:
        raise FileProblem(
            "cert",
            "%s: not valid before %s" % (cert, _when(leaf.not_valid_before_utc)),
        )
    return KeyPair(chain, private)


@attr.s(frozen=True, auto_attribs=True)
class Staple:
    """
    An OCSP response read for one certificate.

    @ivar response: the DER bytes to staple, or L{None} when the response
        has expired (then nothing is stapled: a client that checks would
        refuse a stale response, one that does not loses nothing).
    @ivar expired: when L{response} is L{None}, a sentence for the log
        saying which file expired when.
    @ivar this_update: the response's thisUpdate: of two responses for a
        certificate (the file's and one fetched), the later is stapled.
    @ivar next_update: the response's nextUpdate, after which it is no
        longer stapled; L{None}: it does not expire.
    """

    response: Optional[bytes]
    expired: Optional[str] = None
    this_update: Optional[datetime.datetime] = None
    next_update: Optional[datetime.datetime] = None


def read_staple(
    path: str,
    leaf: x509.Certificate,
    base: str = "",
    now: Optional[datetime.datetime] = None,
) -> Staple:
    """
    Read the DER OCSP response at C{path} for the certificate C{leaf}.

    @param path: the file's path as written; relative paths are taken from
        C{base}.
    @raise FileProblem: (C{which} is C{"ocsp"}) when the file is missing
        or unreadable, is not a DER OCSP response, is not a successful one,
        or is about another certificate.
    """
    data = _read("ocsp", path, os.path.join(base, path))
    try:
        response = ocsp.load_der_ocsp_response(data)
    except ValueError:
        raise FileProblem("ocsp", "%s: not a DER OCSP response" % (path,))
    if response.response_status != ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise FileProblem(
            "ocsp",
            "%s: the responder answered %s, not a certificate status"
            % (path, response.response_status.name.lower()),
        )
    if response.serial_number != leaf.serial_number:
        raise FileProblem(
            "ocsp",
            "%s: is for the certificate with serial %x, not this one (%x)"
            % (path, response.serial_number, leaf.serial_number),
        )
    now = now or datetime.datetime.now(datetime.timezone.utc)
    next_update = response.next_update_utc
    if next_update is not None and next_update < now:
        return Staple(
            None,
            "%s: expired on %s; not stapled until it is refreshed"
            % (path, _when(next_update)),
        )
    return Staple(data, None, response.this_update_utc, next_update)


def directory_pairs(directory: str, base: str = "") -> Iterator[Tuple[str, str]]:
    """
    The (certificate, key) file pairs in a directory, as paths starting
    with C{directory} as written, in file name order: C{NAME.pem} with
    C{NAME-key.pem}, C{NAME.crt} with C{NAME.key}, and C{NAME/fullchain.pem}
    with C{NAME/privkey.pem}.  Files that are not one of a pair are left
    alone (a CA bundle, a README).

    @raise FileProblem: (C{which} is C{"directory"}) when the directory
        cannot be listed.
    """
    where = os.path.join(base, directory)
    try:
        entries = sorted(os.listdir(where))
    except OSError as error:
        if error.errno == errno.ENOENT:
            raise FileProblem("directory", "%s: no such directory" % (directory,))
        raise FileProblem(
            "directory",
            "%s: cannot list: %s" % (directory, error.strerror or error),
        )
    present = set(entries)
    for entry in entries:
        if os.path.isdir(os.path.join(where, entry)):
            cert, key = (os.path.join(entry, name) for name in SUBDIRECTORY_PAIR)
            if os.path.isfile(os.path.join(where, cert)):
                yield os.path.join(directory, cert), os.path.join(directory, key)
            continue
        for cert_suffix, key_suffix in DIRECTORY_PAIRS:
            stem = entry[: -len(cert_suffix)]
            if (
                entry.endswith(cert_suffix)
                and not entry.endswith(key_suffix)
                and stem + key_suffix in present
            ):
                yield (
                    os.path.join(directory, entry),
                    os.path.join(directory, stem + key_suffix),
                )


@attr.s(frozen=True, auto_attribs=True)
class Fetch:
    """
    Where a certificate's OCSP responses are fetched from (C{ocsp_fetch},
    C{ocsp_responder}).

    @ivar url: the responder's URL.
    @ivar issuer: the certificate that signed the leaf, from its chain
        file: an OCSP request names the leaf by its issuer's name and key.
    """

    url: str
    issuer: x509.Certificate


def fetch_for(spec: Any, pair: KeyPair) -> Optional[Fetch]:
    """
    Where to fetch the OCSP responses of the certificate entry C{spec},
    or L{None} when it does not fetch them.

    @raise FileProblem: (C{which} is the key that asked for fetching) when
        the chain file lacks the issuer, or neither the certificate nor
        C{ocsp_responder} names a responder.
    """
    if not spec.ocsp_fetch:
        return None
    which = "ocsp_fetch" if spec.ocsp_responder is None else "ocsp_responder"
    issuer = issuer_of(pair.chain)
    if issuer is None:
        raise FileProblem(
            which,
            "%s does not hold the certificate that issued its leaf; an OCSP "
            "request names it: put the intermediate after the leaf (a full "
            "chain)" % (spec.cert,),
        )
    url = spec.ocsp_responder or responder_url(pair.leaf)
    if url is None:
        raise FileProblem(
            which,
            "%s names no OCSP responder (no OCSP URL in its Authority "
            "Information Access); set ocsp_responder" % (spec.cert,),
        )
    return Fetch(url, issuer)


@attr.s(frozen=True, auto_attribs=True)
class Entry:
    """
    One certificate of a C{[tls.NAME]} table, read and checked.

    @ivar origin: where it comes from, for messages and for matching the
        same certificate across a reload: C{"certificates[1]"}, or the
        certificate file's path for one found in C{directory}.
    @ivar names: the SNI names it serves.
    @ivar staple: its OCSP response, or L{None} when it has no C{ocsp}.
    @ivar fetch: where its OCSP responses are fetched from, or L{None}
        when they are not.
    """

    origin: str
    names: Tuple[str, ...]
    pair: KeyPair
    staple: Optional[Staple] = None
    fetch: Optional[Fetch] = None


@attr.s(auto_attribs=True)
class Collection:
    """
    What L{collect} read.

    @ivar entries: the certificates that could be read, in the order of
        the table (C{certificates}, then C{directory} in file name order).
    @ivar problems: the problems of the others and of the table as a whole
        (names served twice, a C{default} that names no certificate), with
        key paths relative to the table.
    @ivar failed: the L{Entry.origin} of each certificate that could not
        be read.
    @ivar warnings: what was left out without refusing the table (a
        certificate of C{directory} for IP addresses only), as problems are.
    """

    entries: List[Entry] = attr.Factory(list)
    problems: List[Problem] = attr.Factory(list)
    failed: List[str] = attr.Factory(list)
    warnings: List[Problem] = attr.Factory(list)


def collect(
    block: Any, base: str = "", now: Optional[datetime.datetime] = None
) -> Collection:
    """
    Read every certificate of a C{[tls.NAME]} table.

    @param block: a L{txrevproxy.config.model.TLS}.
    @param base: the directory relative paths are taken from.
    """
    collection = Collection()
    entries, problems, failed = (
        collection.entries,
        collection.problems,
        collection.failed,
    )
    for index, spec in enumerate(block.certificates):
        path = ".certificates[%d]" % (index,)
        try:
            pair = read_pair(spec.cert, spec.key, base, now)
            staple = (
                None
                if spec.ocsp is None
                else read_staple(spec.ocsp, pair.leaf, base, now)
            )
            fetch = fetch_for(spec, pair)
        except FileProblem as problem:
            problems.append(("%s.%s" % (path, problem.which), problem.message))
            failed.append(path[1:])
            continue
        names = spec.names or pair.dns_names
        if not names:
            problems.append(
                (
                    path + ".names",
                    "%s has no DNS names in its subjectAltName; list the names "
                    "it serves in names" % (spec.cert,),
                )
            )
            continue
        entries.append(Entry(path[1:], names, pair, staple, fetch))
    if block.directory is not None:
        try:
            found = list(directory_pairs(block.directory, base))
        except FileProblem as problem:
            problems.append((".directory", problem.message))
            found = []
        listed = len(entries)
        for cert, key in found:
            try:
                pair = read_pair(cert, key, base, now)
            except FileProblem as problem:
                problems.append((".directory", problem.message))
                failed.append(cert)
                continue
            if pair.is_ca:
                continue
            if not pair.dns_names:
                # Clients send no SNI name for an IP address, so a
                # certificate for addresses only could never be chosen.
                collection.warnings.append(
                    (
                        ".directory",
                        "%s has no DNS names in its subjectAltName (a client "
                        "sends no SNI name for an IP address); skipped" % (cert,),
                    )
                )
                continue
            entries.append(Entry(cert, pair.dns_names, pair))
        if len(entries) == listed and not problems:
            problems.append(
                (
                    ".directory",
                    "%s: no certificate found (expected NAME.pem with "
                    "NAME-key.pem, NAME.crt with NAME.key, or NAME/fullchain.pem "
                    "with NAME/privkey.pem, for DNS names)" % (block.directory,),
                )
            )
    acme_names: Tuple[str, ...] = ()
    if block.acme is not None:
        acme_names = block.acme.names
        _add_acme(block, base, now, collection)
    problems.extend(_served_twice([e for e in entries if e.origin != ACME_ORIGIN]))
    problems.extend(_default_problems(block.default, entries, problems, acme_names))
    return collection


#: The L{Entry.origin} of a table's ACME certificate.
ACME_ORIGIN = "acme"


def _add_acme(
    block: Any, base: str, now: Optional[datetime.datetime], collection: Collection
) -> None:
    """
    Put the ACME certificate of C{block} first among the entries, so that
    it serves its names before any listed certificate (which serve them
    until it is obtained).  One not obtained yet is no problem, and one
    that cannot be used (expired while the CA was unreachable) is a
    warning: the other certificates, or a placeholder, serve meanwhile.
    """
    storage = Storage.of(block.acme)
    if not os.path.exists(os.path.join(base, storage.chain)):
        return
    try:
        pair = read_pair(storage.chain, storage.key, base, now)
    except FileProblem as problem:
        collection.warnings.append(
            (".acme", "%s; renewing it" % (problem.message,))
        )
        return
    collection.entries.insert(0, Entry(ACME_ORIGIN, block.acme.names, pair))


def _served_twice(entries: Sequence[Entry]) -> Iterator[Problem]:
    first: Dict[str, Entry] = {}
    for entry in entries:
        for name in entry.names:
            earlier = first.setdefault(name, entry)
            if earlier is not entry:
                path = (
                    "." + entry.origin + ".names"
                    if entry.origin.startswith("certificates[")
                    else ".directory"
                )
                yield (
                    path,
                    '"%s" is already served by %s' % (name, earlier.origin),
                )


def _default_problems(
    default: Optional[str],
    entries: Sequence[Entry],
    problems: Sequence[Problem],
    acme_names: Sequence[str],
) -> Iterator[Problem]:
    if default is None or problems:
        # A default naming a certificate that failed to load is told by
        # that certificate's own problem.
        return
    names = list(
        dict.fromkeys([name for entry in entries for name in entry.names] + list(acme_names))
    )
    if default not in names:
        yield (
            ".default",
            '"%s" names no certificate (names: %s)' % (default, ", ".join(names)),
        )


def read_ca(path: str, base: str = "") -> Tuple[x509.Certificate, ...]:
    """
    Read a PEM file of one or more CA certificates (an upstream's C{ca}).

    @raise FileProblem: (C{which} is C{"ca"}) when the file is missing,
        unreadable or holds no PEM certificate.
    """
    data = _read("ca", path, os.path.join(base, path))
    try:
        return tuple(x509.load_pem_x509_certificates(data))
    except ValueError:
        raise FileProblem("ca", "%s: not a PEM certificate" % (path,))
