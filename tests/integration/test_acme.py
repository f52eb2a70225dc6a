"""
C{[tls.NAME] acme} in a running C{twistd -n txrevproxy} against Pebble on
127.0.0.1: a certificate obtained with HTTP-01 (on the plain listener) or
TLS-ALPN-01 (on the TLS listener) is stored and then served, without a
restart, in real handshakes; one due for renewal is renewed; a CA that
is down is retried with backoff while the listeners keep serving.
"""

from __future__ import annotations

import contextlib
import datetime
import os
import socket
import ssl
import stat
import subprocess
import time
from pathlib import Path
from typing import Iterator

from cryptography import x509

from txrevproxy.tls.devcerts import key_pem, make_ca, make_leaf, pem

from ..support.pebble import needs_pebble, pebble
from ..support.processes import (
    free_port,
    source_tree_environment,
    stop_process,
    twistd_command,
    wait_for_port,
)

pytestmark = needs_pebble

CONFIG = """%(server)s
[listeners.web]
endpoint = "tcp:%(http)d:interface=127.0.0.1"

[listeners.websecure]
endpoint = "tcp:%(tls)d:interface=127.0.0.1"
tls = "main"

[tls.main]
acme = { email = "admin@acme.test", directory = "%(directory)s", names = ["%(name)s"], ca_bundle = "pebble-ca.pem", storage = "acme"%(extra)s }

[upstreams.app]
servers = [{ url = "http://127.0.0.1:9" }]

[[routes]]
upstream = "app"
"""

#: How long a test waits for Pebble to issue.
ISSUE_TIMEOUT = 60.0


