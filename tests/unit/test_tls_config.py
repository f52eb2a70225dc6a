"""
Tests of TLS without a network: the SNI lookup, the TLS keys of the
configuration and their problems, the certificate store, and the
C{txrevproxy certs} command.
"""

from __future__ import annotations

import datetime
import io
import os

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509 import ocsp
from OpenSSL import SSL
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from txrevproxy.config import ConfigError, load_config
from txrevproxy.config.model import TLS, BackendTLS, TLSCertificate
from txrevproxy.tls.files import collect, read_pair
from txrevproxy.tls.store import CertificateStore, lookup
from txrevproxy.tools.cli import main

from ..support.processes import temporary_directory
from ..support.tls_clients import CertificateMaker

TABLE = {"localhost": "L", "*.example.test": "W", "shop.example.test": "S"}


class LookupTests(TestCase):
    def test_exact_name_wins_over_wildcard(self):
        self.assertEqual(lookup(TABLE, "shop.example.test", "D"), "S")

    def test_wildcard_matches_one_label(self):
        self.assertEqual(lookup(TABLE, "a.example.test", "D"), "W")

    def test_wildcard_does_not_match_two_labels_or_the_parent(self):
        self.assertEqual(lookup(TABLE, "a.b.example.test", "D"), "D")
        self.assertEqual(lookup(TABLE, "example.test", "D"), "D")
        self.assertEqual(lookup(TABLE, ".example.test", "D"), "D")

    def test_names_are_case_insensitive_and_may_end_with_a_dot(self):
        self.assertEqual(lookup(TABLE, "LocalHost.", "D"), "L")
        self.assertEqual(lookup(TABLE, "A.Example.Test", "D"), "W")

    def test_no_name_or_unknown_name_gets_the_default(self):
        self.assertEqual(lookup(TABLE, None, "D"), "D")
        self.assertEqual(lookup(TABLE, "", "D"), "D")
        self.assertEqual(lookup(TABLE, "other.test", "D"), "D")


LISTENERS = """
[listeners.websecure]
endpoint = "tcp:8443"
tls = "default"

[upstreams.app]
servers = [{ url = "http://127.0.0.1:9001" }]

[[routes]]
upstream = "app"
"""


