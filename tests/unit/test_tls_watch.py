"""
C{[tls.NAME] watch}: a table's certificates are read again when their
files change, moved by a L{Clock}; a key written before its certificate
is never served, and the old certificate stays until the pair matches.
"""

from __future__ import annotations

import os

from OpenSSL import SSL
from twisted.internet.task import Clock
from twisted.internet.testing import MemoryReactorClock
from twisted.logger import LogLevel, formatEvent, globalLogPublisher
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config import ConfigError, load_config
from txrevproxy.tls.devcerts import key_pem, make_leaf, pem
from txrevproxy.tls.store import CertificateStore
from txrevproxy.tls.watch import CertificateWatcher

from ..support.processes import temporary_directory
from ..support.tls_clients import CertificateMaker

CONFIG = """
[listeners.websecure]
endpoint = "tcp:8443"
tls = "main"

[tls.main]
%s

[upstreams.app]
servers = [{ url = "http://127.0.0.1:9" }]

[[routes]]
upstream = "app"
"""


def served_serial(store: CertificateStore, name: str = "localhost") -> int:
    """
    The serial of the certificate a handshake for C{name} would get.
    """
    connection = SSL.Connection(store.context_for(name), None)
    return connection.get_certificate().to_cryptography().serial_number


class WatchTests(TestCase):
    def setUp(self):
        self.directory = temporary_directory(self)
        self.maker = CertificateMaker(self.directory)
        self.maker.write("site", ["localhost"])
        self.events = []
        globalLogPublisher.addObserver(self.events.append)
        self.addCleanup(globalLogPublisher.removeObserver, self.events.append)

    def watch(self, table: str = 'certificates = [{ cert = "site.pem", key = "site-key.pem" }]\nwatch = "5s"'):
        path = self.directory / "proxy.toml"
        path.write_text(CONFIG % (table,))
        block = load_config(str(path)).tls["main"]
        self.store = CertificateStore(block)
        self.clock = Clock()
        watcher = CertificateWatcher(self.store, block, block.watch, self.clock)
        watcher.startService()
        self.addCleanup(watcher.stopService)
        return watcher

    def logged(self, level: LogLevel):
        return [formatEvent(event) for event in self.events if event["log_level"] == level]

    def test_new_files_are_served_at_the_next_tick(self):
        self.watch()
        before = served_serial(self.store)
        context = self.store.default_context
        self.clock.advance(5)
        self.assertIs(self.store.default_context, context)

        cert, _ = self.maker.write("site", ["localhost"])
        self.clock.advance(4.9)
        self.assertEqual(served_serial(self.store), before)
        self.clock.advance(0.1)
        self.assertNotEqual(served_serial(self.store), before)
        self.assertEqual(
            self.logged(LogLevel.info),
            [
                "tls.main: reloaded the certificates: %s, %s changed"
                % (cert, self.directory / "site-key.pem")
            ],
        )

    def test_a_key_without_its_certificate_is_never_served(self):
        self.watch()
        before = served_serial(self.store)
        leaf, key = make_leaf(self.maker.ca, self.maker.ca_key, ["localhost"])
        (self.directory / "site-key.pem").write_bytes(key_pem(key))
        self.clock.advance(5)
        self.assertEqual(served_serial(self.store), before)
        errors = self.logged(LogLevel.error)
        self.assertEqual(len(errors), 1)
        self.assertIn("tls.main.certificates[0].key:", errors[0])
        self.assertIn("does not match the certificate", errors[0])
        self.assertEqual(len(self.logged(LogLevel.warn)), 1)

        # Not read again while the files stay as they were.
        self.clock.advance(5)
        self.assertEqual(len(self.logged(LogLevel.error)), 1)

        (self.directory / "site.pem").write_bytes(pem(leaf, self.maker.ca))
        self.clock.advance(5)
        self.assertEqual(served_serial(self.store), leaf.serial_number)
        self.assertEqual(len(self.logged(LogLevel.error)), 1)

    def test_symbolic_links_swapped_as_certbot_does(self):
        live = self.directory / "live" / "site"
        archive = self.directory / "archive" / "site"
        live.mkdir(parents=True)
        archive.mkdir(parents=True)

        def renew(number: int) -> int:
            leaf, key = make_leaf(self.maker.ca, self.maker.ca_key, ["localhost"])
            (archive / ("fullchain%d.pem" % number)).write_bytes(pem(leaf, self.maker.ca))
            (archive / ("privkey%d.pem" % number)).write_bytes(key_pem(key))
            for name in ("fullchain", "privkey"):
                link = live / (name + ".pem")
                temporary = live / (name + ".pem.new")
                os.symlink("../../archive/site/%s%d.pem" % (name, number), str(temporary))
                os.replace(str(temporary), str(link))
            return leaf.serial_number

        first = renew(1)
        self.watch('directory = "live"\nwatch = "1m"')
        self.assertEqual(served_serial(self.store), first)
        second = renew(2)
        self.clock.advance(60)
        self.assertEqual(served_serial(self.store), second)

    def test_a_new_pair_in_the_directory_is_served(self):
        (self.directory / "certs").mkdir()
        CertificateMaker(self.directory / "certs").write("a", ["localhost"])
        self.watch('directory = "certs"')
        self.assertNotIn("b.test", self.store._served.by_name)
        CertificateMaker(self.directory / "certs").write("b", ["b.test"])
        self.clock.advance(30)
        self.assertIn("b.test", self.store._served.by_name)

    def test_stopping_leaves_no_call_behind(self):
        watcher = self.watch()
        self.assertTrue(self.clock.getDelayedCalls())
        watcher.stopService()
        self.assertEqual(self.clock.getDelayedCalls(), [])


class WatchConfigTests(TestCase):
    def load(self, watch: str):
        directory = temporary_directory(self)
        CertificateMaker(directory).write("site", ["localhost"])
        path = directory / "proxy.toml"
        path.write_text(
            CONFIG % ('certificates = [{ cert = "site.pem", key = "site-key.pem" }]\n' + watch)
        )
        return load_config(str(path))

    def test_watch_defaults_to_30_seconds_and_may_be_off(self):
        self.assertEqual(self.load("").tls["main"].watch, 30.0)
        self.assertEqual(self.load('watch = "250ms"').tls["main"].watch, 0.25)
        self.assertIsNone(self.load('watch = "off"').tls["main"].watch)

    def test_bad_watch_values(self):
        for value, message in [
            ('"0s"', 'tls.main.watch: must be longer than zero, got "0s"'),
            ("30", 'tls.main.watch: expected a duration such as "30s", or "off", got 30'),
            ('"soon"', "tls.main.watch: "),
        ]:
            error = self.assertRaises(ConfigError, self.load, "watch = %s" % (value,))
            self.assertEqual(len(error.problems), 1)
            self.assertTrue(error.problems[0].startswith(message), error.problems[0])

    def test_the_proxy_service_runs_a_watcher_per_watched_table(self):
        reactor = MemoryReactorClock()
        service = ProxyService(self.load('watch = "10s"'), reactor)
        service.startService()
        [watcher] = [child for child in service if isinstance(child, CertificateWatcher)]
        self.assertTrue(watcher.running)
        self.assertIs(watcher.store, service.runtime.stores["main"])
        service.stopService()
        self.assertFalse(watcher.running)
        self.assertFalse([call for call in reactor.getDelayedCalls() if call.active()])

        off = ProxyService(self.load('watch = "off"'), MemoryReactorClock())
        off.startService()
        self.addCleanup(off.stopService)
        self.assertEqual([c for c in off if isinstance(c, CertificateWatcher)], [])
