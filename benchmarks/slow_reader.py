"""
Download a large response slowly through a proxy and sample its memory.

Usage::

    python slow_reader.py PORT PID [--path /files/1g] [--rate-mib 64] [--seconds 30]

The backend can send far faster than this client reads, so a proxy that
streams with backpressure holds a bounded amount in memory, while one that
buffers grows toward the whole body.  The reader takes at most C{--rate-mib}
MiB/s and stops after C{--seconds} (or at the end of the body, or when the
proxy has grown by L{RSS_LIMIT}), sampling the RSS of process C{PID} and its
children every L{SAMPLE_EVERY} seconds.  Prints one line of JSON.
"""

from __future__ import annotations

import argparse
import json
import socket
import time

from rss import rss_bytes, tree_pids

SAMPLE_EVERY = 0.1
CHUNK = 64 * 1024
#: Stop early when the proxy has grown by this much: the point is made, and
#: the machine keeps its memory.
RSS_LIMIT = 4 * 1024 ** 3


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(CHUNK)
        if not chunk:
            raise ConnectionError("connection closed before the response head")
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def measure(port: int, pids: list[int], path: str, rate: float, seconds: float) -> dict:
    before = rss_bytes(pids)
    peak = before
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    with sock:
        sock.sendall("GET {} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".format(path).encode())
        head, rest = _read_head(sock)
        received = len(rest)
        expected = None
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                expected = int(value)
        started = time.monotonic()
        next_sample = started
        stopped_by = "time"
        while True:
            now = time.monotonic()
            if now >= next_sample:
                peak = max(peak, rss_bytes(pids))
                next_sample = now + SAMPLE_EVERY
            if expected is not None and received >= expected:
                stopped_by = "end of body"
                break
            if now - started >= seconds:
                break
            if peak - before >= RSS_LIMIT:
                stopped_by = "RSS limit"
                break
            # Pace to the rate: sleep until the bytes so far are "due".
            ahead = received / rate - (now - started)
            if ahead > 0:
                time.sleep(min(ahead, SAMPLE_EVERY))
                continue
            chunk = sock.recv(CHUNK)
            if not chunk:
                stopped_by = "connection closed"
                break
            received += len(chunk)
        elapsed = time.monotonic() - started
    return {
        "status": head.split(b"\r\n", 1)[0].decode("latin-1"),
        "bytes": received,
        "content_length": expected,
        "seconds": round(elapsed, 2),
        "stopped_by": stopped_by,
        "rss_before": before,
        "rss_peak": peak,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("pid", type=int)
    parser.add_argument("--path", default="/files/1g")
    parser.add_argument("--rate-mib", type=float, default=64)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()
    result = measure(args.port, tree_pids(args.pid), args.path,
                     args.rate_mib * 1024 * 1024, args.seconds)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
