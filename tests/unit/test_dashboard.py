"""
The status page's document (L{txrevproxy.app.dashboard}): one shape for a
single process and for workers, whose states add up.
"""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txrevproxy.app.dashboard import DAY, backend_state, dashboard
from txrevproxy.observe.metrics import FAMILIES
from txrevproxy.observe.window import SLOT_WIDTH, SLOTS

NOW = 1_800_000_000.0


def backend(url, **state):
    values = {
        "url": url,
        "weight": 1,
        "backup": False,
        "in_flight": 0,
        "healthy": True,
        "draining": False,
        "ejected": False,
        "latency": 0.01,
        "last_check": "passed: HTTP 200",
    }
    values.update(state)
    return values


def process(worker=None, connections=1, backends=None):
    return {
        "version": "1.0",
        "pid": 100 + (worker or 0),
        "worker": worker,
        "uptime": 5.0,
        "config": {"file": "proxy.toml", "sha256": "ab" * 32, "loaded": NOW - 60},
        "listeners": {
            "web": {"endpoint": "tcp:8080", "port": 8080, "connections": connections}
        },
        "upstreams": {
            "app": {
                "upstream": "app",
                "policy": "round_robin",
                "in_flight": 1,
                "queued": 0,
                "backends": backends or [backend("http://a"), backend("http://b")],
            }
        },
        "routes": [
            {"index": 0, "name": None, "hosts": ["shop.test"], "path": "/",
             "upstream": "app", "maintenance": False},
            {"index": 1, "name": "api", "hosts": [], "path": "/api",
             "upstream": "app", "maintenance": False},
        ],
    }


def snapshot():
    data = {name: {} for name in FAMILIES}
    data["cache_lookups"] = {"pages\thit": 3, "pages\turi-miss": 1}
    data["cache_size_bytes"] = {"pages": 2048}
    data["cache_entries"] = {"pages": 2}
    data["certificate_expiry_timestamp_seconds"] = {
        "public\tshop.test,www.shop.test\tcertificates[0]": NOW + 10 * DAY,
        "public\told.test\tcertificates[1]": NOW + 2 * DAY,
    }
    return data


def window(**named):
    return {"seconds": 60, "routes": named, "upstreams": {}}


class DashboardTests(SynchronousTestCase):
    def test_a_single_process(self):
        busy = [[0] * SLOT_WIDTH] * (SLOTS - 1) + [[120, 6] + [0] * (SLOT_WIDTH - 2)]
        document = dashboard(process(), snapshot(), window(**{"0": busy}), NOW)
        self.assertEqual(document["workers"], [])
        self.assertEqual(document["config"]["loaded"], NOW - 60)
        self.assertEqual(
            document["listeners"],
            [{"name": "web", "endpoint": "tcp:8080", "port": 8080, "connections": 1}],
        )
        # Routes by label: the unnamed one by its index.
        first, second = document["routes"]
        self.assertEqual((first["stats"]["rate"], first["stats"]["error_rate"]), (2.0, 0.05))
        self.assertEqual((second["stats"]["rate"], second["stats"]["error_rate"]), (0.0, None))
        self.assertEqual(len(second["stats"]["rates"]), SLOTS)
        upstream = document["upstreams"][0]
        self.assertEqual(
            [(b["index"], b["url"], b["state"]) for b in upstream["backends"]],
            [(0, "http://a", "up"), (1, "http://b", "up")],
        )

    def test_caches_show_their_hit_ratio_and_size(self):
        document = dashboard(process(), snapshot(), window(), NOW)
        self.assertEqual(
            document["caches"],
            [{"name": "pages", "lookups": 4, "hits": 3, "hit_ratio": 0.75,
              "size_bytes": 2048, "entries": 2}],
        )

    def test_certificates_soonest_expiry_first_with_days_left(self):
        document = dashboard(process(), snapshot(), window(), NOW)
        self.assertEqual(
            [(c["names"], c["days"], c["origin"]) for c in document["certificates"]],
            [
                (["old.test"], 2.0, "certificates[1]"),
                (["shop.test", "www.shop.test"], 10.0, "certificates[0]"),
            ],
        )

    def test_workers_add_up(self):
        status = {
            "version": "1.0",
            "pid": 99,
            "uptime": 7.0,
            "config": {"file": "proxy.toml", "sha256": None, "loaded": NOW},
            "workers": [
                process(0, connections=2, backends=[
                    backend("http://a", in_flight=2), backend("http://b", draining=True)]),
                process(1, connections=3, backends=[
                    backend("http://a", in_flight=1, healthy=False, latency=0.5),
                    backend("http://b", draining=True)]),
            ],
        }
        document = dashboard(status, snapshot(), window(), NOW)
        self.assertEqual([w["index"] for w in document["workers"]], [0, 1])
        self.assertEqual(document["pid"], 99)
        self.assertEqual(document["listeners"][0]["connections"], 5)
        upstream = document["upstreams"][0]
        self.assertEqual(upstream["in_flight"], 2)
        a, b = upstream["backends"]
        # Down when any worker finds it down; its latency the worst.
        self.assertEqual((a["state"], a["in_flight"], a["latency"]), ("down", 3, 0.5))
        self.assertEqual(b["state"], "draining")

    def test_workers_none_running_yet(self):
        status = {"version": "1.0", "pid": 99, "uptime": 1.0,
                  "config": {"file": "p", "sha256": None, "loaded": NOW}, "workers": []}
        document = dashboard(status, snapshot(), window(), NOW)
        self.assertEqual(
            (document["listeners"], document["routes"], document["upstreams"]), ([], [], [])
        )


class BackendStateTests(SynchronousTestCase):
    def test_down_before_ejected_before_draining(self):
        self.assertEqual(
            [
                backend_state(backend("x", **flags))
                for flags in (
                    {},
                    {"draining": True},
                    {"ejected": True, "draining": True},
                    {"healthy": False, "ejected": True, "draining": True},
                )
            ],
            ["up", "draining", "ejected", "down"],
        )
