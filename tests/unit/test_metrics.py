"""
L{txrevproxy.observe.metrics}: what a request counts, snapshots that add up across
processes, and their rendering in the Prometheus text format.
"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from txrevproxy.observe.metrics import FAMILIES, PROCESS_FAMILIES, Metrics, merge, render

from ..support.processes import SOURCE_ROOT


def samples(snapshot, family):
    text = render(snapshot).decode("utf-8")
    [parsed] = [f for f in text_string_to_metric_families(text) if f.name == family]
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for sample in parsed.samples
    }


def test_requests_count_by_status_class_and_bytes_by_listener():
    # A class no request fell in has no series yet.
    metrics = Metrics()
    route = metrics.route("web", "0", "app")
    route.record(200, 0.003, 10, 100)
    route.record(204, 0.2, 0, 0)
    route.record(502, 3.0, 0, 20)
    route.record(499, 0.1, 5, 0)
    snapshot = metrics.snapshot()
    assert snapshot["requests"] == {
        "web\t0\tapp\t2xx": 2,
        "web\t0\tapp\t4xx": 1,
        "web\t0\tapp\t5xx": 1,
    }
    assert (snapshot["received_bytes"], snapshot["sent_bytes"]) == (
        {"web": 15},
        {"web": 120},
    )


def test_a_status_outside_the_classes_counts_with_the_nearest():
    # An HTTP/2 backend's :status is any integer it sends.
    metrics = Metrics()
    route = metrics.route("web", "0", "app")
    for status in (0, 99, 100, 599, 600, 1000, -5):
        route.record(status, 0.1, 0, 0)
    assert metrics.snapshot()["requests"] == {
        "web\t0\tapp\t1xx": 4,
        "web\t0\tapp\t5xx": 3,
    }


def test_histogram_buckets_are_cumulative():
    metrics = Metrics()
    route = metrics.route("web", "0", None)
    for duration in (0.005, 0.006, 0.3, 100.0):
        route.record(200, duration, 0, 0)
    found = samples(metrics.snapshot(), "txrevproxy_request_duration_seconds")
    labels = (("listener", "web"), ("route", "0"))

    def bucket(le):
        key = tuple(sorted(labels + (("le", le),)))
        return found[("txrevproxy_request_duration_seconds_bucket", key)]

    assert [bucket("0.005"), bucket("0.01"), bucket("0.5"), bucket("30.0"), bucket("+Inf")] == [
        1.0,
        2.0,
        3.0,
        3.0,
        4.0,
    ]
    assert found[("txrevproxy_request_duration_seconds_count", labels)] == 4.0
    assert found[("txrevproxy_request_duration_seconds_sum", labels)] == 100.311


def test_snapshots_of_several_processes_add_up():
    first, second = Metrics(), Metrics()
    first.route("web", "0", "app").record(200, 0.1, 0, 1)
    second.route("web", "0", "app").record(200, 0.2, 0, 2)
    second.route("web", "1", "api").record(500, 0.2, 0, 2)
    total = merge([first.snapshot(), second.snapshot()])
    assert total["requests"]["web\t0\tapp\t2xx"] == 2
    assert total["requests"]["web\t1\tapi\t5xx"] == 1
    assert total["sent_bytes"] == {"web": 5}
    counts = total["request_duration_seconds"]["web\t0"]
    assert sum(counts[:-1]) == 2
    assert abs(counts[-1] - 0.3) < 1e-9


def test_tls_handshakes_and_reloads():
    metrics = Metrics()
    metrics.listener("websecure").handshake("TLSv1.3")
    metrics.listener("websecure").handshake("TLSv1.3")
    metrics.reloaded(True)
    metrics.reloaded(False)
    snapshot = metrics.snapshot()
    assert snapshot["tls_handshakes"] == {"websecure\tTLSv1.3": 2}
    assert snapshot["reloads"] == {"success": 1, "failure": 1}


class Served:
    """
    A certificate store as the metrics read it: what it serves now.
    """

    def __init__(self, *expiries) -> None:
        self.served = list(expiries)

    def expiries(self):
        return self.served


EXPIRY = "txrevproxy_certificate_expiry_timestamp_seconds"


def test_certificate_expiry_is_a_gauge_of_each_served_certificate():
    metrics = Metrics()
    metrics.certificates = {
        "default": Served(
            ("certificates[0]", ("localhost",), 1800000000.0),
            ("/etc/certs/shop.pem", ("shop.test", "www.shop.test"), 1900000000.0),
        )
    }
    assert samples(metrics.snapshot(), EXPIRY) == {
        (
            EXPIRY,
            (("certificate", "certificates[0]"), ("names", "localhost"), ("tls", "default")),
        ): 1800000000.0,
        (
            EXPIRY,
            (
                ("certificate", "/etc/certs/shop.pem"),
                ("names", "shop.test,www.shop.test"),
                ("tls", "default"),
            ),
        ): 1900000000.0,
    }
    # A reload serves other certificates: the others have no series.
    metrics.certificates = {"other": Served(("certificates[0]", ("a.test",), 1.0))}
    assert list(metrics.snapshot()["certificate_expiry_timestamp_seconds"]) == [
        "other\ta.test\tcertificates[0]"
    ]


def test_several_processes_serving_a_certificate_show_its_earliest_expiry():
    """
    Workers serve the same certificates: their expiries are not added up;
    while a reload reaches one worker before another, the older expiry
    stands.
    """
    first, second = Metrics(), Metrics()
    first.certificates = {"default": Served(("certificates[0]", ("localhost",), 2000.0))}
    second.certificates = {"default": Served(("certificates[0]", ("localhost",), 1000.0))}
    total = merge([first.snapshot(), second.snapshot()])
    assert total["certificate_expiry_timestamp_seconds"] == {
        "default\tlocalhost\tcertificates[0]": 1000.0
    }


def test_process_metrics_of_the_process_itself_are_unlabelled():
    found = samples(Metrics().snapshot(), "process_resident_memory_bytes")
    [((name, labels), value)] = found.items()
    assert (name, labels) == ("process_resident_memory_bytes", ())
    assert value > 0
    [(_, cpu)] = samples(Metrics().snapshot(), "process_cpu_seconds").items()
    assert cpu >= 0


def test_process_metrics_of_workers_carry_their_worker_label():
    snapshot = Metrics().snapshot()
    snapshot["process"]["0"] = {"process_open_fds": 7, "process_cpu_seconds": 1.5}
    snapshot["process"]["1"] = {"process_open_fds": 9, "process_cpu_seconds": 2.5}
    fds = samples(snapshot, "process_open_fds")
    assert fds[("process_open_fds", (("worker", "0"),))] == 7
    assert fds[("process_open_fds", (("worker", "1"),))] == 9
    assert ("process_open_fds", ()) in fds
    cpu = samples(snapshot, "process_cpu_seconds")
    assert cpu[("process_cpu_seconds_total", (("worker", "1"),))] == 2.5


def test_every_family_is_in_the_metrics_list_of_the_operations_page():
    text = (SOURCE_ROOT / "docs" / "operations.rst").read_text()
    for name, (kind, _, _) in FAMILIES.items():
        shown = name + "_total" if kind == "counter" else name
        assert "``%s``" % (shown,) in text, name
    for name, (kind, _) in PROCESS_FAMILIES.items():
        shown = name + "_total" if kind == "counter" else name
        assert "``%s``" % (shown,) in text, name
