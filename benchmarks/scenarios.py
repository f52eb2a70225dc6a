"""
What is measured: the load scenarios (wrk, and h2load for HTTP/2) and the
two memory measurements.

Every measurement runs its client pinned to the load generator's core and
returns a plain dict, which goes as it is into the JSON results.
"""

from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass

from processes import LOAD_CPU, run_pinned
from servers import HERE, RunningProxy, Workspace


@dataclass(frozen=True)
class Scenario:
    """
    One wrk load.

    @ivar lua: a script in C{benchmarks/wrk/} that shapes the requests.
    @ivar connections: a fixed connection count, overriding C{--connections}.
    @ivar txrevproxy_only: whether only txrevproxy has what it measures
        (the other proxies show n/a).
    @ivar h2c: HTTP/2 in cleartext with prior knowledge, to the proxy's h2c
        port, loaded with h2load (L{H2_STREAMS} streams per connection).
    @ivar needs_redis: whether it needs the harness's redis-server.
    """

    name: str
    title: str
    path: str = "/small"
    tls: bool = False
    lua: str | None = None
    headers: tuple[str, ...] = ()
    connections: int | None = None
    txrevproxy_only: bool = False
    h2c: bool = False
    needs_redis: bool = False


SCENARIOS = [
    Scenario("small", "small GET, keep-alive"),
    Scenario("100k", "100 KiB GET, keep-alive", path="/files/100k"),
    Scenario("post-1k", "1 KiB POST, keep-alive", lua="post-1k.lua"),
    Scenario("tls-small", "HTTPS small GET, keep-alive", tls=True),
    # The proxy closes after each response (ssl session caches and tickets
    # are off everywhere), so every request pays a full ECDSA P-256 handshake.
    Scenario("tls-new-conn", "HTTPS, new TLS connection per request", tls=True,
             headers=("Connection: close",)),
    Scenario("c1000", "small GET, 1,000 concurrent connections", connections=1000),
    # The same load as "small", with txrevproxy speaking HTTP/2 (h2c, one
    # multiplexed connection) to the backend instead of keep-alive HTTP/1.1:
    # its ratio to "small" in the same run is the cost of the h2 client.
    Scenario("h2-upstream", "small GET, HTTP/2 (h2c) to the backend",
             path="/h2/small", txrevproxy_only=True),
    Scenario("h2c-small", "small GET over h2c (prior knowledge), 10 streams per connection",
             h2c=True),
    # "small" through a rate_limit filter that never refuses, its buckets
    # in the process, then in Redis (one EVALSHA round trip per request):
    # the ratio of the two in the same run is what sharing a limit costs.
    Scenario("rate-limit-local", "small GET, rate_limit filter, local buckets",
             path="/rl-local/small", txrevproxy_only=True),
    Scenario("rate-limit-redis", "small GET, rate_limit filter, buckets in Redis",
             path="/rl-redis/small", txrevproxy_only=True, needs_redis=True),
]

#: Streams in flight on each connection of an h2c scenario (h2load -m).
H2_STREAMS = 10

#: Pairs of scenarios whose ratio (req/s of the first over the second's,
#: per proxy, in the same run) is printed under the tables.
RATIOS = [("rate-limit-redis", "rate-limit-local")]

#: wrk's own limit for one request; slower ones count as timeout errors.
WRK_TIMEOUT = "5s"


def _wrk_script(ws: Workspace, scenario: Scenario) -> str:
    """
    Write the scenario's lua followed by the JSON reporter; return its path.
    """
    parts = [scenario.lua, "report.lua"] if scenario.lua else ["report.lua"]
    text = ""
    for part in parts:
        with open(os.path.join(HERE, "wrk", part)) as f:
            text += f.read() + "\n"
    return ws.write("wrk-{}.lua".format(scenario.name), text)


def run_load(ws: Workspace, proxy: RunningProxy, scenario: Scenario,
             seconds: float, connections: int) -> dict:
    """
    Load C{proxy} with C{scenario} for C{seconds}: with h2load for an h2c
    scenario, with wrk otherwise.
    """
    run = run_h2load if scenario.h2c else run_wrk
    return run(ws, proxy, scenario, seconds, connections)


