"""
Reloading the configuration of a running L{ProxyService}: under a steady
stream of requests nothing fails and the new routes take effect; a bad
configuration is refused with its problems and the old one keeps serving;
listeners that did not change keep their sockets.
"""

from __future__ import annotations

from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.defer import gatherResults, inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase
from twisted.web import resource, server
from twisted.web.client import HTTPConnectionPool

from txrevproxy.app.service import ProxyService
from txrevproxy.config import load_config

from ..support.loopback import listen
from ..support.processes import temporary_directory

CONFIG = """\
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"
{listener}
[upstreams.one]
servers = [{{ url = "http://127.0.0.1:{one}" }}]

[upstreams.two]
servers = [{{ url = "http://127.0.0.1:{two}" }}]

[[routes]]
upstream = "{route}"
"""


class Named(resource.Resource):
    """
    A backend that answers its name.
    """

    isLeaf = True

    def __init__(self, name: bytes) -> None:
        super().__init__()
        self.name = name

    def render(self, request):
        return self.name


class ReloadingProxy(TestCase):
    """
    A L{ProxyService} serving a configuration file that a test rewrites
    and reloads, in front of two backends that answer their names.
    """

    @inlineCallbacks
    def setUp(self):
        self.one = yield listen(server.Site(Named(b"one")), self)
        self.two = yield listen(server.Site(Named(b"two")), self)
        self.path = Path(temporary_directory(self)) / "proxy.toml"
        self.write("one")
        self.service = ProxyService(load_config(str(self.path)), reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.port = self.service.ports[0].getHost().port
        self.pool = HTTPConnectionPool(reactor, persistent=True)
        self.addCleanup(self.pool.closeCachedConnections)

    def write(self, route: str, extra: str = "", listener: str = "") -> None:
        self.path.write_text(
            CONFIG.format(one=self.one, two=self.two, route=route, listener=listener)
            + extra
        )


class ReloadTests(ReloadingProxy):
    @inlineCallbacks
    def get(self, keep_alive: bool = True, path: str = "/"):
        pool = self.pool if keep_alive else HTTPConnectionPool(reactor, persistent=False)
        response = yield treq.get("http://127.0.0.1:%d%s" % (self.port, path), pool=pool)
        body = yield treq.content(response)
        return response.code, body

    @inlineCallbacks
    def stream(self, count: int, results: list):
        """
        C{count} requests one after the other, alternately on a keep-alive
        connection and on a new one.
        """
        for index in range(count):
            results.append((yield self.get(keep_alive=index % 2 == 0)))

    @inlineCallbacks
    def test_reload_under_a_stream_of_requests_fails_none(self):
        results: list = []
        streams = gatherResults([self.stream(60, results) for _ in range(4)])
        while len(results) < 40:
            yield self.get()
        self.write("two")
        self.assertEqual(self.service.reload(), [])
        yield streams
        self.assertEqual({code for code, _ in results}, {200})
        self.assertEqual((yield self.get()), (200, b"two"))
        self.assertEqual((yield self.get(keep_alive=False)), (200, b"two"))
        self.assertIn((200, b"two"), results[-20:])

    @inlineCallbacks
    def test_unchanged_listener_keeps_its_socket(self):
        port = self.service.ports[0]
        self.write("two")
        self.assertEqual(self.service.reload(), [])
        self.assertIs(self.service.ports[0], port)
        self.assertEqual((yield self.get()), (200, b"two"))

    @inlineCallbacks
    def test_open_connection_takes_a_new_route_and_counts_it(self):
        self.assertEqual((yield self.get()), (200, b"one"))
        self.write("one", '\n[[routes]]\npath = "/two"\nupstream = "two"\n')
        self.assertEqual(self.service.reload(), [])
        self.assertEqual((yield self.get(path="/two/x")), (200, b"two"))
        requests = self.service.snapshot()["requests"]
        self.assertEqual(requests["web\t1\ttwo\t2xx"], 1)
        self.assertEqual(requests["web\t0\tone\t2xx"], 1)

    @inlineCallbacks
    def test_bad_configuration_is_refused_with_its_problems(self):
        self.write("three")
        problems = self.service.reload()
        self.assertEqual(problems, ['routes[0].upstream: no upstream named "three"'])
        self.assertEqual((yield self.get()), (200, b"one"))
        snapshot = self.service.snapshot()
        self.assertEqual(snapshot["reloads"], {"success": 0, "failure": 1})
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_access_log_that_cannot_be_opened_fails_the_reload(self):
        self.write("two", '\n[log]\naccess = "no/such/dir/access.log"\n')
        [problem] = self.service.reload()
        self.assertTrue(
            problem.startswith("log.access: cannot open /"), problem
        )
        self.assertIsNone(self.service.access_log.path)
        self.assertEqual((yield self.get()), (200, b"one"))
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_changing_workers_in_single_process_mode_is_refused(self):
        self.write("two", "\n[server]\nworkers = 2\n")
        self.assertEqual(
            self.service.reload(), ["server.workers: changed; this needs a restart"]
        )
        self.assertEqual((yield self.get()), (200, b"one"))
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_new_listener_listens_and_removed_one_stops(self):
        self.write("one", '\n[listeners.other]\nendpoint = "tcp:0:interface=127.0.0.1"\n')
        self.assertEqual(self.service.reload(), [])
        self.assertEqual(len(self.service.ports), 2)
        other = self.service.ports[1]
        self.write("two")
        self.assertEqual(self.service.reload(), [])
        self.assertEqual(len(self.service.ports), 1)
        yield deferLater(reactor, 0.01)
        self.assertFalse(other.connected)

    @inlineCallbacks
    def test_moved_listener_listens_on_its_new_endpoint(self):
        old = self.service.ports[0]
        self.write("two")
        self.path.write_text(self.path.read_text().replace("tcp:0:", "tcp:0:backlog=7:"))
        self.assertEqual(self.service.reload(), [])
        self.port = self.service.ports[0].getHost().port
        self.assertEqual((yield self.get(keep_alive=False)), (200, b"two"))
        yield deferLater(reactor, 0.01)
        self.assertFalse(old.connected)
        # And it is swapped like any other on the next reload.
        self.path.write_text(self.path.read_text().replace('"two"\n', '"one"\n'))
        self.assertEqual(self.service.reload(), [])
        self.assertEqual((yield self.get(keep_alive=False)), (200, b"one"))

    @inlineCallbacks
    def test_drain_through_the_service_outlasts_a_reload(self):
        state = self.service.set_draining("one", 0, True)
        self.assertTrue(state["draining"])
        self.assertEqual(self.service.reload(), [])
        self.assertTrue(self.service.runtime.balancers["one"].backends[0].draining)
        code, _ = yield self.get()
        self.assertEqual(code, 503)
        self.service.set_draining("one", "http://127.0.0.1:%d" % self.one, False)
        self.assertEqual((yield self.get()), (200, b"one"))


class KeepAliveAcrossReloadTests(ReloadingProxy):
    """
    A client connection kept alive across a reload: its next request is
    served with everything the new configuration says, the listener's
    filters and limits as well as its routes.
    """

    @inlineCallbacks
    def request(self, method: str = "GET", path: str = "/", body: bytes = b""):
        """
        One request on the pool's single kept-alive connection; also
        checks that the proxy served it on the connection it already had.
        """
        response = yield treq.request(
            method,
            "http://127.0.0.1:%d%s" % (self.port, path),
            data=body or None,
            pool=self.pool,
        )
        content = yield treq.content(response)
        return response.code, content

    def connections(self):
        return set(self.service.runtime.sites["web"].channels)

    @inlineCallbacks
    def reload_on_open_connection(self, *write_args, **write_kwargs):
        self.assertEqual((yield self.request()), (200, b"one"))
        [open_connection] = self.connections()
        self.write(*write_args, **write_kwargs)
        self.assertEqual(self.service.reload(), [])
        self.assertEqual(self.connections(), {open_connection})
        return open_connection

    @inlineCallbacks
    def test_added_listener_deny_list_applies_to_the_open_connection(self):
        yield self.reload_on_open_connection(
            "one",
            '\n[filters.nobody]\ntype = "ip_filter"\ndeny = ["127.0.0.0/8"]\n',
            listener='filters = ["nobody"]\n',
        )
        code, _ = yield self.request()
        self.assertEqual(code, 403)

    @inlineCallbacks
    def test_lowered_body_limit_applies_to_the_open_connection(self):
        self.path.write_text('[server]\nmax_request_body = "1KiB"\n' + self.path.read_text())
        self.assertEqual(self.service.reload(), [])
        self.assertEqual((yield self.request("POST", body=b"x" * 100)), (200, b"one"))
        [open_connection] = self.connections()
        self.path.write_text(self.path.read_text().replace('"1KiB"', '"10"'))
        self.assertEqual(self.service.reload(), [])
        self.assertEqual(self.connections(), {open_connection})
        code, _ = yield self.request("POST", body=b"x" * 100)
        self.assertEqual(code, 413)

    @inlineCallbacks
    def test_changed_route_applies_to_the_open_connection(self):
        yield self.reload_on_open_connection("two")
        self.assertEqual((yield self.request()), (200, b"two"))

    @inlineCallbacks
    def test_connection_open_across_two_reloads_follows_the_latest(self):
        open_connection = yield self.reload_on_open_connection("two")
        self.write("one")
        self.assertEqual(self.service.reload(), [])
        self.assertEqual(self.connections(), {open_connection})
        self.assertEqual((yield self.request()), (200, b"one"))
