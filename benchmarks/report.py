"""
Turning results into the printed tables, the JSON file and the machine
description that makes figures comparable.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time

MIB = 1024 * 1024


def _version(argv: list[str]) -> str:
    """
    The first line a tool prints about its version (some print to stderr).
    """
    try:
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    except OSError as e:
        return "n/a ({})".format(e.strerror)
    return ((result.stdout + result.stderr).strip().splitlines() or ["n/a"])[0]


_DESCRIBE = """
import platform, sys, twisted
try:
    import txrevproxy
    extra = " / txrevproxy " + txrevproxy.__version__
except ImportError:
    extra = ""
print(platform.python_implementation(), sys.version.split()[0],
      "/ Twisted", twisted.__version__ + extra)
"""


def python_version(python: str) -> str:
    """
    Describe an interpreter and the Twisted and txrevproxy it has.
    """
    if not os.path.exists(python):
        return "n/a (missing)"
    result = subprocess.run([python, "-c", _DESCRIBE], capture_output=True, text=True,
                            timeout=60, cwd="/")
    if result.returncode != 0:
        return "n/a ({})".format((result.stderr.strip().splitlines() or ["failed"])[-1])
    return result.stdout.strip()


def machine(cpython: str, pypy: str) -> dict:
    """
    Describe this machine and the software measured.
    """
    cpu = platform.processor() or "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": platform.release(),
        "nginx": _version(["nginx", "-v"]),
        "haproxy": _version(["haproxy", "-v"]),
        "wrk": _version(["wrk", "-v"]),
        "openssl": _version(["openssl", "version"]),
        "cpython": python_version(cpython),
        "pypy": python_version(pypy),
    }


def _median(rounds: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in rounds)


def _na(cell: dict) -> str:
    return "n/a ({})".format(cell["problems"][0] if cell["problems"] else "not run")


def _ratio(value: float, cell: dict | None, key: str) -> str:
    """
    C{value} relative to the median of C{key} in C{cell}'s rounds, or "-".
    """
    if not cell or not cell["rounds"]:
        return "-"
    return "{:.2f}".format(value / _median(cell["rounds"], key))


def throughput_table(title: str, cells: dict[str, dict],
                     compare: tuple[str, dict] | None = None,
                     ratio_of: str = "rps") -> str:
    """
    Render one scenario: one row per proxy, medians over the measured rounds,
    the half-range of req/s over the rounds as a share of the median (the
    noise to read the figures against), errors summed over the rounds, and
    C{ratio_of} (req/s, or p99 for a paced scenario) relative to nginx.

    @param cells: proxy name -> C{{"rounds": [...], "problems": [...]}}.
    @param compare: another scenario's name and cells: a last column gives
        each proxy's req/s relative to its own in that scenario (what a
        feature costs, or what all cores give).
    """
    nginx = cells.get("nginx")
    head = "{:<20} {:>9} {:>6} {:>9} {:>9} {:>7} {:>9}".format(
        "proxy", "req/s", "+-", "p50", "p99", "errors",
        "p99/nginx" if ratio_of == "p99_ms" else "/nginx")
    width = max(9, len(compare[0]) + 1) if compare else 0
    if compare:
        head += " {:>{}}".format("/" + compare[0], width)
    lines = [title, head]
    for name, cell in cells.items():
        rounds = cell["rounds"]
        if not rounds:
            lines.append("{:<20} {}".format(name, _na(cell)))
            continue
        rps = _median(rounds, "rps")
        spread = (max(r["rps"] for r in rounds) - min(r["rps"] for r in rounds)) / 2 / rps
        line = "{:<20} {:>9,.0f} {:>6} {:>6.2f} ms {:>6.2f} ms {:>7} {:>9}".format(
            name, rps, "{:.0%}".format(spread) if len(rounds) > 1 else "-",
            _median(rounds, "p50_ms"), _median(rounds, "p99_ms"),
            sum(r["errors"] for r in rounds),
            _ratio(_median(rounds, ratio_of), nginx, ratio_of))
        if compare:
            line += " {:>{}}".format(
                _ratio(rps, compare[1] and compare[1].get(name), "rps"), width)
        if cell["problems"]:
            line += "  ({} round(s) failed: {})".format(len(cell["problems"]), cell["problems"][0])
        lines.append(line)
    return "\n".join(lines)


def _mib(n: float) -> str:
    return "{:.1f} MiB".format(n / MIB)


def memory_table(cells: dict[str, dict], idle_count: int) -> str:
    """
    Render the memory rows: RSS at rest, with the idle connections held (and
    per connection), and the growth while streaming to a slow reader.
    """
    row = "{:<20} {:>10} {:>14} {:>9} {:>12}  {}"
    lines = ["memory: RSS of the proxy's processes",
             row.format("proxy", "at rest", "{:,} idle".format(idle_count), "per conn",
                        "streaming", "streamed")]
    for name, cell in cells.items():
        idle, stream = cell.get("idle"), cell.get("stream")
        if idle is None or stream is None:
            lines.append("{:<20} {}".format(name, _na(cell)))
            continue
        held = idle["connections"]
        per_conn = (idle["rss_idle"] - idle["rss_before"]) / held / 1024 if held else 0
        idle_text = _mib(idle["rss_idle"])
        if held < idle_count:
            idle_text += " ({:,} only)".format(held)
        streamed = "{:.0f} MiB in {:.0f} s".format(stream["bytes"] / MIB, stream["seconds"])
        if stream["stopped_by"] != "end of body":
            streamed += " (stopped: {})".format(stream["stopped_by"])
        lines.append(row.format(
            name, _mib(idle["rss_before"]), idle_text, "{:.1f} KiB".format(per_conn),
            "+" + _mib(stream["rss_peak"] - stream["rss_before"]), streamed))
    return "\n".join(lines)


def machine_text(info: dict) -> str:
    """
    The machine description printed under the tables.
    """
    return "\n".join("{:<8} {}".format(k, v) for k, v in info.items())


def write_json(directory: str, results: dict) -> str:
    """
    Write C{results} to a time-stamped file in C{directory}; return its path.
    """
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, time.strftime("%Y%m%d-%H%M%S.json"))
    with open(path, "w") as f:
        json.dump(results, f, indent=2)
        f.write("\n")
    return path