class ConfigTests(TestCase):
    """
    C{[tls.NAME]}, a listener's C{tls} and C{http2}, and the TLS keys of
    upstreams, loaded from a file whose relative paths name files beside
    it.
    """

    def setUp(self):
        self.directory = temporary_directory(self)
        (self.directory / "certs").mkdir()
        self.maker = CertificateMaker(self.directory / "certs")
        self.maker.write("localhost", ["localhost"])
        self.maker.write("example", ["*.example.test"])

    def load(self, text: str):
        path = self.directory / "proxy.toml"
        path.write_text(text)
        return load_config(str(path))

    def problems(self, text: str):
        error = self.assertRaises(ConfigError, self.load, text)
        return error.problems

    def tls(self, body: str = "", certificates: str = "") -> str:
        certificates = certificates or (
            '{ names = ["localhost"], cert = "certs/localhost.pem", key = "certs/localhost-key.pem" },\n'
            '{ names = ["*.example.test"], cert = "certs/example.pem", key = "certs/example-key.pem" },'
        )
        return LISTENERS + "\n[tls.default]\ncertificates = [\n%s\n]\n%s\n" % (
            certificates,
            body,
        )

    def test_client_certificate_keys(self):
        config = self.load(
            self.tls(
                'client_ca = "certs/ca.pem"\nclient_auth = "optional"\n'
                'client_subject_header = "X-Client-Subject"'
            )
        )
        block = config.tls["default"]
        self.assertEqual(block.client_ca, str(self.directory / "certs" / "ca.pem"))
        self.assertEqual(
            (block.client_auth, block.client_subject_header),
            ("optional", "X-Client-Subject"),
        )

    def test_client_certificate_problems(self):
        self.assertEqual(
            self.problems(
                self.tls(
                    'client_auth = "optional"\nclient_subject_header = "X Subject"'
                )
            ),
            [
                'tls.default.client_subject_header: expected a header name such as '
                '"X-Client-Subject", got "X Subject"',
            ],
        )
        self.assertEqual(
            self.problems(
                self.tls('client_auth = "optional"\nclient_subject_header = "X-S"')
            ),
            [
                "tls.default.client_auth: needs client_ca, the CAs of the client "
                "certificates",
                "tls.default.client_subject_header: needs client_ca, the CAs of the "
                "client certificates",
            ],
        )
        problems = self.problems(self.tls('client_ca = "certs/nothere.pem"'))
        self.assertEqual(len(problems), 1)
        self.assertTrue(
            problems[0].startswith("tls.default.client_ca: certs/nothere.pem: "),
            problems,
        )

    def test_redirect_and_hsts_keys(self):
        config = self.load(
            self.tls()
            + '[listeners.web]\nendpoint = "tcp:8080"\nredirect_to_https = "websecure"\n'
        )
        self.assertEqual(config.listeners["web"].redirect_to_https, "websecure")
        text = self.tls().replace(
            'tls = "default"', 'tls = "default"\nhsts = "max-age=63072000; preload"'
        )
        self.assertEqual(
            self.load(text).listeners["websecure"].hsts, "max-age=63072000; preload"
        )

    def test_redirect_and_hsts_problems(self):
        text = self.tls() + (
            '[listeners.web]\nendpoint = "tcp:8080"\nredirect_to_https = "websecur"\n'
            'hsts = "max-age=60"\n'
            '[listeners.other]\nendpoint = "tcp:8081"\nredirect_to_https = "web"\n'
        )
        self.assertEqual(
            self.problems(text),
            [
                'listeners.web.redirect_to_https: no listener named "websecur"; '
                'did you mean "websecure"?',
                "listeners.web.hsts: only a listener with tls may send "
                "Strict-Transport-Security (browsers ignore it over plain HTTP, "
                "RFC 6797 section 7.2)",
                'listeners.other.redirect_to_https: listener "web" has no tls: '
                "redirect to a listener with tls",
            ],
        )
        text = self.tls().replace('tls = "default"', 'tls = "default"\nhsts = "1 year"')
        self.assertEqual(
            self.problems(text),
            [
                'listeners.websecure.hsts: must have a max-age directive, such as '
                '"max-age=31536000", got "1 year"'
            ],
        )

    def test_tls_table_with_defaults_and_absolute_paths(self):
        config = self.load(self.tls())
        certs = str(self.directory / "certs")
        self.assertEqual(
            config.tls["default"],
            TLS(
                "default",
                (
                    TLSCertificate(
                        os.path.join(certs, "localhost.pem"),
                        os.path.join(certs, "localhost-key.pem"),
                        ("localhost",),
                    ),
                    TLSCertificate(
                        os.path.join(certs, "example.pem"),
                        os.path.join(certs, "example-key.pem"),
                        ("*.example.test",),
                    ),
                ),
                directory=None,
                default=None,
                min_version=None,
            ),
        )
        listener = config.listeners["websecure"]
        self.assertEqual((listener.tls, listener.http2), ("default", True))

    def test_missing_certificate_file(self):
        (self.directory / "certs" / "example.pem").unlink()
        self.assertEqual(
            self.problems(self.tls()),
            ["tls.default.certificates[1].cert: certs/example.pem: no such file"],
        )

    def test_key_that_does_not_match(self):
        (self.directory / "certs" / "localhost-key.pem").write_bytes(
            (self.directory / "certs" / "example-key.pem").read_bytes()
        )
        self.assertEqual(
            self.problems(self.tls()),
            [
                "tls.default.certificates[0].key: certs/localhost-key.pem: does not "
                "match the certificate certs/localhost.pem"
            ],
        )

    def ocsp(self, ocsp: str) -> str:
        """
        A configuration whose localhost certificate staples C{ocsp}.
        """
        return self.tls(
            certificates='{ cert = "certs/localhost.pem", key = "certs/localhost-key.pem", '
            'ocsp = "%s" }' % (ocsp,)
        )

    def test_ocsp_response_is_read_with_an_absolute_path(self):
        self.maker.write_ocsp("localhost", self.directory / "certs" / "localhost.pem")
        config = self.load(self.ocsp("certs/localhost.der"))
        self.assertEqual(
            config.tls["default"].certificates[0].ocsp,
            str(self.directory / "certs" / "localhost.der"),
        )

    def test_ocsp_response_problems(self):
        certs = self.directory / "certs"
        (certs / "junk.der").write_bytes(b"hello")
        self.maker.write_ocsp("example", certs / "example.pem")
        unsuccessful = ocsp.OCSPResponseBuilder.build_unsuccessful(
            ocsp.OCSPResponseStatus.TRY_LATER
        )
        (certs / "later.der").write_bytes(
            unsuccessful.public_bytes(serialization.Encoding.DER)
        )
        serial = read_pair(
            str(certs / "localhost.pem"), str(certs / "localhost-key.pem")
        ).leaf.serial_number
        other = read_pair(
            str(certs / "example.pem"), str(certs / "example-key.pem")
        ).leaf.serial_number
        cases = [
            ("certs/missing.der", "certs/missing.der: no such file"),
            ("certs/junk.der", "certs/junk.der: not a DER OCSP response"),
            (
                "certs/later.der",
                "certs/later.der: the responder answered try_later, not a "
                "certificate status",
            ),
            (
                "certs/example.der",
                "certs/example.der: is for the certificate with serial %x, not "
                "this one (%x)" % (other, serial),
            ),
        ]
        for path, message in cases:
            self.assertEqual(
                self.problems(self.ocsp(path)),
                ["tls.default.certificates[0].ocsp: " + message],
            )
        self.assertEqual(
            self.problems(self.ocsp("")),
            ['tls.default.certificates[0].ocsp: expected a file path, got ""'],
        )

    def test_expired_ocsp_response_is_not_stapled(self):
        certs = self.directory / "certs"
        self.maker.write_ocsp(
            "localhost",
            certs / "localhost.pem",
            next_update=datetime.datetime(2020, 1, 1, tzinfo=datetime.timezone.utc),
        )
        block = self.load(self.ocsp("certs/localhost.der")).tls["default"]
        entry = collect(block).entries[0]
        self.assertIsNone(entry.staple.response)
        self.assertEqual(
            entry.staple.expired,
            "%s: expired on 2020-01-01 00:00 UTC; not stapled until it is "
            "refreshed" % (certs / "localhost.der",),
        )

    def test_expired_certificate(self):
        self.maker.write(
            "localhost",
            ["localhost"],
            now=datetime.datetime(2020, 1, 1, 1, tzinfo=datetime.timezone.utc),
            days=30,
        )
        self.assertEqual(
            self.problems(self.tls()),
            [
                "tls.default.certificates[0].cert: certs/localhost.pem: expired on "
                "2020-01-31 01:00 UTC"
            ],
        )

    def test_not_pem(self):
        (self.directory / "certs" / "localhost.pem").write_text("hello")
        (self.directory / "certs" / "example-key.pem").write_text("hello")
        self.assertEqual(
            self.problems(self.tls()),
            [
                "tls.default.certificates[0].cert: certs/localhost.pem: not a PEM certificate",
                "tls.default.certificates[1].key: certs/example-key.pem: not a PEM private key",
            ],
        )

    def test_default_that_names_no_certificate(self):
        self.assertEqual(
            self.problems(self.tls('default = "www.other.test"')),
            [
                'tls.default.default: "www.other.test" names no certificate '
                "(names: localhost, *.example.test)"
            ],
        )

    def test_default_may_name_a_wildcard(self):
        config = self.load(self.tls('default = "*.example.test"'))
        self.assertEqual(config.tls["default"].default, "*.example.test")

    def test_names_default_to_the_certificate_names(self):
        config = self.load(
            self.tls(
                certificates='{ cert = "certs/example.pem", key = "certs/example-key.pem" }'
            )
        )
        self.assertEqual(config.tls["default"].certificates[0].names, ())
        store = CertificateStore(config.tls["default"])
        self.assertIs(store.context_for("a.example.test"), store.default_context)

    def test_idle_connections_release_their_buffers(self):
        # SSL_MODE_RELEASE_BUFFERS: OpenSSL frees an idle connection's
        # read and write buffers.  set_mode(0) adds nothing and answers
        # the context's mode.
        config = self.load(
            self.tls(
                certificates='{ cert = "certs/example.pem", key = "certs/example-key.pem" }'
            )
        )
        store = CertificateStore(config.tls["default"])
        mode = store.default_context.set_mode(0)
        self.assertTrue(mode & SSL.MODE_RELEASE_BUFFERS)

    def test_a_name_served_twice(self):
        self.assertEqual(
            self.problems(
                self.tls(
                    certificates=(
                        '{ names = ["localhost"], cert = "certs/localhost.pem", key = "certs/localhost-key.pem" },\n'
                        '{ names = ["localhost"], cert = "certs/example.pem", key = "certs/example-key.pem" },'
                    )
                )
            ),
            ['tls.default.certificates[1].names: "localhost" is already served by certificates[0]'],
        )

    def test_listener_naming_no_tls_table(self):
        self.assertEqual(
            self.problems(LISTENERS.replace('tls = "default"', 'tls = "x"')),
            ['listeners.websecure.tls: no tls block named "x"'],
        )

    def test_old_tls_versions_are_refused(self):
        for version in ("1.0", "1.1"):
            self.assertEqual(
                self.problems(self.tls('min_version = "%s"' % (version,))),
                [
                    'tls.default.min_version: TLS %s is no longer safe and is not '
                    'supported; use "1.2" or higher, or preset = "old" for old clients'
                    % (version,)
                ],
            )
        self.assertEqual(
            self.problems(self.tls('preset = "modern"\nmin_version = "1.2"')),
            [
                'tls.default.min_version: TLS 1.2 is no longer safe and is not '
                'supported; use "1.3" or higher, or preset = "old" for old clients'
            ],
        )
        self.assertEqual(
            self.problems(self.tls("min_version = 1.2")),
            ['tls.default.min_version: expected a TLS version, "1.2" or "1.3", got 1.2'],
        )

    def test_policy_keys(self):
        config = self.load(
            self.tls(
                'preset = "old"\nmin_version = "1.1"\nciphers = "ECDHE+AESGCM"\n'
                'curves = ["prime256v1", "X25519"]'
            )
        )
        block = config.tls["default"]
        self.assertEqual(
            (block.preset, block.min_version, block.ciphers, block.curves),
            ("old", "1.1", "ECDHE+AESGCM", ("prime256v1", "X25519")),
        )
        default = self.load(self.tls()).tls["default"]
        self.assertEqual(
            (default.preset, default.min_version, default.ciphers, default.curves),
            ("intermediate", None, None, ("X25519", "prime256v1", "secp384r1")),
        )

    def test_bad_policy_keys(self):
        self.assertEqual(
            self.problems(
                self.tls(
                    'preset = "paranoid"\nciphers = "NOT-A-CIPHER:ALSO-NOT"\n'
                    'curves = ["X25519", "secp123"]'
                )
            ),
            [
                'tls.default.preset: unknown value "paranoid"; expected one of '
                '"intermediate", "modern", "old"',
                "tls.default.ciphers: OpenSSL selects no cipher suite from "
                "'NOT-A-CIPHER:ALSO-NOT'",
                "tls.default.curves[1]: unknown group 'secp123'; expected one of "
                "P-256, P-384, P-521, X25519, X448, ffdhe2048, ffdhe3072, ffdhe4096, "
                "ffdhe6144, ffdhe8192, prime256v1, secp256r1, secp384r1, secp521r1",
            ],
        )

    def test_tls_table_without_certificates(self):
        self.assertEqual(
            self.problems(LISTENERS + '[tls.default]\nmin_version = "1.3"\n'),
            [
                'tls.default: no certificate: give certificates = [{ cert = "...", '
                'key = "..." }], directory = "..." or acme = { email = "...", '
                'directory = "https://..." }'
            ],
        )

    def test_expiries_are_those_of_the_certificates_served_now(self):
        """
        For the metrics: each served certificate's origin, names and
        notAfter; after a reload, a certificate gone from the directory
        has none, and one renewed has its new date.
        """
        certs = self.directory / "certs"
        other, _ = self.maker.write("other", ["other.test"], days=10)
        config = self.load(LISTENERS + '[tls.default]\ndirectory = "certs"\ndefault = "localhost"\n')
        store = CertificateStore(config.tls["default"])

        def not_after(stem):
            pair = read_pair(str(certs / (stem + ".pem")), str(certs / (stem + "-key.pem")))
            return pair.leaf.not_valid_after_utc.timestamp()

        self.assertEqual(
            sorted(store.expiries()),
            sorted(
                (str(certs / (stem + ".pem")), names, not_after(stem))
                for stem, names in [
                    ("example", ("*.example.test",)),
                    ("localhost", ("localhost",)),
                    ("other", ("other.test",)),
                ]
            ),
        )
        os.remove(other)
        os.remove(certs / "other-key.pem")
        self.maker.write("localhost", ["localhost"], days=300)
        self.assertEqual(store.reload(), [])
        expiries = {names: expiry for _, names, expiry in store.expiries()}
        self.assertEqual(
            expiries,
            {("*.example.test",): not_after("example"), ("localhost",): not_after("localhost")},
        )
        self.assertGreater(expiries[("localhost",)], expiries[("*.example.test",)])

    def test_directory_serves_every_pair_by_its_names(self):
        self.maker.write("other", ["other.test", "www.other.test"])
        (self.directory / "certs" / "README").write_text("not a certificate")
        config = self.load(LISTENERS + '[tls.default]\ndirectory = "certs"\ndefault = "localhost"\n')
        store = CertificateStore(config.tls["default"])
        served = store._served
        self.assertEqual(
            sorted(served.by_name),
            ["*.example.test", "localhost", "other.test", "www.other.test"],
        )
        self.assertIs(served.default, served.by_name["localhost"])

    def test_directory_problems(self):
        self.assertEqual(
            self.problems(LISTENERS + '[tls.default]\ndirectory = "nowhere"\n'),
            ["tls.default.directory: nowhere: no such directory"],
        )
        (self.directory / "empty").mkdir()
        self.assertEqual(
            self.problems(LISTENERS + '[tls.default]\ndirectory = "empty"\n'),
            [
                "tls.default.directory: empty: no certificate found (expected "
                "NAME.pem with NAME-key.pem, NAME.crt with NAME.key, or "
                "NAME/fullchain.pem with NAME/privkey.pem, for DNS names)"
            ],
        )
        (self.directory / "certs" / "example-key.pem").write_bytes(
            (self.directory / "certs" / "localhost-key.pem").read_bytes()
        )
        self.assertEqual(
            self.problems(LISTENERS + '[tls.default]\ndirectory = "certs"\n'),
            [
                "tls.default.directory: certs/example-key.pem: does not match the "
                "certificate certs/example.pem"
            ],
        )

    def test_directory_skips_a_certificate_for_addresses_only_with_a_warning(self):
        self.maker.write("127.0.0.1", ["127.0.0.1"])
        config = self.load(LISTENERS + '[tls.default]\ndirectory = "certs"\n')
        block = config.tls["default"]
        collection = collect(block)
        self.assertEqual(collection.problems, [])
        self.assertEqual(
            collection.warnings,
            [
                (
                    ".directory",
                    "%s has no DNS names in its subjectAltName (a client sends "
                    "no SNI name for an IP address); skipped"
                    % (os.path.join(block.directory, "127.0.0.1.pem"),),
                )
            ],
        )
        logged = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        store = CertificateStore(block)
        self.assertEqual(
            sorted(store._served.by_name), ["*.example.test", "localhost"]
        )
        self.assertIn(
            "tls.default.directory: " + collection.warnings[0][1],
            [formatEvent(event) for event in logged if event["log_level"] == LogLevel.warn],
        )

    def test_directory_of_addresses_only_serves_nothing(self):
        (self.directory / "ip").mkdir()
        CertificateMaker(self.directory / "ip").write("127.0.0.1", ["127.0.0.1"])
        self.assertEqual(
            self.problems(LISTENERS + '[tls.default]\ndirectory = "ip"\n'),
            [
                "tls.default.directory: ip: no certificate found (expected "
                "NAME.pem with NAME-key.pem, NAME.crt with NAME.key, or "
                "NAME/fullchain.pem with NAME/privkey.pem, for DNS names)"
            ],
        )

    def upstream(self, server: str, upstream: str = "") -> str:
        return (
            '[listeners.web]\nendpoint = "tcp:8080"\n\n[upstreams.app]\n'
            "servers = [%s]\n%s\n\n[[routes]]\nupstream = \"app\"\n"
        ) % (server, upstream)

    def test_https_backend_tls_settings(self):
        config = self.load(
            self.upstream(
                '{ url = "https://10.0.0.1" }, '
                '{ url = "https://10.0.0.2:8443", tls_server_name = "api.internal", verify = false }',
                'ca = "certs/ca.pem"',
            )
        )
        upstream = config.upstreams["app"]
        first, second = upstream.servers
        self.assertEqual((first.scheme, first.port, second.port), ("https", 443, 8443))
        ca = str(self.directory / "certs" / "ca.pem")
        self.assertEqual(upstream.backend_tls(first), BackendTLS("10.0.0.1", ca, True))
        self.assertEqual(
            upstream.backend_tls(second), BackendTLS("api.internal", ca, False)
        )

    def test_https_backend_problems(self):
        self.assertEqual(
            self.problems(
                self.upstream(
                    '{ url = "https://10.0.0.1", ca = "certs/nothing.pem" }, '
                    '{ url = "http://10.0.0.2", verify = false }',
                    'ca = "certs/localhost-key.pem"',
                )
            ),
            [
                'upstreams.app.servers[1].verify: only meaningful for an https:// '
                'backend, got "http://10.0.0.2"',
            ],
        )
        self.assertEqual(
            self.problems(
                self.upstream(
                    '{ url = "https://10.0.0.1", ca = "certs/nothing.pem" }',
                    'ca = "certs/localhost-key.pem"',
                )
            ),
            [
                "upstreams.app.ca: certs/localhost-key.pem: not a PEM certificate",
                "upstreams.app.servers[0].ca: certs/nothing.pem: no such file",
            ],
        )

    def test_check_command_prints_certificate_problems(self):
        (self.directory / "certs" / "example.pem").unlink()
        path = self.directory / "proxy.toml"
        path.write_text(self.tls())
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(main(["check", "--config", str(path)], out, err), 1)
        self.assertEqual(
            err.getvalue(),
            "tls.default.certificates[1].cert: certs/example.pem: no such file\n",
        )


