"""
What is measured: the load scenarios (wrk, paced by a script for a
constant rate, and h2load for HTTP/2) and the two memory measurements.

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
    One load: by wrk, or by h2load for HTTP/2.

    @ivar lua: a script in C{benchmarks/wrk/} that shapes the requests.
    @ivar connections: a fixed connection count, overriding C{--connections}.
    @ivar only: the proxies (name prefixes) that have what it measures;
        the others show n/a.  Empty for all.
    @ivar http2: HTTP/2, loaded with h2load (C{streams} per connection):
        over TLS (ALPN h2) to the TLS port with C{tls}, else in cleartext
        with prior knowledge to the proxy's h2c port.
    @ivar paced: HTTP/1.1 keep-alive at a constant rate, half of the
        proxy's own req/s in the L{PEAK} scenario of the same round: wrk
        with C{wrk/paced.lua}, which spreads the arrivals evenly.
    @ivar setup: the name of the L{servers.SETUPS} entry the proxy is
        started in for this scenario.
    @ivar compare_to: a scenario whose req/s, for the same proxy in the
        same run, this one's is shown relative to (the cost of a feature).
    @ivar needs_redis: whether it needs the harness's redis-server.
    """

    name: str
    title: str
    path: str = "/small"
    tls: bool = False
    lua: str | None = None
    headers: tuple[str, ...] = ()
    connections: int | None = None
    only: tuple[str, ...] = ()
    http2: bool = False
    streams: int = 10
    paced: bool = False
    setup: str = "default"
    compare_to: str | None = None
    needs_redis: bool = False

    @property
    def tool(self) -> str:
        return "h2load" if self.http2 else "wrk"


SCENARIOS = [
    Scenario("small", "small GET, keep-alive"),
    # Each proxy with every core: nginx worker_processes auto, HAProxy
    # nbthread 2, txrevproxy workers = "auto"; wrk and the backend stay on
    # the load core, which the proxy now shares with them.
    Scenario("all-cores", "small GET, the proxy on all cores (shared with the load)",
             setup="all-cores", only=("nginx", "haproxy", "txrevproxy"), compare_to="small"),
    Scenario("100k", "100 KiB GET, keep-alive", path="/files/100k"),
    Scenario("post-1k", "1 KiB POST, keep-alive", lua="post-1k.lua"),
    Scenario("tls-small", "HTTPS small GET, keep-alive", tls=True),
    # The proxy closes after each response (resumption is off everywhere in
    # the default setup, which start_proxy checks), so every request pays a
    # full ECDSA P-256 handshake.
    Scenario("tls-new-conn", "HTTPS, new TLS connection per request", tls=True,
             headers=("Connection: close",)),
    # Resumption on everywhere: wrk reuses its OpenSSL connection object
    # when it reconnects, so it offers its last session (TLS 1.3 ticket or
    # TLS 1.2 session), and every handshake after a connection's first is
    # an abbreviated one.
    Scenario("tls-resume", "HTTPS, new TLS connection per request, session resumed",
             tls=True, headers=("Connection: close",), setup="resume",
             only=("nginx", "haproxy", "txrevproxy"), compare_to="tls-new-conn"),
    Scenario("c1000", "small GET, 1,000 concurrent connections", connections=1000),
    # Not twisted-rpr: left out when h2load paced this row (it did not
    # finish against it), and not measured paced since.
    Scenario("latency", "small GET at half the proxy's own small req/s (p99 is the figure)",
             lua="paced.lua", paced=True, only=("nginx", "haproxy", "txrevproxy"),
             compare_to="small"),
    Scenario("small+ratelimit", "small GET through a rate limit nobody reaches",
             path="/ratelimit/small", only=("nginx", "txrevproxy"), compare_to="small"),
    # The same limit with its buckets in Redis: the ratio to the local one
    # in the same run is what sharing a limit costs.
    Scenario("small+ratelimit-redis", "small GET through a rate limit kept in Redis",
             path="/ratelimit-redis/small", only=("txrevproxy",),
             compare_to="small+ratelimit", needs_redis=True),
    Scenario("small+accesslog", "small GET with an access log to a file",
             setup="accesslog", only=("nginx", "haproxy", "txrevproxy"), compare_to="small"),
    Scenario("small+secheaders", "small GET with the security headers added",
             path="/secheaders/small", only=("nginx", "txrevproxy"), compare_to="small"),
    Scenario("small+cachehit", "small GET answered from the proxy's cache",
             path="/cachehit/small", only=("nginx", "txrevproxy"), compare_to="small"),
    # The same load as "small", with txrevproxy speaking HTTP/2 (h2c, one
    # multiplexed connection) to the backend instead of keep-alive HTTP/1.1:
    # its ratio to "small" in the same run is the cost of the h2 client.
    Scenario("h2-upstream", "small GET, HTTP/2 (h2c) to the backend",
             path="/h2/small", only=("txrevproxy",), compare_to="small"),
    Scenario("h2c-small", "small GET over h2c (prior knowledge), 10 streams per connection",
             http2=True),
    Scenario("h2-100x10", "small GET over HTTP/2 and TLS, 100 streams x 10 connections",
             http2=True, tls=True, streams=100, connections=10),
    Scenario("h2-1x100", "small GET over HTTP/2 and TLS, 1 stream x 100 connections",
             http2=True, tls=True, streams=1, connections=100),
]

