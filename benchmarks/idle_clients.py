"""
Hold many idle keep-alive connections to a proxy and report its memory.

Usage::

    python idle_clients.py PORT PID [--count 10000] [--timeout 90]

Opens C{--count} connections to 127.0.0.1:PORT (a bounded number at a time,
so the proxy's listen queue never overflows), sends one C{GET /small} on each
and reads the answer, so that every connection has gone through a full
request and sits idle in keep-alive.  With all of them held it reads the RSS
of process C{PID} and its children, then closes everything and prints one
line of JSON.  It gives up after C{--timeout} seconds whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import time

from rss import rss_bytes, tree_pids

#: Connections being opened at once: well below every proxy's listen backlog.
IN_FLIGHT = 100


async def _open_one(port: int, gate: asyncio.Semaphore, held: list) -> None:
    async with gate:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /small HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await reader.readexactly(length)
        if not head.startswith(b"HTTP/1.1 200"):
            writer.close()
            raise ValueError(head.split(b"\r\n", 1)[0].decode("latin-1"))
        held.append(writer)


async def _measure(port: int, pids: list[int], count: int) -> dict:
    before = rss_bytes(pids)
    gate = asyncio.Semaphore(IN_FLIGHT)
    held: list = []
    started = time.monotonic()
    results = await asyncio.gather(
        *(_open_one(port, gate, held) for _ in range(count)), return_exceptions=True
    )
    opened_in = time.monotonic() - started
    failures = [r for r in results if isinstance(r, BaseException)]
    # Let the proxy finish whatever it does after a response (timers, pools)
    # before reading its memory.
    await asyncio.sleep(2)
    during = rss_bytes(pids)
    for writer in held:
        writer.close()
    return {
        "connections": len(held),
        "failed": len(failures),
        "first_failure": repr(failures[0]) if failures else None,
        "open_seconds": round(opened_in, 2),
        "rss_before": before,
        "rss_idle": during,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("pid", type=int)
    parser.add_argument("--count", type=int, default=10000)
    parser.add_argument("--timeout", type=float, default=90)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard < args.count + 100:
        raise SystemExit("RLIMIT_NOFILE hard limit {} is too low for {} connections".format(
            hard, args.count))
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    pids = tree_pids(args.pid)
    result = asyncio.run(asyncio.wait_for(_measure(args.port, pids, args.count), args.timeout))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