def run_wrk(ws: Workspace, proxy: RunningProxy, scenario: Scenario,
            seconds: float, connections: int) -> dict:
    """
    Load C{proxy} with C{scenario} for C{seconds} with one wrk thread.

    @return: req/s, p50 and p99 in milliseconds, and errors: responses with
        status >= 400 plus socket errors (connect, read, write, timeout).
    """
    port = proxy.tls_port if scenario.tls else proxy.port
    url = "{}://127.0.0.1:{}{}".format("https" if scenario.tls else "http", port, scenario.path)
    argv = ["wrk", "-t1", "-c", str(scenario.connections or connections),
            "-d", "{}s".format(int(seconds)), "--timeout", WRK_TIMEOUT,
            "-s", _wrk_script(ws, scenario)]
    for header in scenario.headers:
        argv += ["-H", header]
    result = run_pinned(argv + [url], LOAD_CPU, timeout=seconds + 60)
    lines = [line for line in result.stdout.decode().splitlines() if line.startswith("WRK-JSON ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError("wrk failed ({}): {}".format(
            result.returncode, (result.stderr or result.stdout).decode()[-500:]))
    raw = json.loads(lines[-1][len("WRK-JSON "):])
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["status"] + socket_errors,
        "raw": raw,
    }


_H2LOAD_FINISHED = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_H2LOAD_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout")


def run_h2load(ws: Workspace, proxy: RunningProxy, scenario: Scenario,
               seconds: float, connections: int) -> dict:
    """
    Load C{proxy}'s h2c port with C{scenario} for C{seconds} with one h2load
    thread, L{H2_STREAMS} streams in flight per connection.

    @return: as L{run_wrk}; the percentiles come from h2load's log of every
        request, and the errors are the requests that did not succeed
        (status >= 400, stream or connection errors, timeouts).
    """
    log = ws.path("h2load-{}.log".format(scenario.name))
    url = "http://127.0.0.1:{}{}".format(proxy.h2c_port, scenario.path)
    argv = ["h2load", "-t1", "-c", str(scenario.connections or connections),
            "-m", str(H2_STREAMS), "-D", str(int(seconds)), "--log-file", log, url]
    result = run_pinned(argv, LOAD_CPU, timeout=seconds + 60)
    out = result.stdout.decode()
    finished, requests = _H2LOAD_FINISHED.search(out), _H2LOAD_REQUESTS.search(out)
    if result.returncode != 0 or finished is None or requests is None:
        raise RuntimeError("h2load failed ({}): {}".format(
            result.returncode, (result.stderr or result.stdout).decode()[-500:]))
    with open(log) as f:
        # Tab-separated: start time, status, microseconds to the response's end.
        latencies = sorted(int(line.split("\t")[2]) for line in f if line.strip())
    total, _, done, succeeded, failed, errored, timeout = map(int, requests.groups())

    def percentile(share: float) -> float:
        if not latencies:
            return 0.0
        return latencies[min(len(latencies) - 1, int(len(latencies) * share))] / 1000

    return {
        "rps": float(finished.group(1)),
        "p50_ms": percentile(0.5),
        "p99_ms": percentile(0.99),
        "errors": failed,
        "raw": {"total": total, "done": done, "succeeded": succeeded,
                "failed": failed, "errored": errored, "timeout": timeout},
    }


def idle_connections_rss(proxy: RunningProxy, count: int, timeout: float) -> dict:
    """
    Hold C{count} idle keep-alive connections to C{proxy}; report its RSS.
    """
    argv = [sys.executable, os.path.join(HERE, "idle_clients.py"), str(proxy.port),
            str(proxy.started.pid), "--count", str(count), "--timeout", str(timeout)]
    return _client_json(argv, timeout + 30)


def streaming_rss(proxy: RunningProxy, rate_mib: float, seconds: float) -> dict:
    """
    Stream the backend's 1 GiB through C{proxy} to a slow reader; report the
    proxy's RSS before and at its peak.
    """
    argv = [sys.executable, os.path.join(HERE, "slow_reader.py"), str(proxy.port),
            str(proxy.started.pid), "--rate-mib", str(rate_mib), "--seconds", str(seconds)]
    return _client_json(argv, seconds + 30)


def _client_json(argv: list[str], timeout: float) -> dict:
    result = run_pinned(argv, LOAD_CPU, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError("{} failed: {}".format(
            os.path.basename(argv[1]), result.stderr.decode().strip()[-500:]))
    return json.loads(result.stdout)
