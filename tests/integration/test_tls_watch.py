"""
C{[tls.NAME] watch} in a running C{twistd -n txrevproxy}: a certificate
renewed as certbot renews one (new files in C{archive/}, the symbolic
links of C{live/NAME/} swapped) is served to new handshakes without a
reload or a signal.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from txrevproxy.tls.devcerts import key_pem, make_leaf, pem

from ..support.processes import proxy_process
from ..support.tls_clients import CertificateMaker, served_serial

CONFIG = """
[listeners.websecure]
endpoint = "tcp:{port}:interface=127.0.0.1"
tls = "main"

[tls.main]
directory = "live"
watch = "100ms"

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:9" }}]

[[routes]]
upstream = "app"
"""


def renew(directory: Path, maker: CertificateMaker, number: int) -> int:
    """
    Write the C{number}th certificate for localhost as certbot does: into
    C{archive/site/}, then swap the links of C{live/site/} to it.

    @return: its serial number.
    """
    archive = directory / "archive" / "site"
    live = directory / "live" / "site"
    archive.mkdir(parents=True, exist_ok=True)
    live.mkdir(parents=True, exist_ok=True)
    leaf, key = make_leaf(maker.ca, maker.ca_key, ["localhost"])
    (archive / ("privkey%d.pem" % number)).write_bytes(key_pem(key))
    (archive / ("fullchain%d.pem" % number)).write_bytes(pem(leaf, maker.ca))
    for name in ("privkey", "fullchain"):
        temporary = live / (name + ".pem.new")
        os.symlink("../../archive/site/%s%d.pem" % (name, number), str(temporary))
        os.replace(str(temporary), str(live / (name + ".pem")))
    return leaf.serial_number


def test_a_certificate_renewed_by_swapping_links_is_served_without_a_reload(tmp_path):
    maker = CertificateMaker(tmp_path)
    first = renew(tmp_path, maker, 1)
    with proxy_process(tmp_path, [], CONFIG) as proxy:
        assert served_serial(proxy.port, maker.ca_path) == first
        second = renew(tmp_path, maker, 2)
        deadline = time.monotonic() + 20
        while served_serial(proxy.port, maker.ca_path) != second:
            assert time.monotonic() < deadline, "the renewed certificate was not served"
            time.sleep(0.05)
        log = (tmp_path / "proxy.log").read_text()
        assert "tls.main: reloaded the certificates: " in log
        assert "reload: serving" not in log
        assert proxy.process.poll() is None
