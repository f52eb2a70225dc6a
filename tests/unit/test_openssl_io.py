"""
Tests of L{txrevproxy.net.openssl_io}: both kinds of reads, over two
pyOpenSSL connections joined in memory, read what there is and nothing
more, and fail as pyOpenSSL's own reads do.
"""

from __future__ import annotations

from typing import Tuple

import pytest
from OpenSSL import SSL

from txrevproxy.net.openssl_io import (
    MAX_READ,
    OPENSSL_IO,
    PrivateIO,
    PublicIO,
    private_io,
)
from txrevproxy.tls.acme.certificates import placeholder

KINDS = [
    pytest.param(private_io(), id="private"),
    pytest.param(PublicIO(), id="public"),
]


def connected(reads, tls12: bool = False) -> Tuple[SSL.Connection, SSL.Connection]:
    """
    A server and a client connection with their handshake done, the bytes
    between them moved with C{reads}.

    @param tls12: whether they speak TLS 1.2, and the server refuses
        renegotiation as the proxy's does, rather than TLS 1.3.
    """
    pair = placeholder(["localhost"]).pair
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate(pair.leaf)
    context.use_privatekey(pair.key)
    client_context = SSL.Context(SSL.TLS_CLIENT_METHOD)
    if tls12:
        context.set_options(SSL.OP_NO_RENEGOTIATION)
        client_context.set_max_proto_version(SSL.TLS1_2_VERSION)
    server = SSL.Connection(context, None)
    server.set_accept_state()
    client = SSL.Connection(client_context, None)
    client.set_connect_state()
    for _ in range(10):
        for side, peer in ((client, server), (server, client)):
            try:
                side.do_handshake()
            except SSL.WantReadError:
                pass
            data = reads.encrypted(side)
            if data:
                reads.feed(peer, data)
    # The session tickets the server sent after its handshake.
    assert reads.decrypted(client) == b""
    return server, client


def received(reads, connection: SSL.Connection) -> bytes:
    """
    Every decrypted byte C{connection} has, read until C{b""}.
    """
    chunks = []
    while True:
        data = reads.decrypted(connection)
        if not data:
            return b"".join(chunks)
        assert len(data) <= MAX_READ
        chunks.append(data)


@pytest.mark.parametrize("reads", KINDS)
def test_nothing_to_read_is_empty_bytes(reads):
    """
    With nothing received and nothing to send, both reads give C{b""}.
    """
    server, client = connected(reads)
    assert reads.decrypted(server) == b""
    assert reads.encrypted(server) == b""
    assert reads.encrypted(client) == b""


@pytest.mark.parametrize("reads", KINDS)
@pytest.mark.parametrize("size", [1, 600, 16384, 16385, 2**20 + 17])
def test_data_passes_whole_in_records_of_any_size(reads, size):
    """
    What one side encrypts (one small record, one full, several, over a
    MiB of them) comes out of the other whole, each encrypted batch in
    one read.
    """
    server, client = connected(reads)
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    sent = 0
    while sent < len(body):
        sent += reads.encrypt(client, body[sent : sent + 16384])
    reads.feed(server, reads.encrypted(client))
    assert reads.encrypted(client) == b""
    assert received(reads, server) == body


@pytest.mark.parametrize("reads", KINDS)
def test_part_of_a_record_waits_for_the_rest(reads):
    """
    A record of which the last byte has not come yet gives nothing; with
    that byte it gives its data.
    """
    server, client = connected(reads)
    client.sendall(b"hello")
    record = reads.encrypted(client)
    server.bio_write(record[:-1])
    assert reads.decrypted(server) == b""
    server.bio_write(record[-1:])
    assert received(reads, server) == b"hello"


@pytest.mark.parametrize("reads", KINDS)
def test_close_notify_is_zero_return(reads):
    """
    The peer's close_notify raises L{SSL.ZeroReturnError}, after the data
    that came before it.
    """
    server, client = connected(reads)
    client.sendall(b"bye")
    client.shutdown()
    server.bio_write(reads.encrypted(client))
    assert reads.decrypted(server) == b"bye"
    with pytest.raises(SSL.ZeroReturnError):
        reads.decrypted(server)