#: The scenario whose req/s sets the rate of a paced one.
PEAK = "small"

#: The share of that rate a paced scenario asks for.
PACED_SHARE = 0.5

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
             seconds: float, connections: int, rate: float | None = None) -> dict:
    """
    Load C{proxy} with C{scenario} for C{seconds}: with h2load for an
    HTTP/2 scenario, with wrk otherwise (at C{rate} requests a second in
    all for a paced one).
    """
    if scenario.tool == "h2load":
        return run_h2load(ws, proxy, scenario, seconds, connections)
    return run_wrk(ws, proxy, scenario, seconds, connections, rate)


def wrk_argv(script: str, proxy: RunningProxy, scenario: Scenario,
             seconds: float, connections: int, rate: float | None = None) -> list[str]:
    """
    The wrk command that loads C{proxy} with C{scenario} through C{script};
    a paced scenario's script gets C{rate} as its argument.
    """
    port = proxy.tls_port if scenario.tls else proxy.port
    url = "{}://127.0.0.1:{}{}".format("https" if scenario.tls else "http", port, scenario.path)
    argv = ["wrk", "-t1", "-c", str(scenario.connections or connections),
            "-d", "{}s".format(int(seconds)), "--timeout", WRK_TIMEOUT, "-s", script]
    for header in scenario.headers:
        argv += ["-H", header]
    argv.append(url)
    if scenario.paced:
        if not rate:
            raise ValueError("the paced scenario {} needs a rate".format(scenario.name))
        argv += ["--", "{:.3f}".format(rate)]
    return argv


def run_wrk(ws: Workspace, proxy: RunningProxy, scenario: Scenario,
            seconds: float, connections: int, rate: float | None = None) -> dict:
    """
    Load C{proxy} with C{scenario} for C{seconds} with one wrk thread.

    @return: req/s, p50 and p99 in milliseconds, and errors: responses with
        status >= 400 plus socket errors (connect, read, write, timeout).
        A paced scenario's raw counts add C{late}: the requests sent more
        than 1 ms after their slot, because every connection was still
        waiting for the proxy (C{wrk/paced.lua}).
    """
    argv = wrk_argv(_wrk_script(ws, scenario), proxy, scenario, seconds, connections, rate)
    result = run_pinned(argv, LOAD_CPU, timeout=seconds + 60)
    lines = [line for line in result.stdout.decode().splitlines() if line.startswith("WRK-JSON ")]
    if result.returncode != 0 or not lines:
        raise RuntimeError("wrk failed ({}): {}".format(
            result.returncode, (result.stderr or result.stdout).decode()[-500:]))
    raw = json.loads(lines[-1][len("WRK-JSON "):])
    if rate is not None:
        raw["target_rps"] = rate
    socket_errors = raw["connect"] + raw["read"] + raw["write"] + raw["timeout"]
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "p50_ms": raw["p50_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "errors": raw["status"] + socket_errors,
        "raw": raw,
    }


_H2LOAD_FINISHED = re.compile(r"finished in [\d.]+m?s, ([\d.]+) req/s")
_H2LOAD_PROTOCOL = re.compile(r"Application protocol: (\S+)")
_H2LOAD_REQUESTS = re.compile(
    r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
    r"(\d+) errored, (\d+) timeout")


def _h2load_target(proxy: RunningProxy, scenario: Scenario) -> tuple[str, list[str]]:
    """
    The URL and the protocol options of h2load for C{scenario}.
    """
    if scenario.tls:
        # Only h2 offered by ALPN: a proxy without it fails the row.
        return "https://127.0.0.1:{}".format(proxy.tls_port), ["--npn-list=h2"]
    return "http://127.0.0.1:{}".format(proxy.h2c_port), []


def run_h2load(ws: Workspace, proxy: RunningProxy, scenario: Scenario,
               seconds: float, connections: int) -> dict:
    """
    Load C{proxy} with C{scenario} for C{seconds} with one h2load thread:
    HTTP/2 with C{scenario.streams} streams in flight per connection.

    @return: as L{run_wrk}; the percentiles come from h2load's log of every
        request, and the errors are the requests that did not succeed
        (status >= 400, stream or connection errors, timeouts).
    """
    log = ws.path("h2load-{}.log".format(scenario.name))
    if os.path.exists(log):
        # h2load appends to its log: start each run (the warm-up too) afresh.
        os.remove(log)
    base, options = _h2load_target(proxy, scenario)
    clients = scenario.connections or connections
    argv = ["h2load", "-t1", "-c", str(clients), "-D", str(int(seconds)),
            "--log-file", log, "-m", str(scenario.streams)] + options
    result = run_pinned(argv + [base + scenario.path], LOAD_CPU, timeout=seconds + 60)
    out = result.stdout.decode()
    finished, requests = _H2LOAD_FINISHED.search(out), _H2LOAD_REQUESTS.search(out)
    if result.returncode != 0 or finished is None or requests is None:
        raise RuntimeError("h2load failed ({}): {}".format(
            result.returncode, (result.stderr or result.stdout).decode()[-500:]))
    protocol = _H2LOAD_PROTOCOL.search(out)
    if scenario.tls and (protocol is None or protocol.group(1) != "h2"):
        raise RuntimeError("h2load did not negotiate h2: {}".format(
            protocol.group(0) if protocol else out[-300:]))
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