class CertsCommandTests(TestCase):
    def test_certs_are_written_signed_and_load(self):
        directory = temporary_directory(self) / "out"
        out, err = io.StringIO(), io.StringIO()
        status = main(["certs", "--out", str(directory), "localhost", "*.Example.test"], out, err)
        self.assertEqual((status, err.getvalue()), (0, ""))
        self.assertEqual(
            sorted(os.listdir(str(directory))),
            [
                "_wildcard.example.test-key.pem",
                "_wildcard.example.test.pem",
                "ca-key.pem",
                "ca.pem",
                "localhost-key.pem",
                "localhost.pem",
            ],
        )
        self.assertEqual(os.stat(str(directory / "ca-key.pem")).st_mode & 0o777, 0o600)
        ca = read_pair(str(directory / "ca.pem"), str(directory / "ca-key.pem")).leaf
        for stem, names in [
            ("localhost", ("localhost",)),
            ("_wildcard.example.test", ("*.example.test",)),
        ]:
            pair = read_pair(str(directory / (stem + ".pem")), str(directory / (stem + "-key.pem")))
            self.assertEqual(pair.dns_names, names)
            self.assertEqual(pair.chain[1], ca)
            pair.leaf.verify_directly_issued_by(ca)
        # A second run reuses the CA.
        before = (directory / "ca.pem").read_bytes()
        self.assertEqual(main(["certs", "--out", str(directory), "other.test"], out, err), 0)
        self.assertEqual((directory / "ca.pem").read_bytes(), before)
        pair = read_pair(str(directory / "other.test.pem"), str(directory / "other.test-key.pem"))
        pair.leaf.verify_directly_issued_by(ca)

    def test_addresses_go_into_the_first_host_name_certificate(self):
        directory = temporary_directory(self) / "out"
        out, err = io.StringIO(), io.StringIO()
        status = main(
            ["certs", "--out", str(directory), "127.0.0.1", "localhost", "::1", "a.test"],
            out,
            err,
        )
        self.assertEqual((status, err.getvalue()), (0, ""))
        self.assertEqual(
            sorted(name for name in os.listdir(str(directory)) if not name.startswith("ca")),
            ["a.test-key.pem", "a.test.pem", "localhost-key.pem", "localhost.pem"],
        )
        leaf = read_pair(
            str(directory / "localhost.pem"), str(directory / "localhost-key.pem")
        ).leaf
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(names.get_values_for_type(x509.DNSName), ["localhost"])
        self.assertEqual(
            [str(address) for address in names.get_values_for_type(x509.IPAddress)],
            ["127.0.0.1", "::1"],
        )

    def test_certs_output_serves_as_a_directory(self):
        directory = temporary_directory(self)
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(
            main(["certs", "--out", str(directory / "d"), "localhost", "127.0.0.1"], out, err),
            0,
        )
        path = directory / "proxy.toml"
        path.write_text(LISTENERS + '[tls.default]\ndirectory = "d"\n')
        self.assertEqual(main(["check", "--config", str(path)], out, err), 0)
        self.assertEqual(err.getvalue(), "")
        store = CertificateStore(load_config(str(path)).tls["default"])
        self.assertEqual(sorted(store._served.by_name), ["localhost"])

    def test_addresses_alone_make_one_certificate(self):
        directory = temporary_directory(self) / "out"
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(
            main(["certs", "--out", str(directory), "127.0.0.1", "::1"], out, err), 0
        )
        pair = read_pair(str(directory / "127.0.0.1.pem"), str(directory / "127.0.0.1-key.pem"))
        names = pair.leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        self.assertEqual(
            [str(address) for address in names.get_values_for_type(x509.IPAddress)],
            ["127.0.0.1", "::1"],
        )
        self.assertFalse((directory / "-1.pem").exists())

    def test_a_bad_name_is_refused(self):
        directory = temporary_directory(self) / "out"
        out, err = io.StringIO(), io.StringIO()
        self.assertEqual(main(["certs", "--out", str(directory), "a b"], out, err), 1)
        self.assertEqual(err.getvalue(), 'a b: "a b": a host name cannot contain spaces\n')
        self.assertFalse(directory.exists())

    def test_repository_development_certificates_load(self):
        config = load_config(
            os.path.join(os.path.dirname(__file__), "..", "..", "examples", "quickstart.toml")
        )
        store = CertificateStore(config.tls["default"])
        self.assertIsNot(store.context_for("a.example.test"), store.default_context)
        self.assertIs(store.context_for("localhost"), store.default_context)
