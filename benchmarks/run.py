"""
Benchmark txrevproxy against nginx, HAProxy and Twisted's ReverseProxyResource.

One command, bounded in time, that installs nothing: it names the Debian
packages it lacks and stops.  Proxies take turns behind the same nginx
backend, one at a time, interleaved over several rounds so that drift of the
machine spreads over all of them; the table shows medians over the rounds.
See README.rst.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

import report
import schedstat
from processes import ProcessGroup, StartupError, pinning_available
from rss import tree_pids
from scenarios import (
    PACED_SHARE,
    PEAK,
    SCENARIOS,
    idle_connections_rss,
    run_load,
    streaming_rss,
)
from servers import (
    CONTENDERS,
    DEFAULT_PYPY,
    HERE,
    SETUPS,
    RunningProxy,
    Workspace,
    make_certificate,
    start_backend,
    start_proxy,
    start_redis,
)

#: Debian package for each program the harness runs.
PACKAGES = {"nginx": "nginx-light", "wrk": "wrk", "haproxy": "haproxy",
            "pypy3": "pypy3", "openssl": "openssl", "h2load": "nghttp2-client"}

IDLE_CONNECTIONS = 10000
STREAM_RATE_MIB = 64
STREAM_SECONDS = 30


def _names(value: str, known: list[str], what: str) -> list[str]:
    names = [n.strip() for n in value.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise argparse.ArgumentTypeError("unknown {} {}; choose from {}".format(
            what, ", ".join(unknown), ", ".join(known)))
    return names


def _interpreter(value: str) -> str:
    """
    Accept an interpreter or a venv directory; return an absolute path
    (not resolved: a venv's python is a symlink that must stay one).
    """
    path = os.path.abspath(value)
    return os.path.join(path, "bin", "python") if os.path.isdir(path) else path


def parse_args(argv: list[str]) -> argparse.Namespace:
    proxies = [c.name for c in CONTENDERS]
    scenarios = [s.name for s in SCENARIOS] + ["memory"]
    parser = argparse.ArgumentParser(description=__doc__.strip().split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds (default 3)")
    parser.add_argument("--duration", type=int, default=10,
                        help="seconds per measured load run (default 10)")
    parser.add_argument("--connections", type=int, default=64,
                        help="client connections, except in c1000 (default 64)")
    parser.add_argument("--only", type=lambda v: _names(v, proxies, "proxy"), default=proxies,
                        help="proxies to run: " + ",".join(proxies))
    parser.add_argument("--scenarios", type=lambda v: _names(v, scenarios, "scenario"),
                        default=scenarios, help="scenarios to run: " + ",".join(scenarios))
    parser.add_argument("--cpython", type=_interpreter, default=sys.executable,
                        help="CPython (or its venv) with txrevproxy installed "
                             "(default: this one)")
    parser.add_argument("--pypy", type=_interpreter, default=DEFAULT_PYPY,
                        help="PyPy (or its venv) with txrevproxy installed (default: the "
                             "venv benchmarks/setup-pypy.sh makes)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke-test the harness: 1 round of 2 s runs, fewer idle connections")
    args = parser.parse_args(argv)
    paced = any(s.paced for s in SCENARIOS if s.name in args.scenarios)
    if paced and PEAK not in args.scenarios:
        # A paced scenario's rate is half of PEAK's in the same round.
        args.scenarios.insert(0, PEAK)
    if args.quick:
        args.rounds, args.duration = 1, 2
    return args


def check_packages(args: argparse.Namespace) -> None:
    """
    Exit with the missing Debian packages named, rather than install them.
    """
    needed = ["nginx", "wrk", "openssl"]
    if any(s.tool == "h2load" for s in SCENARIOS if s.name in args.scenarios):
        needed.append("h2load")
    if "haproxy" in args.only:
        needed.append("haproxy")
    if "txrevproxy-pypy" in args.only:
        needed.append("pypy3")
    missing = [PACKAGES[p] for p in needed if shutil.which(p) is None]
    if missing:
        sys.exit("missing Debian packages: {0}\ninstall them with: apt-get install {0}".format(
            " ".join(missing)))


def log(message: str) -> None:
    print(time.strftime("[%H:%M:%S] ") + message, file=sys.stderr, flush=True)


def _cell(problem: str | None = None) -> dict:
    return {"rounds": [], "problems": [problem] if problem else []}


def _skipped(scenario, contender, ws: Workspace) -> str | None:
    """
    Why C{contender} does not run C{scenario}, or C{None}.
    """
    if scenario.needs_redis and not ws.redis_port:
        return "redis-server not installed"
    return contender.scenario_problem(scenario)


def _setups(scenarios) -> list[str]:
    """
    The setups C{scenarios} need, in the order they first appear.
    """
    names: list[str] = []
    for scenario in scenarios:
        if scenario.setup not in names:
            names.append(scenario.setup)
    return names


def measure_throughput(ws: Workspace, args, contenders, scenarios, problems) -> dict:
    """
    Run every scenario on every contender, contender by contender, for each
    round; the contenders' order rotates from round to round.  Each setup a
    contender takes scenarios in is a start of its own.
    """
    cells = {s.name: {c.name: _cell(problems[c.name] or _skipped(s, c, ws))
                      for c in contenders} for s in scenarios}
    runnable = [c for c in contenders if not problems[c.name]]
    for number in range(args.rounds):
        shift = number % max(1, len(runnable))
        for contender in runnable[shift:] + runnable[:shift]:
            # This round's results, for the paced scenario's rate.
            measured: dict[str, dict] = {}
            for setup in _setups(scenarios):
                wanted = [s for s in scenarios
                          if s.setup == setup and not _skipped(s, contender, ws)]
                if not wanted:
                    continue
                log("round {}/{}: {}{}".format(number + 1, args.rounds, contender.name,
                                               "" if setup == "default" else " (" + setup + ")"))
                _measure_setup(ws, args, contender, SETUPS[setup], wanted, cells, measured)
    return cells


def scenario_warmup(args, contender, scenario) -> float:
    """
    Seconds of unrecorded load before C{scenario} is measured: 30 % of a
    run, for the pools; for an HTTP/2 scenario, at least the contender's
    warm-up after a start, since that one (HTTP/1.1 GETs) never ran the
    HTTP/2 paths a JIT compiles (PyPy at 1 stream x 100 connections: 231
    us of CPU a request after 3 s of it, 104 us after 20 s).  Not with
    C{--quick}, which checks the harness, not the proxies.
    """
    warmup = max(1, round(args.duration * 0.3))
    if scenario.http2 and args.duration > 2:
        warmup = max(warmup, contender.warmup)
    return warmup


def warm_up(ws: Workspace, proxy: RunningProxy, scenario, seconds: float,
            connections: int, rate: float | None = None) -> None:
    """
    Unrecorded load of C{scenario} for C{seconds}, in two runs of half
    each when it lasts 2 s or more: the measured run then meets a proxy
    whose connections have been through their whole life, closed as well
    as opened, as a proxy's are after its first minutes in service.

    With one run, the measured run began where the warm-up's connections
    all closed at once: PyPy's JIT compiled the paths of their close then
    (at 1 stream x 100 connections, 200 to 260 traces in the next 5 s,
    23 to 35 % of the proxy's time), inside the measurement.
    """
    if seconds >= 2:
        first = seconds // 2
        run_load(ws, proxy, scenario, first, connections, rate)
        seconds -= first
    run_load(ws, proxy, scenario, seconds, connections, rate)


def _measure_setup(ws: Workspace, args, contender, setup, scenarios, cells, measured) -> None:
    """
    Start C{contender} in C{setup}, warm it up, and run C{scenarios} on it.
    """
    try:
        proxy = start_proxy(ws, contender, setup)
    except StartupError as e:
        log("{} {}".format(contender.name, e))
        for s in scenarios:
            cells[s.name][contender.name]["problems"].append(e.reason)
        return
    try:
        if args.duration > 2:
            # Warmed up on what this start measures first: a JIT warmed up
            # on keep-alive GETs alone has never run the TLS handshake and
            # connection paths that the "resume" setup's only scenario
            # takes (PyPy's CPU per resumed handshake falls from 3.7 to
            # 0.9 ms over its first 8,000 handshakes).  The paced scenario
            # needs a rate, measured on "small".
            first = SCENARIOS[0] if scenarios[0].paced else scenarios[0]
            run_load(ws, proxy, first, contender.warmup, args.connections)
        for scenario in scenarios:
            cell = cells[scenario.name][contender.name]
            status = proxy.started.popen.poll()
            if status is not None:
                cell["problems"].append("exited with status {}: {}".format(
                    status, ws.group.log_tail(proxy.started.name, 1)))
                continue
            rate = None
            if scenario.paced:
                if PEAK not in measured:
                    cell["problems"].append("no {} result to pace from".format(PEAK))
                    continue
                rate = PACED_SHARE * measured[PEAK]["rps"]
            try:
                # Unrecorded warm-up: lets PyPy's JIT and every
                # proxy's pools reach their steady state.
                warm_up(ws, proxy, scenario, scenario_warmup(args, contender, scenario),
                        args.connections, rate)
                pids = tree_pids(proxy.started.pid)
                before = schedstat.sample(pids)
                result = run_load(ws, proxy, scenario, args.duration, args.connections, rate)
                # How long the proxy waited for its core: other processes on
                # it show in the latencies (see "Fairness on two cores").
                result["raw"].update(schedstat.since(before, schedstat.sample(pids)))
            except RuntimeError as e:
                log("{} {}: {}".format(contender.name, scenario.name, e))
                cell["problems"].append(str(e).splitlines()[0])
                continue
            cell["rounds"].append(result)
            measured[scenario.name] = result
            log("  {:<16} {:>9,.0f} req/s  p99 {:.2f} ms  errors {}  waited {:,.0f} ms "
                "for its CPU".format(scenario.name, result["rps"], result["p99_ms"],
                                     result["errors"], result["raw"]["cpu_wait_ms"]))
    finally:
        ws.group.stop(proxy.started)


def measure_memory(ws: Workspace, args, contenders, problems) -> dict:
    """
    For each contender, on a fresh process each time: RSS with many idle
    keep-alive connections, then RSS growth while streaming 1 GiB slowly.
    """
    idle_count = 2000 if args.quick else IDLE_CONNECTIONS
    stream_seconds = 3 if args.quick else STREAM_SECONDS
    cells = {}
    for contender in contenders:
        cell = cells[contender.name] = _cell(problems[contender.name])
        if cell["problems"]:
            continue
        for key, measure in (
            ("idle", lambda p: idle_connections_rss(p, idle_count, timeout=120)),
            ("stream", lambda p: streaming_rss(p, STREAM_RATE_MIB, stream_seconds)),
        ):
            log("memory: {} {}".format(contender.name, key))
            try:
                proxy = start_proxy(ws, contender)
            except StartupError as e:
                log("{} {}".format(contender.name, e))
                cell["problems"].append(e.reason)
                break
            try:
                cell[key] = measure(proxy)
            except RuntimeError as e:
                log("{} memory {}: {}".format(contender.name, key, e))
                cell["problems"].append(str(e).splitlines()[0])
                break
            finally:
                ws.group.stop(proxy.started)
    return cells


def estimate_seconds(ws: Workspace, args, contenders, scenarios, problems) -> float:
    runs = sum(args.duration + scenario_warmup(args, c, s) + 1
               for c in contenders if not problems[c.name]
               for s in scenarios if not _skipped(s, c, ws))
    starts = sum(c.warmup for c in contenders if not problems[c.name]
                 for _ in _setups(s for s in scenarios if not _skipped(s, c, ws)))
    return args.rounds * (starts + runs)


def _raise_interrupt(signum, frame):
    raise KeyboardInterrupt("signal {}".format(signum))


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    check_packages(args)
    if not pinning_available():
        log("warning: CPUs 0 and 1 are not both available; processes are not pinned")
    contenders = [c for c in CONTENDERS if c.name in args.only]
    scenarios = [s for s in SCENARIOS if s.name in args.scenarios]
    # SIGINT too: a shell starts background jobs with SIGINT ignored.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupt)
    tmp = tempfile.mkdtemp(prefix="txrevproxy-bench-")
    ws = Workspace(tmp, ProcessGroup(tmp), args.cpython, args.pypy)
    try:
        make_certificate(ws)
        start_backend(ws)
        if any(s.needs_redis for s in scenarios):
            start_redis(ws)
        problems = {c.name: c.problem(ws) for c in contenders}
        for name, problem in problems.items():
            if problem:
                log("{}: n/a ({})".format(name, problem))
        log("throughput: about {:.0f} minutes".format(
            estimate_seconds(ws, args, contenders, scenarios, problems) / 60))
        throughput = measure_throughput(ws, args, contenders, scenarios, problems)
        memory = (measure_memory(ws, args, contenders, problems)
                  if "memory" in args.scenarios else {})
    finally:
        ws.group.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)

    info = report.machine(args.cpython, args.pypy)
    idle_count = 2000 if args.quick else IDLE_CONNECTIONS
    header = ("{} round(s) x {:g} s per proxy and scenario; wrk -t1 -c{} (paced by "
              "wrk/paced.lua in the latency row; h2load -t1 for HTTP/2); medians").format(
        args.rounds, args.duration, args.connections)
    tables = [header] + [
        report.throughput_table(
            s.title, throughput[s.name],
            compare=(s.compare_to, throughput.get(s.compare_to)) if s.compare_to else None,
            ratio_of="p99_ms" if s.paced else "rps")
        for s in scenarios
    ]
    if memory:
        tables.append(report.memory_table(memory, idle_count))
    tables.append(report.machine_text(info))
    print("\n\n".join(tables))
    path = report.write_json(os.path.join(HERE, "results"), {
        "settings": {k: v for k, v in vars(args).items()},
        "machine": info,
        "throughput": throughput,
        "memory": memory,
    })
    log("results written to " + path)


if __name__ == "__main__":
    try:
        main(sys.argv[1:])
    except KeyboardInterrupt:
        sys.exit("interrupted; all benchmark processes stopped")
