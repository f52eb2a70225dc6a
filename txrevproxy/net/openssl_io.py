"""
The four calls of a memory-BIO pyOpenSSL connection that the TLS layer
makes for every request: the encrypted bytes received given to OpenSSL,
the decrypted bytes read out, the application's bytes encrypted, and the
encrypted bytes to send read out.

pyOpenSSL's public reads (C{Connection.recv} and C{Connection.bio_read})
allocate a buffer of the size asked for on every call, and say there is
nothing (more) by raising L{WantReadError}: every read of the TLS layer
ended with one such exception on each side.  On PyPy an exception that
leaves a separately compiled function forces the frames it passes through
("Session 11: HTTP/2 at one stream per connection on PyPy", in
C{benchmarks/README.rst}), and each buffer counts towards the next
collection.  Knowing the lengths first makes both unnecessary: the
memory BIOs' C{BIO_get_mem_data} gives how many bytes they hold, and
C{SSL_pending} how many of a record OpenSSL has decrypted and not yet
handed out.  A read then happens only when it finds something, into one
buffer of this module's, from which the bytes are copied once.  The two
other calls go to OpenSSL without pyOpenSSL's checks of what it is given
and of its callbacks' exceptions on success (see L{PrivateIO.decrypted}).
Measured in memory (a request and a response between two TLS protocols,
CPU us per exchange): PyPy 11.1 to 4.7, CPython 60 to 29.

That needs pyOpenSSL's private binding (C{OpenSSL.SSL._lib} and C{_ffi})
and a connection's private C{_ssl}, C{_into_ssl} and C{_from_ssl}, and its
C{_raise_ssl_error} for the failures; every such name is used here and
nowhere else.  When a pyOpenSSL lacks one, L{OPENSSL_IO} is made of the
public API instead (L{PublicIO}).

The buffer is the process's: the reactor's thread does all the TLS work,
and each read is copied out before the next.
"""

from __future__ import annotations

from typing import Optional

from OpenSSL.SSL import TLS_METHOD, Connection, Context, WantReadError

TWISTED_PRIVATE = ()

#: The smallest read the public API is asked for: small requests and
#: responses fit in one.
MIN_READ = 512
#: The largest: a TLS record carries at most 16 KiB of data, and with its
#: header and the cipher's overhead at most 16 KiB + 256 bytes on the wire.
MAX_READ = 16384 + 256


class PublicIO:
    """
    The calls of pyOpenSSL's public API, its reads sized so that a small
    record takes one small buffer: a first read of L{MIN_READ}, then the
    rest of the record (C{pending}), or growing reads while the last one
    filled.  Each read ends with the L{WantReadError} it catches.
    """

    @staticmethod
    def feed(connection: Connection, data: bytes) -> None:
        """
        Give OpenSSL the encrypted bytes C{data} received.
        """
        connection.bio_write(data)

    @staticmethod
    def encrypt(connection: Connection, data: bytes) -> int:
        """
        Encrypt C{data}, as much of it as one record takes.

        @return: how many bytes of C{data} were taken.
        @raise OpenSSL.SSL.Error: as C{Connection.send}: L{WantReadError}
            while a handshake waits for the peer, or a TLS failure.
        """
        return connection.send(data)

    @staticmethod
    def decrypted(connection: Connection) -> bytes:
        """
        The next decrypted bytes of C{connection}, or C{b""} when there
        are none yet.

        @raise OpenSSL.SSL.Error: as C{Connection.recv}: the peer's
            close_notify (L{ZeroReturnError}) or a TLS failure.
        """
        try:
            return connection.recv(connection.pending() or MIN_READ)
        except WantReadError:
            return b""

    @staticmethod
    def encrypted(connection: Connection) -> bytes:
        """
        All the encrypted bytes C{connection} has to send (C{b""}: none).
        """
        chunks = []
        size = MIN_READ
        while True:
            try:
                data = connection.bio_read(size)
            except WantReadError:
                break
            chunks.append(data)
            if len(data) < size:
                break
            size = min(size * 4, MAX_READ)
        return b"".join(chunks)


class PrivateIO:
    """
    The calls through pyOpenSSL's binding: a read happens when OpenSSL has
    something for it, into the module's buffer.

    @ivar lib: pyOpenSSL's binding of OpenSSL.
    @ivar ffi: its cffi C{FFI}.
    @ivar buffer: the reads' buffer, of L{MAX_READ} bytes.
    """

    def __init__(self, lib, ffi) -> None:
        self.lib = lib
        self.ffi = ffi
        self.buffer = ffi.new("char[]", MAX_READ)

    def decrypted(self, connection: Connection) -> bytes:
        """
        As L{PublicIO.decrypted}, asking OpenSSL only when it has
        decrypted bytes or encrypted ones to read.

        A call that succeeds skips pyOpenSSL's check of its callbacks'
        exceptions: a callback's exception fails the handshake it runs
        in, so the call that ran it fails too, and is checked.
        """
        lib = self.lib
        ssl = connection._ssl
        if not lib.SSL_pending(ssl) and not lib.BIO_get_mem_data(
            connection._into_ssl, self.ffi.NULL
        ):
            return b""
        result = lib.SSL_read(ssl, self.buffer, MAX_READ)
        if result > 0:
            return self.ffi.buffer(self.buffer, result)[:]
        try:
            connection._raise_ssl_error(ssl, result)
        except WantReadError:
            # Part of a record: the rest comes with the next bytes.
            pass
        return b""

    def feed(self, connection: Connection, data: bytes) -> None:
        """
        As L{PublicIO.feed}.
        """
        if self.lib.BIO_write(connection._into_ssl, data, len(data)) <= 0:
            # Not taken: pyOpenSSL's call raises what went wrong.
            connection.bio_write(data)

    def encrypt(self, connection: Connection, data: bytes) -> int:
        """
        As L{PublicIO.encrypt}.
        """
        ssl = connection._ssl
        result = self.lib.SSL_write(ssl, data, len(data))
        if result <= 0:
            connection._raise_ssl_error(ssl, result)
        return result

    def encrypted(self, connection: Connection) -> bytes:
        """
        As L{PublicIO.encrypted}, in one read of what the outgoing
        memory BIO holds (into a buffer of its own when more than one
        record).
        """
        bio = connection._from_ssl
        size = self.lib.BIO_get_mem_data(bio, self.ffi.NULL)
        if not size:
            return b""
        if size > MAX_READ:
            return connection.bio_read(size)
        self.lib.BIO_read(bio, self.buffer, size)
        return self.ffi.buffer(self.buffer, size)[:]


def private_io() -> Optional[PrivateIO]:
    """
    L{PrivateIO} when the installed pyOpenSSL has every private name it
    uses, else L{None}.
    """
    try:
        from OpenSSL.SSL import _ffi, _lib
    except ImportError:
        return None
    functions = (
        "SSL_pending",
        "SSL_read",
        "SSL_write",
        "BIO_get_mem_data",
        "BIO_read",
        "BIO_write",
    )
    if not all(hasattr(_lib, n) for n in functions):
        return None
    connection = Connection(Context(TLS_METHOD), None)
    attributes = ("_ssl", "_into_ssl", "_from_ssl", "_raise_ssl_error")
    if not all(hasattr(connection, n) for n in attributes):
        return None
    return PrivateIO(_lib, _ffi)


#: The calls the proxy's TLS connections make.
OPENSSL_IO = private_io() or PublicIO()
