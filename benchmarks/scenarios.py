"""
What is measured: the wrk load scenarios and the two memory measurements.

Every measurement runs its client pinned to the load generator's core and
returns a plain dict, which goes as it is into the JSON results.
"""

from __future__ import annotations

import json
import os
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
    # "small" through a rate_limit filter that never refuses, its buckets
    # in the process, then in Redis (one EVALSHA round trip per request):
    # the ratio of the two in the same run is what sharing a limit costs.
    Scenario("rate-limit-local", "small GET, rate_limit filter, local buckets",
             path="/rl-local/small", txrevproxy_only=True),
    Scenario("rate-limit-redis", "small GET, rate_limit filter, buckets in Redis",
             path="/rl-redis/small", txrevproxy_only=True, needs_redis=True),
]

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
