"""
C{ocsp_fetch = true} in a TOML file under C{twistd -n txrevproxy}, with
OpenSSL's own OCSP responder (C{openssl ocsp -index}) as the CA's: the
proxy asks the responder its certificate names and staples the answer,
as C{openssl s_client -status} sees.
"""

from __future__ import annotations

import subprocess
import time

from cryptography import x509

from txrevproxy.tls.devcerts import key_pem

from ..support.processes import free_port, proxy_process, stop_process
from ..support.tls_clients import CertificateMaker

CONFIG = """
[listeners.websecure]
endpoint = "tcp:{port}:interface=127.0.0.1"
tls = "main"

[tls.main]
certificates = [{{ cert = "certs/site.pem", key = "certs/site-key.pem", ocsp_fetch = true }}]

[upstreams.app]
servers = [{{ url = "http://127.0.0.1:9" }}]

[[routes]]
path = "/"
respond = {{ status = 200, body = "ok" }}
"""


def openssl_responder(maker: CertificateMaker, leaf: x509.Certificate, port: int):
    """
    Run C{openssl ocsp} as the test CA's responder on port C{port}, its
    index saying that C{leaf} is valid.
    """
    certs = maker.directory
    (certs / "ca-key.pem").write_bytes(key_pem(maker.ca_key))
    (certs / "index.txt").write_text(
        "V\t%s\t\t%X\tunknown\t/CN=localhost\n"
        % (leaf.not_valid_after_utc.strftime("%y%m%d%H%M%SZ"), leaf.serial_number)
    )
    command = ["openssl", "ocsp", "-index", "index.txt", "-port", str(port)]
    command += ["-rsigner", "ca.pem", "-rkey", "ca-key.pem", "-CA", "ca.pem"]
    process = subprocess.Popen(
        command + ["-nmin", "10"],
        cwd=str(certs),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    # Not wait_for_port: a connection that sends nothing stalls this
    # responder for good.  It says when it listens.
    for line in process.stdout:
        if b"waiting for OCSP client connections" in line:
            return process
    raise AssertionError("openssl ocsp exited with %s" % (process.wait(),))


def status(port: int) -> str:
    """
    What C{openssl s_client -status} prints of a handshake for localhost.
    """
    command = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % (port,)]
    command += ["-servername", "localhost", "-status"]
    done = subprocess.run(
        command, input=b"", stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30
    )
    return done.stdout.decode("latin-1")


def test_twistd_staples_the_response_of_the_certificate_responder(tmp_path):
    certs = tmp_path / "certs"
    certs.mkdir()
    maker = CertificateMaker(certs)
    responder_port = free_port()
    cert, _ = maker.write(
        "site", ["localhost"], ocsp_url="http://127.0.0.1:%d/" % (responder_port,)
    )
    leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    responder = openssl_responder(maker, leaf, responder_port)
    try:
        with proxy_process(tmp_path, [], CONFIG) as proxy:
            deadline = time.monotonic() + 20
            output = status(proxy.port)
            while "Cert Status: good" not in output:
                assert "OCSP response: no response sent" in output, output
                assert time.monotonic() < deadline, "no response was stapled"
                time.sleep(0.05)
                output = status(proxy.port)
            assert "OCSP Response Status: successful" in output
            assert proxy.process.poll() is None
    finally:
        stop_process(responder)
