"""
The quickstart configuration and development certificates shipped in the
package for C{txrevproxy demo} (C{txrevproxy/tools/demo_files/}) are the
repository's C{examples/quickstart.toml} and C{certs/}, byte for byte, and
stay usable for a while yet.
"""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from twisted.trial.unittest import TestCase

from txrevproxy.config import load_config
from txrevproxy.tools.cli import DEMO_CONFIG

from ..support.processes import SOURCE_ROOT

SHIPPED_ROOT = Path(DEMO_CONFIG).parents[1]

#: The files shipped, by their path under both roots.
SHIPPED_FILES = [
    "examples/quickstart.toml",
    "certs/ca.pem",
    "certs/localhost.pem",
    "certs/localhost-key.pem",
    "certs/_wildcard.example.test.pem",
    "certs/_wildcard.example.test-key.pem",
]

#: How long the shipped certificates must still be valid: a release made
#: today should run its demo for a year.  When this fails, make new ones
#: with "txrevproxy certs --out certs localhost '*.example.test'" and copy
#: certs/ and examples/quickstart.toml into txrevproxy/tools/demo_files/.
MARGIN = datetime.timedelta(days=365)


class ShippedDemoFilesTests(TestCase):
    def test_shipped_files_are_the_repositorys(self):
        for name in SHIPPED_FILES:
            self.assertEqual(
                (SHIPPED_ROOT / name).read_bytes(),
                (SOURCE_ROOT / name).read_bytes(),
                "txrevproxy/tools/demo_files/%s differs from %s" % (name, name),
            )

    def test_shipped_files_are_all_the_demo_directory_holds(self):
        present = sorted(
            str(path.relative_to(SHIPPED_ROOT))
            for path in SHIPPED_ROOT.rglob("*")
            if path.is_file() and "__pycache__" not in path.parts
        )
        self.assertEqual(present, sorted(SHIPPED_FILES))

    def test_shipped_config_loads_from_its_own_directory(self):
        config = load_config(DEMO_CONFIG)
        certificate = config.tls["default"].certificates[0]
        self.assertEqual(
            certificate.cert, str(SHIPPED_ROOT / "certs" / "localhost.pem")
        )

    def test_shipped_certificates_are_valid_for_a_year_more(self):
        deadline = datetime.datetime.now(datetime.timezone.utc) + MARGIN
        for name in SHIPPED_FILES:
            if not name.endswith(".pem") or name.endswith("-key.pem"):
                continue
            for certificate in x509.load_pem_x509_certificates(
                (SHIPPED_ROOT / name).read_bytes()
            ):
                expires = certificate.not_valid_after_utc
                self.assertGreater(expires, deadline, "%s expires on %s" % (name, expires))
