"""
CPU time per request of txrevproxy, measured inside the proxy: for A/B
comparisons of a change to the hot path.

On a shared VM the throughput of one run can swing by a factor of three
with nothing changed (this is why the harness rotates its proxies over
rounds).  The CPU time the proxy spends per request swings less, and a
slow phase of the machine only ever makes it larger, so the best of a few
runs is a fair figure of a version of the code.  On PyPy the probe also
reports the garbage collector's share, through C{gc.hooks}.

Usage (the proxy on CPU 1, the load on CPU 0, as in the harness)::

    taskset -c 1 PYTHON benchmarks/cpu_probe.py CONFIG.toml [WARMUP [SECONDS]] &
    taskset -c 0 wrk -t1 -c64 -d40s http://127.0.0.1:PORT/small

It serves CONFIG as C{twistd txrevproxy} would, lets the load warm it up
for WARMUP seconds (20: PyPy's JIT needs them), measures for SECONDS (15),
prints one line of JSON and exits.  Run it from another checkout with
C{PYTHONPATH=THAT_CHECKOUT} to compare two versions of the code.
"""

from __future__ import annotations

import gc
import json
import resource
import sys


def cpu_seconds() -> tuple[float, float]:
    """
    The process's user and system CPU seconds so far: a change to the
    proxy's own code shows in the first, while the second (the kernel's
    work on the sockets) is much the same for every version and carries
    most of the machine's noise.
    """
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime, usage.ru_stime


class GCTime:
    """
    Seconds spent in PyPy's garbage collector while counting (0 on
    CPython, which has no C{gc.hooks}).
    """

    def __init__(self) -> None:
        self.seconds = 0.0
        self.counting = False
        hooks = getattr(gc, "hooks", None)
        if hooks is not None:
            hooks.on_gc_minor = hooks.on_gc_collect_step = self._add

    def _add(self, stats) -> None:
        if self.counting:
            self.seconds += stats.duration


def main(config_path: str, warmup: float = 20.0, seconds: float = 15.0) -> None:
    from txrevproxy.app.pypy_jit import apply_jit_parameters
    from txrevproxy.net.reactor import install_unless_chosen

    # The reactor and (once it runs) the JIT's settings of a twistd proxy.
    install_unless_chosen()
    from twisted.internet import reactor

    from txrevproxy.app.service import ProxyService
    from txrevproxy.config import load_config
    from txrevproxy.server.request import ProxyRequest

    served = [0]
    finish = ProxyRequest.finish

    def counting_finish(request) -> None:
        served[0] += 1
        finish(request)

    ProxyRequest.finish = counting_finish
    gc_time = GCTime()
    start = {}

    def begin() -> None:
        gc_time.counting = True
        start.update(cpu=cpu_seconds(), served=served[0], wall=reactor.seconds())

    def end() -> None:
        gc_time.counting = False
        requests = max(1, served[0] - start["served"])
        user, system = (
            now - then for now, then in zip(cpu_seconds(), start["cpu"])
        )
        cpu = user + system
        wall = reactor.seconds() - start["wall"]
        print(json.dumps({
            "requests": requests,
            "requests_per_second": round(requests / wall),
            "cpu_us_per_request": round(cpu / requests * 1e6, 1),
            "user_us_per_request": round(user / requests * 1e6, 1),
            "system_us_per_request": round(system / requests * 1e6, 1),
            "gc_us_per_request": round(gc_time.seconds / requests * 1e6, 1),
            "cpu_busy": round(cpu / wall, 2),
        }), flush=True)
        reactor.stop()

    service = ProxyService(load_config(config_path), reactor)
    service.startService()
    reactor.callWhenRunning(apply_jit_parameters)
    reactor.callLater(warmup, begin)
    reactor.callLater(warmup + seconds, end)
    reactor.run()


if __name__ == "__main__":
    main(sys.argv[1], *(float(a) for a in sys.argv[2:4]))
