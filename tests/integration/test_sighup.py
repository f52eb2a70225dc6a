"""
SIGHUP to a running C{twistd -n txrevproxy}: the listeners' certificates
are read again, so new handshakes get the new certificate, and the proxy
keeps running; and a connection kept alive across it serves its next
request by the new configuration.
"""

from __future__ import annotations

import http.client
import signal
import time

from ..support.processes import proxy_process
from ..support.tls_clients import CertificateMaker, served_serial

CONFIG = """
[listeners.websecure]
endpoint = "tcp:{port}:interface=127.0.0.1"
tls = "main"

[tls.main]
certificates = [{{ cert = "certs/site.pem", key = "certs/site-key.pem" }}]

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:9" }}]

[[routes]]
upstream = "app"
"""


def test_sighup_serves_the_new_certificate(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    maker = CertificateMaker(certs)
    maker.write("site", ["localhost"])
    with proxy_process(tmp_path, [], CONFIG) as proxy:
        first = served_serial(proxy.port, maker.ca_path)
        maker.write("site", ["localhost"])
        proxy.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while served_serial(proxy.port, maker.ca_path) == first:
            assert time.monotonic() < deadline, "the new certificate was not served"
            time.sleep(0.05)
        assert proxy.process.poll() is None


PLAIN = """
[listeners.web]
endpoint = "tcp:{port}:interface=127.0.0.1"
{filters}
[filters.nobody]
type = "ip_filter"
deny = ["127.0.0.0/8"]

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:9" }}]

[[routes]]
path = "/"
respond = {{ status = 200, body = "open" }}
"""


def test_sighup_applies_new_listener_filters_and_limits_to_a_kept_alive_connection(tmp_path):
    with proxy_process(tmp_path, [], PLAIN.replace("{filters}", "")) as proxy:
        kept = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        kept.request("GET", "/")
        assert kept.getresponse().read() == b"open"
        proxy.config.write_text(
            '[server]\nmax_request_body = "10"\n'
            + proxy.config.read_text().replace(
                'interface=127.0.0.1"\n', 'interface=127.0.0.1"\nfilters = ["nobody"]\n', 1
            )
        )
        proxy.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 20
        while True:
            fresh = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
            fresh.request("GET", "/")
            if fresh.getresponse().status == 403:
                break
            assert time.monotonic() < deadline, "the reload did not apply"
            time.sleep(0.05)
        sock = kept.sock
        kept.request("GET", "/")
        response = kept.getresponse()
        assert (response.status, kept.sock) == (403, sock)
        response.read()
        # Still the same socket (checked after the 403); the answer closes
        # it, the body being unread.
        kept.request("POST", "/", body=b"x" * 100)
        assert kept.getresponse().status == 413


def test_sighup_that_changes_workers_in_single_process_mode_is_refused(tmp_path):
    with proxy_process(tmp_path, [], PLAIN.replace("{filters}", "")) as proxy:
        proxy.config.write_text("[server]\nworkers = 2\n" + proxy.config.read_text())
        proxy.process.send_signal(signal.SIGHUP)
        log = tmp_path / "proxy.log"
        deadline = time.monotonic() + 20
        while b"server.workers: changed; this needs a restart" not in log.read_bytes():
            assert time.monotonic() < deadline, "the reload was not refused"
            time.sleep(0.05)
        kept = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        kept.request("GET", "/")
        assert kept.getresponse().read() == b"open"
