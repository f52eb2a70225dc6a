"""
C{txrevproxy demo} without C{--config}, from an empty directory, as
txrevproxy installed from its wheel runs it: the quickstart configuration
and the development certificates ship as package data.

The wheel is built from this source tree and installed with
C{pip install --no-deps --target} into a temporary directory put first on
the Python path, so the demo runs the installed files (and this
interpreter's dependencies) rather than the source tree.
"""

from __future__ import annotations

import socket
import ssl
import subprocess
import sys
import urllib.request
import zipfile

from twisted.trial.unittest import SkipTest, TestCase

from ..support.processes import (
    SOURCE_ROOT,
    stop_process,
    temporary_directory,
    wait_for_port,
)

#: The ports of the shipped quickstart: the proxy's two listeners and the
#: two demo backends.
QUICKSTART_PORTS = (8080, 8443, 9001, 9002)

#: What the wheel must hold for the demo to run without the source tree.
SHIPPED = {
    "txrevproxy/tools/demo_files/examples/quickstart.toml",
    "txrevproxy/tools/demo_files/certs/ca.pem",
    "txrevproxy/tools/demo_files/certs/localhost.pem",
    "txrevproxy/tools/demo_files/certs/localhost-key.pem",
    "txrevproxy/tools/demo_files/certs/_wildcard.example.test.pem",
    "txrevproxy/tools/demo_files/certs/_wildcard.example.test-key.pem",
}


def pip(*arguments: str) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"] + list(arguments),
        check=True,
        timeout=300,
    )


def ports_in_use(ports) -> list:
    busy = []
    for port in ports:
        with socket.socket() as probe:
            # As Twisted listens: a port with connections in TIME_WAIT is free.
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                busy.append(port)
    return busy


class DemoFromWheelTests(TestCase):
    timeout = 300

    def test_demo_without_config_serves_from_an_empty_directory(self):
        busy = ports_in_use(QUICKSTART_PORTS)
        if busy:
            raise SkipTest("the quickstart's ports are in use: %s" % (busy,))
        work = temporary_directory(self)
        pip("wheel", str(SOURCE_ROOT), "--no-deps", "-w", str(work / "dist"))
        (wheel,) = (work / "dist").glob("txrevproxy-*.whl")
        with zipfile.ZipFile(str(wheel)) as archive:
            names = set(archive.namelist())
        self.assertEqual(SHIPPED - names, set())
        self.assertNotIn("txrevproxy/tools/demo_files/certs/ca-key.pem", names)

        site = work / "site"
        pip("install", "--no-deps", "--target", str(site), str(wheel))
        empty = work / "empty"
        empty.mkdir()
        process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys; from txrevproxy.tools.cli import main; sys.exit(main())",
                "demo",
            ],
            cwd=str(empty),
            env={"PYTHONPATH": str(site), "PATH": "/usr/bin:/bin"},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.addCleanup(process.stderr.close)
        self.addCleanup(process.stdout.close)
        self.addCleanup(stop_process, process)
        wait_for_port(8080, process)

        shipped_ca = site / "txrevproxy" / "tools" / "demo_files" / "certs" / "ca.pem"
        with urllib.request.urlopen("http://127.0.0.1:8080/", timeout=30) as answer:
            body = answer.read().decode("utf-8")
        trusting = ssl.create_default_context(cafile=str(shipped_ca))
        with urllib.request.urlopen(
            "https://localhost:8443/", timeout=30, context=trusting
        ) as answer:
            secure = answer.read().decode("utf-8")
        stop_process(process)
        out = process.stdout.read().decode("utf-8")

        self.assertTrue(body.startswith("Hello from demo backend app["), body)
        self.assertIn("X-Forwarded-For: 127.0.0.1", body)
        self.assertIn("X-Forwarded-Proto: https", secure)
        self.assertIn("curl --cacert %s " % (shipped_ca,), out)
        self.assertEqual(list(empty.iterdir()), [])
