"""
The metrics of a real C{twistd -n txrevproxy} process, scraped from its
admin C{/metrics} over loopback: its cache's series after real misses and
hits, the expiry of the certificates it serves (and of those only, after a
reload), and the process's own series.
"""

from __future__ import annotations

import signal
import time

import pytest
from cryptography import x509
from prometheus_client.parser import text_string_to_metric_families

from ..support.processes import free_port, proxy_process
from ..support.tls_clients import CertificateMaker
from ..support.waiting import until_blocking
from .test_operations_process import Backend, fetch, serving

BODY = b"cached page"

CONFIG = """
[listeners.web]
endpoint = "tcp:{{port}}:interface=127.0.0.1"

[listeners.websecure]
endpoint = "tcp:{secure}:interface=127.0.0.1"
tls = "default"

[tls.default]
certificates = [{{{{ names = ["{name}"], cert = "{stem}.pem", key = "{stem}-key.pem" }}}}]

[upstreams.app]
servers = [{{{{ url = "http://127.0.0.1:{backend}" }}}}]

[caches.pages]
max_size = "64MiB"

[[routes]]
path = "/"
upstream = "app"
cache = "pages"

[admin]
endpoint = "tcp:{admin}:interface=127.0.0.1"
"""


class Cacheable(Backend):
    body = BODY
    fields = {"Cache-Control": "max-age=600"}


@pytest.fixture
def backend():
    yield from serving(Cacheable)


def scrape(admin: int):
    """
    Every sample of C{/metrics}: by sample name, then by its labels.
    """
    text = fetch("http://127.0.0.1:%d/metrics" % admin).decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples.setdefault(sample.name, {})[labels] = sample.value
    return samples


def not_after(path) -> float:
    leaf = x509.load_pem_x509_certificate(path.read_bytes())
    return leaf.not_valid_after_utc.timestamp()


def test_the_admin_metrics_show_the_cache_certificates_and_process(tmp_path, backend):
    maker = CertificateMaker(tmp_path)
    first, _ = maker.write("first", ["localhost"], days=30)
    second, _ = maker.write("second", ["www.example.test"], days=90)
    admin, secure = free_port(), free_port()

    def config(stem: str, name: str) -> str:
        return CONFIG.format(
            secure=secure, stem=stem, name=name, backend=backend, admin=admin
        )

    with proxy_process(tmp_path, [], config("first", "localhost")) as proxy:
        page = "http://127.0.0.1:%d/page" % proxy.port
        assert fetch(page) == BODY
        assert fetch(page) == BODY
        samples = scrape(admin)
        lookups = samples["txrevproxy_cache_lookups_total"]
        assert lookups == {
            (("cache", "pages"), ("result", "hit")): 1,
            (("cache", "pages"), ("result", "uri-miss")): 1,
        }
        pages = (("cache", "pages"),)
        assert samples["txrevproxy_cache_stores_total"] == {pages: 1}
        assert samples["txrevproxy_cache_entries"] == {pages: 1}
        assert samples["txrevproxy_cache_served_bytes_total"] == {pages: len(BODY)}
        assert samples["txrevproxy_cache_stored_bytes_total"] == {pages: len(BODY)}
        assert samples["txrevproxy_cache_size_bytes"][pages] > len(BODY)
        assert samples["txrevproxy_cache_evictions_total"][
            (("cache", "pages"), ("reason", "size"))
        ] == 0
        expiry = "txrevproxy_certificate_expiry_timestamp_seconds"
        assert samples[expiry] == {
            (
                ("certificate", "certificates[0]"),
                ("names", "localhost"),
                ("tls", "default"),
            ): not_after(first)
        }
        for name in (
            "process_cpu_seconds_total",
            "process_resident_memory_bytes",
            "process_open_fds",
        ):
            [(labels, value)] = samples[name].items()
            assert labels == () and value > 0, name
        [started] = samples["process_start_time_seconds"].values()
        assert started <= time.time()

        # A reload: the certificate that left has no series any more, and
        # the cache keeps its store and its counters.
        proxy.config.write_text(
            config("second", "www.example.test").format(port=proxy.port)
        )
        proxy.process.send_signal(signal.SIGHUP)
        until_blocking(
            lambda: not_after(second) in scrape(admin)[expiry].values(),
            not_yet=(OSError,),
        )
        assert list(scrape(admin)[expiry]) == [
            (
                ("certificate", "certificates[0]"),
                ("names", "www.example.test"),
                ("tls", "default"),
            )
        ]
        assert fetch(page) == BODY
        lookups = scrape(admin)["txrevproxy_cache_lookups_total"]
        assert lookups[(("cache", "pages"), ("result", "hit"))] == 2
        assert lookups[(("cache", "pages"), ("result", "uri-miss"))] == 1