@pytest.mark.parametrize("reads", KINDS)
def test_bad_record_is_an_error(reads):
    """
    A record that does not decrypt raises L{SSL.Error}.
    """
    server, client = connected(reads)
    client.sendall(b"hello")
    record = bytearray(reads.encrypted(client))
    record[-1] ^= 0xFF
    server.bio_write(bytes(record))
    with pytest.raises(SSL.Error):
        reads.decrypted(server)


def test_the_proxy_reads_through_the_binding():
    """
    The installed pyOpenSSL has every private name L{PrivateIO} uses,
    so the proxy reads through it.
    """
    assert isinstance(OPENSSL_IO, PrivateIO)


def test_a_missing_binding_function_means_public_reads(monkeypatch):
    """
    A pyOpenSSL whose binding lacks a function L{PrivateIO} calls gives
    no private reads, and the proxy would use the public ones.
    """

    class Lib:
        SSL_pending = SSL_read = BIO_read = None

    monkeypatch.setattr(SSL, "_lib", Lib())
    assert private_io() is None


def test_a_missing_connection_attribute_means_public_reads(monkeypatch):
    """
    A pyOpenSSL whose connections lack an attribute L{PrivateIO} reads
    gives no private reads.
    """
    monkeypatch.delattr(SSL.Connection, "_raise_ssl_error")
    assert private_io() is None


def test_a_missing_binding_means_public_reads(monkeypatch):
    """
    A pyOpenSSL without the C{_lib} binding gives no private reads.
    """
    monkeypatch.delattr(SSL, "_lib")
    assert private_io() is None


@pytest.mark.parametrize("reads", KINDS)
def test_encrypting_before_the_handshake_waits_for_the_peer(reads):
    """
    Bytes written before the handshake raise L{SSL.WantReadError}: the
    handshake has begun (its first flight is there to send) and waits for
    the peer's answer.
    """
    client = SSL.Connection(SSL.Context(SSL.TLS_CLIENT_METHOD), None)
    client.set_connect_state()
    with pytest.raises(SSL.WantReadError):
        reads.encrypt(client, b"early")
    assert reads.encrypted(client)[:1] == b"\x16"


@pytest.mark.parametrize("reads", KINDS)
def test_encrypting_after_a_failure_is_an_error(reads):
    """
    Once a bad record has failed the connection, encrypting raises
    L{SSL.Error}.
    """
    server, client = connected(reads)
    client.sendall(b"hello")
    record = bytearray(reads.encrypted(client))
    record[-1] ^= 0xFF
    reads.feed(server, bytes(record))
    with pytest.raises(SSL.Error):
        reads.decrypted(server)
    with pytest.raises(SSL.Error):
        reads.encrypt(server, b"answer")


@pytest.mark.parametrize("reads", KINDS)
def test_bytes_openssl_does_not_take_are_an_error(reads):
    """
    Bytes the memory BIO does not take (none at all: OpenSSL answers 0
    for them, as for a failure) raise L{SSL.Error}, as pyOpenSSL's
    C{bio_write} does.
    """
    server, client = connected(reads)
    with pytest.raises(SSL.Error):
        reads.feed(server, b"")


@pytest.mark.parametrize("reads", KINDS)
def test_a_refused_renegotiation_leaves_the_server_working(reads):
    """
    A client's attempt to renegotiate TLS 1.2 with a server that refuses
    it reads as nothing on the server, which answers with its refusal
    (the client gives up) and can still send.
    """
    server, client = connected(reads, tls12=True)
    assert client.renegotiate()
    with pytest.raises(SSL.WantReadError):
        client.do_handshake()
    reads.feed(server, reads.encrypted(client))
    assert reads.decrypted(server) == b""
    reads.encrypt(server, b"still here")
    reads.feed(client, reads.encrypted(server))
    with pytest.raises(SSL.Error, match="no renegotiation"):
        received(reads, client)
