"""
Streaming with flow control, end to end: 1 GiB each way through a proxy
started with C{twistd -n txrevproxy}, with a peer that stops reading for a
while.  The proxy's resident memory must stay flat: without backpressure
it would buffer hundreds of megabytes while the peer stalls.
"""

from __future__ import annotations

import socket
import threading
import time

import pytest

from ..support.processes import proxy_process, rss_bytes

GIB = 1024**3
CHUNK = 256 * 1024
#: Growth allowed over the proxy's RSS before the transfer.
RSS_BUDGET = 48 * 1024**2
#: How long the slow peer stalls, at each of its stall points.
STALL_SECONDS = 1.0
STALL_AT = (64 * 1024**2, 512 * 1024**2)


def _recv_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(4096)
        if not data:
            raise AssertionError("connection closed before the head: %r" % (head,))
        head += data
    return head


def _drain(sock: socket.socket, total: int, already: int, on_stall) -> int:
    """
    Read C{total} bytes (C{already} of them read), stalling at L{STALL_AT}.
    """
    received = already
    stalls = list(STALL_AT)
    buffer = bytearray(CHUNK)
    while received < total:
        if stalls and received >= stalls[0]:
            stalls.pop(0)
            on_stall()
        n = sock.recv_into(buffer)
        if not n:
            break
        received += n
    return received


class Backend(threading.Thread):
    """
    A blocking backend on 127.0.0.1: answers GET with a 1 GiB body and
    reads POST bodies slowly, then answers with the count.
    """

    def __init__(self, on_stall) -> None:
        super().__init__(daemon=True)
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(8)
        self.listener.settimeout(120)
        self.port = self.listener.getsockname()[1]
        self.on_stall = on_stall
        self.received = None

    def run(self) -> None:
        conn, _ = self.listener.accept()
        with conn:
            while True:
                try:
                    head = _recv_head(conn)
                except AssertionError:
                    return
                if head.startswith(b"GET"):
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % GIB)
                    block = b"x" * CHUNK
                    for _ in range(GIB // CHUNK):
                        conn.sendall(block)
                else:
                    body_start = len(head.split(b"\r\n\r\n", 1)[1])
                    self.received = _drain(conn, GIB, body_start, self.on_stall)
                    answer = b"%d" % self.received
                    conn.sendall(
                        b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s"
                        % (len(answer), answer)
                    )


@pytest.fixture
def stalled_proxy(tmp_path):
    """
    A backend thread and a proxy process in front of it; the fixture's
    C{samples} collects the proxy's RSS each time a peer stalls.
    """
    samples = []
    state = {}

    def on_stall():
        time.sleep(STALL_SECONDS)
        samples.append(rss_bytes(state["pid"]))

    backend = Backend(on_stall)
    backend.start()
    with proxy_process(tmp_path, ["http://127.0.0.1:%d" % backend.port]) as proxy:
        state["pid"] = proxy.pid
        yield proxy, backend, samples


def test_download_of_1gib_to_a_stalling_client_keeps_memory_flat(stalled_proxy):
    proxy, backend, samples = stalled_proxy
    baseline = rss_bytes(proxy.pid)
    with socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.sendall(b"GET /big HTTP/1.1\r\nHost: h\r\n\r\n")
        head = _recv_head(client)
        assert head.startswith(b"HTTP/1.1 200 OK"), head
        already = len(head.split(b"\r\n\r\n", 1)[1])

        def on_stall():
            time.sleep(STALL_SECONDS)
            samples.append(rss_bytes(proxy.pid))

        received = _drain(client, GIB, already, on_stall)
    assert received == GIB
    assert len(samples) == len(STALL_AT)
    assert max(samples) - baseline < RSS_BUDGET, (baseline, samples)


def test_upload_of_1gib_to_a_stalling_backend_keeps_memory_flat(stalled_proxy):
    proxy, backend, samples = stalled_proxy
    baseline = rss_bytes(proxy.pid)
    with socket.create_connection(("127.0.0.1", proxy.port)) as client:
        client.sendall(
            b"POST /upload HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % GIB
        )
        block = b"u" * CHUNK
        for _ in range(GIB // CHUNK):
            client.sendall(block)
        head = _recv_head(client)
    assert head.startswith(b"HTTP/1.1 200 OK"), head
    assert head.endswith(b"%d" % GIB) or backend.received == GIB
    assert len(samples) == len(STALL_AT)
    assert max(samples) - baseline < RSS_BUDGET, (baseline, samples)
