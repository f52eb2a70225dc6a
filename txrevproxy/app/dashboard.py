"""
The document of C{GET /status.json}, which the status page polls: the
status, the metrics and the last minute of a single process or of every
worker, put into one shape for both.

It is built from what the admin API already gets from the proxy
(L{IProxyControl.status}, C{snapshot} and C{recent}), by plain functions:
with workers, C{/status} has each worker's state under C{workers}, and
this module adds them up (connections and requests in flight add; a
backend is healthy when every worker finds it so, draining or ejected
when any does).
"""

from __future__ import annotations

from typing import Any, Dict, List

from ..observe.metrics import Snapshot
from ..observe.window import SLOT_WIDTH, SLOTS, Window, summarize

#: Seconds in a day, for the days to a certificate's expiry.
DAY = 86400.0


def backend_state(backend: Dict[str, Any]) -> str:
    """
    The one word the page colours a backend by: C{down} (failing its
    health checks), C{ejected} (by outlier detection), C{draining} (by an
    operator or the configuration), else C{up}.
    """
    if not backend["healthy"]:
        return "down"
    if backend["ejected"]:
        return "ejected"
    if backend["draining"]:
        return "draining"
    return "up"


def dashboard(
    status: Dict[str, Any], snapshot: Snapshot, window: Window, now: float
) -> Dict[str, Any]:
    """
    The status page's document (see docs/operations.rst, "Status page").

    @param status: the proxy's C{/status} document.
    @param snapshot: its metrics.
    @param window: its last minute.
    @param now: the current Unix time, for days to expiry.
    """
    # With workers but none running (all restarting), there is nothing
    # to list yet.
    processes: List[Dict[str, Any]] = status.get("workers", [status])
    first = processes[0] if processes else {}
    seconds = window["seconds"]
    # A route or upstream no request took yet.
    empty = summarize([[0] * SLOT_WIDTH] * SLOTS, seconds)

    def figures(kind: str, name: str) -> Dict[str, Any]:
        slots = window[kind].get(name)
        return empty if slots is None else summarize(slots, seconds)

    return {
        "version": status["version"],
        "pid": status["pid"],
        "uptime": status["uptime"],
        "now": now,
        "config": status["config"],
        "workers": [
            {"index": each["worker"], "pid": each["pid"], "uptime": each["uptime"]}
            for each in status.get("workers", [])
        ],
        "window": {"seconds": seconds},
        "listeners": [
            {
                "name": name,
                "endpoint": listener["endpoint"],
                "port": listener["port"],
                "connections": sum(
                    each["listeners"][name]["connections"] for each in processes
                ),
            }
            for name, listener in first.get("listeners", {}).items()
        ],
        "routes": [
            dict(route, stats=figures("routes", _route_label(route)))
            for route in first.get("routes", [])
        ],
        "upstreams": [
            _upstream(name, [each["upstreams"][name] for each in processes], figures)
            for name in first.get("upstreams", {})
        ],
        "caches": _caches(snapshot),
        "certificates": _certificates(snapshot, now),
    }


def _route_label(route: Dict[str, Any]) -> str:
    # As the metrics label a route: its name, else its index.
    return route["name"] or str(route["index"])


def _upstream(name: str, states: List[Dict[str, Any]], figures) -> Dict[str, Any]:
    backends = []
    for index, each in enumerate(zip(*(state["backends"] for state in states))):
        backend = {
            "index": index,
            "url": each[0]["url"],
            "backup": each[0]["backup"],
            "weight": each[0]["weight"],
            "in_flight": sum(b["in_flight"] for b in each),
            "healthy": all(b["healthy"] for b in each),
            "draining": any(b["draining"] for b in each),
            "ejected": any(b["ejected"] for b in each),
            "latency": max(b["latency"] for b in each),
            "last_check": each[0]["last_check"],
        }
        backend["state"] = backend_state(backend)
        backends.append(backend)
    return {
        "name": name,
        "policy": states[0]["policy"],
        "in_flight": sum(state["in_flight"] for state in states),
        "queued": sum(state["queued"] for state in states),
        "stats": figures("upstreams", name),
        "backends": backends,
    }


def _caches(snapshot: Snapshot) -> List[Dict[str, Any]]:
    lookups: Dict[str, Dict[str, int]] = {}
    for key, count in snapshot["cache_lookups"].items():
        name, result = key.split("\t")
        lookups.setdefault(name, {})[result] = count
    names = sorted(set(snapshot["cache_size_bytes"]) | set(lookups))
    caches = []
    for name in names:
        taken = sum(lookups.get(name, {}).values())
        hits = lookups.get(name, {}).get("hit", 0)
        caches.append(
            {
                "name": name,
                "lookups": taken,
                "hits": hits,
                "hit_ratio": hits / taken if taken else None,
                "size_bytes": snapshot["cache_size_bytes"].get(name, 0),
                "entries": snapshot["cache_entries"].get(name, 0),
            }
        )
    return caches


def _certificates(snapshot: Snapshot, now: float) -> List[Dict[str, Any]]:
    certificates = []
    for key, expires in snapshot["certificate_expiry_timestamp_seconds"].items():
        tls, names, origin = key.split("\t")
        certificates.append(
            {
                "tls": tls,
                "names": names.split(","),
                "origin": origin,
                "expires": expires,
                "days": (expires - now) / DAY,
            }
        )
    return sorted(certificates, key=lambda each: each["expires"])
