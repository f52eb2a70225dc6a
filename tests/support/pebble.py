"""
Pebble, Let's Encrypt's ACME test server (Debian's C{pebble}), run on
127.0.0.1 for the C{[tls.NAME] acme} tests, with C{pebble-challtestsrv}
as its DNS server answering 127.0.0.1 for every name, so that it
validates challenges against the proxy under test.
"""

from __future__ import annotations

import json
import shutil
import ssl
import subprocess
import urllib.request
from pathlib import Path
from typing import Iterator

import attr
import contextlib
import pytest
from cryptography import x509

from txrevproxy.tls.devcerts import key_pem, make_ca, make_leaf, pem

from .processes import free_port, stop_process, wait_for_port

#: Skips a test when Pebble is not installed (C{.ci/run} installs it).
needs_pebble = pytest.mark.skipif(
    shutil.which("pebble") is None or shutil.which("pebble-challtestsrv") is None,
    reason="needs pebble and pebble-challtestsrv (Debian package pebble)",
)


@attr.s(auto_attribs=True)
class Pebble:
    """
    A running Pebble.

    @ivar directory: its directory URL.
    @ivar ca: the PEM file of the CA of its HTTPS certificate (the
        proxy's C{ca_bundle}).
    """

    directory: str
    ca: Path
    management: int

    def _get(self, path: str) -> bytes:
        context = ssl.create_default_context(cafile=str(self.ca))
        url = "https://127.0.0.1:%d%s" % (self.management, path)
        with urllib.request.urlopen(url, context=context, timeout=10) as answer:
            return answer.read()

    def intermediate(self) -> x509.Certificate:
        """
        The intermediate CA that signs the certificates it issues
        (made anew each time Pebble starts).
        """
        return x509.load_pem_x509_certificate(self._get("/intermediates/0"))


def _started(command, log: Path, port: int) -> subprocess.Popen:
    with open(log, "wb") as output:
        process = subprocess.Popen(
            command,
            stdout=output,
            stderr=subprocess.STDOUT,
            env={
                "PATH": "/usr/bin:/bin",
                "PEBBLE_VA_NOSLEEP": "1",
                "PEBBLE_VA_ALWAYS_VALID": "0",
                "PEBBLE_WFE_NONCEREJECT": "0",
                "PEBBLE_AUTHZREUSE": "0",
            },
        )
    try:
        wait_for_port(port, process)
    except BaseException:
        stop_process(process)
        raise
    return process


@contextlib.contextmanager
def pebble(directory: Path, http_port: int, tls_port: int) -> Iterator[Pebble]:
    """
    Run Pebble (and its DNS server) until the block ends, validating
    HTTP-01 on 127.0.0.1:C{http_port} and TLS-ALPN-01 on
    127.0.0.1:C{tls_port}.
    """
    ca, ca_key = make_ca()
    leaf, key = make_leaf(ca, ca_key, ["127.0.0.1", "localhost"])
    (directory / "pebble-ca.pem").write_bytes(pem(ca))
    (directory / "pebble-cert.pem").write_bytes(pem(leaf, ca))
    (directory / "pebble-key.pem").write_bytes(key_pem(key))
    port, management, dns, dns_management = (free_port() for _ in range(4))
    config = directory / "pebble.json"
    config.write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": "127.0.0.1:%d" % (port,),
                    "managementListenAddress": "127.0.0.1:%d" % (management,),
                    "certificate": str(directory / "pebble-cert.pem"),
                    "privateKey": str(directory / "pebble-key.pem"),
                    "httpPort": http_port,
                    "tlsPort": tls_port,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    processes = []
    try:
        processes.append(
            _started(
                [
                    "pebble-challtestsrv",
                    "-dns01", "127.0.0.1:%d" % (dns,),
                    "-http01", "",
                    "-https01", "",
                    "-tlsalpn01", "",
                    "-management", "127.0.0.1:%d" % (dns_management,),
                    "-defaultIPv4", "127.0.0.1",
                    "-defaultIPv6", "",
                ],
                directory / "challtestsrv.log",
                dns_management,
            )
        )
        processes.append(
            _started(
                ["pebble", "-config", str(config), "-dnsserver", "127.0.0.1:%d" % (dns,)],
                directory / "pebble.log",
                port,
            )
        )
        yield Pebble(
            "https://127.0.0.1:%d/dir" % (port,), directory / "pebble-ca.pem", management
        )
    finally:
        for process in reversed(processes):
            stop_process(process)