@contextlib.contextmanager
def proxy(directory: Path, text: str, port: int) -> Iterator[subprocess.Popen]:
    config = directory / "proxy.toml"
    config.write_text(text)
    with open(directory / "proxy.log", "wb") as log:
        process = subprocess.Popen(
            twistd_command("-n", "--pidfile=", "txrevproxy", "--config", str(config)),
            cwd=str(directory),
            env=source_tree_environment(),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for_port(port, process)
        yield process
    finally:
        stop_process(process)


def served(port: int, name: str) -> x509.Certificate:
    """
    The certificate 127.0.0.1:C{port} serves for C{name} (not verified:
    the test checks its issuer itself).
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname=name) as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


def served_by(port: int, name: str, issuer: x509.Name) -> x509.Certificate:
    """
    Wait until the certificate served for C{name} is one C{issuer} signed,
    in 10 handshakes in a row (with workers, whichever accepts them).
    """
    deadline = time.monotonic() + ISSUE_TIMEOUT
    in_a_row = 0
    while in_a_row < 10:
        certificate = served(port, name)
        if certificate.issuer == issuer:
            in_a_row += 1
            continue
        in_a_row = 0
        assert time.monotonic() < deadline, "no certificate from %s was served" % (issuer,)
        time.sleep(0.1)
    return certificate


def log_of(directory: Path) -> str:
    return (directory / "proxy.log").read_text()


def obtain(tmp_path: Path, name: str, extra: str = "", server: str = "") -> None:
    http, tls = free_port(), free_port()
    with pebble(tmp_path, http, tls) as ca:
        text = CONFIG % dict(
            http=http, tls=tls, directory=ca.directory, name=name, extra=extra, server=server
        )
        with proxy(tmp_path, text, tls) as process:
            certificate = served_by(tls, name, ca.intermediate().subject)
            names = certificate.extensions.get_extension_for_class(
                x509.SubjectAlternativeName
            ).value.get_values_for_type(x509.DNSName)
            assert names == [name]
            assert process.poll() is None
    log = log_of(tmp_path)
    assert "tls.main.acme: obtained a certificate for %s" % (name,) in log
    stored = tmp_path / "acme" / "certificates" / name
    assert (stored / "fullchain.pem").exists()
    for key in (stored / "privkey.pem", tmp_path / "acme" / "account-key.pem"):
        assert stat.S_IMODE(os.stat(key).st_mode) == 0o600


@needs_pebble
def test_http01_on_the_plain_listener_obtains_a_certificate_then_served(tmp_path):
    obtain(tmp_path, "http.acme.test")


@needs_pebble
def test_tls_alpn01_on_the_tls_listener_obtains_a_certificate_then_served(tmp_path):
    obtain(tmp_path, "alpn.acme.test", ', challenge = "tls-alpn-01"')


@needs_pebble
def test_after_a_restart_the_stored_certificate_is_served_at_once(tmp_path):
    name = "restart.acme.test"
    http, tls = free_port(), free_port()
    with pebble(tmp_path, http, tls) as ca:
        text = CONFIG % dict(
            http=http, tls=tls, directory=ca.directory, name=name, extra="", server=""
        )
        with proxy(tmp_path, text, tls):
            first = served_by(tls, name, ca.intermediate().subject)
        with proxy(tmp_path, text, tls) as process:
            # The first handshake after the start gets it: nothing ordered.
            assert served(tls, name).serial_number == first.serial_number
            assert process.poll() is None
    # The log is the second run's.
    assert log_of(tmp_path).count("obtained a certificate") == 0


@needs_pebble
def test_with_workers_the_supervisor_orders_and_every_worker_serves_it(tmp_path):
    obtain(tmp_path, "workers.acme.test", server="[server]\nworkers = 2\n")
    log = log_of(tmp_path)
    # One order, by one process (the supervisor), served by the workers.
    assert log.count("obtained a certificate for workers.acme.test") == 1


@needs_pebble
def test_a_stored_certificate_due_for_renewal_is_served_then_renewed(tmp_path):
    name = "renew.acme.test"
    old_ca, old_key = make_ca()
    # Valid for two more days of its lifetime's last quarter: past the
    # two thirds at which it is renewed.
    issued = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=6)
    leaf, key = make_leaf(old_ca, old_key, [name], now=issued, days=8)
    stored = tmp_path / "acme" / "certificates" / name
    stored.mkdir(parents=True)
    (stored / "fullchain.pem").write_bytes(pem(leaf, old_ca))
    (stored / "privkey.pem").write_bytes(key_pem(key))
    http, tls = free_port(), free_port()
    with pebble(tmp_path, http, tls) as ca:
        text = CONFIG % dict(
            http=http,
            tls=tls,
            directory=ca.directory,
            name=name,
            extra="",
            server="",
        )
        with proxy(tmp_path, text, tls):
            renewed = served_by(tls, name, ca.intermediate().subject)
    assert renewed.serial_number != leaf.serial_number
    log = log_of(tmp_path)
    # It was found and renewed as due, not ordered as missing.
    assert "no certificate for %s yet" % (name,) not in log
    assert "obtained a certificate for %s" % (name,) in log


def test_a_ca_that_is_down_is_retried_with_backoff_while_serving(tmp_path):
    http, tls = free_port(), free_port()
    text = CONFIG % dict(
        http=http,
        tls=tls,
        directory="https://127.0.0.1:%d/dir" % (free_port(),),
        name="down.acme.test",
        extra="",
        server="",
    )
    (tmp_path / "pebble-ca.pem").write_bytes(pem(make_ca()[0]))
    with proxy(tmp_path, text, tls) as process:
        deadline = time.monotonic() + 30
        while "failed (1 in a row)" not in log_of(tmp_path):
            assert time.monotonic() < deadline, log_of(tmp_path)
            time.sleep(0.1)
        # The placeholder serves meanwhile: the TLS listener answers.
        placeholder = served(tls, "down.acme.test")
        assert placeholder.issuer == placeholder.subject
        assert process.poll() is None
    log = log_of(tmp_path)
    assert "CertificateManager#warn] tls.main.acme: ordering a certificate" in log
    assert "trying again in 60s" in log
