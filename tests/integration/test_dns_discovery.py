"""
Backends found in the DNS, over real sockets: a DNS server of the test's
own serves a zone whose records change while requests flow through the
proxy to real HTTP backends on 127.0.0.x.
"""

from __future__ import annotations

from typing import List
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import TCP4ServerEndpoint
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from txrevproxy.app.service import ProxyService
from txrevproxy.config.model import BackendServer, Config, Listener, Route, ServerSettings, Upstream

from ..support.admin_client import AdminClient
from ..support.dns_zone import Zone, a, serve_zone, srv
from ..support.loopback import raw_exchange
from ..support.processes import proxy_process, temporary_directory
from ..support.waiting import until

#: The longest time an answer is kept: the records' TTL (1s) is clamped
#: to it, so that the test does not wait seconds for a change.
REFRESH = 0.05


class Named(resource.Resource):
    """
    A backend that answers with its name; a request for C{/slow} is held
    until the test calls L{finish_slow}.
    """

    isLeaf = True

    def __init__(self, name: bytes) -> None:
        super().__init__()
        self.name = name
        self.slow: List = []
        self.slow_arrived: Deferred = Deferred()

    def render(self, request):
        if request.path == b"/slow":
            self.slow.append(request)
            if not self.slow_arrived.called:
                self.slow_arrived.callback(None)
            return server.NOT_DONE_YET
        return self.name

    def finish_slow(self) -> None:
        for request in self.slow:
            request.setHeader(b"content-length", b"%d" % (len(self.name),))
            request.write(self.name)
            request.finish()


def get(port: int, path: bytes = b"/") -> Deferred:
    """
    One GET through the proxy: a Deferred of (status code, body).
    """
    d = raw_exchange(
        port, b"GET %s HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n" % (path,)
    )
    return d.addCallback(
        lambda raw: (int(raw.split(b" ", 2)[1]), raw.partition(b"\r\n\r\n")[2])
    )


def lookup_config(entry: BackendServer, dns_port: int) -> Config:
    return Config(
        server=ServerSettings(),
        listeners={"web": Listener("web", "tcp:0:interface=127.0.0.1")},
        upstreams={
            "app": Upstream(
                "app",
                (entry,),
                resolvers=(("127.0.0.1", dns_port),),
                dns_min_ttl=REFRESH,
                dns_max_ttl=REFRESH,
                retries=0,
            )
        },
        routes=(Route(0, "app", "/"),),
    )


def _no_dns_query_in_flight() -> bool:
    return not any(
        getattr(call.func, "__name__", "") == "_clearFailed"
        for call in reactor.getDelayedCalls()
    )


class ZoneCase(TestCase):
    """
    A test with a DNS server of its own, serving C{app.test}, and
    backends on 127.0.0.x.
    """

    timeout = 60

    def setUp(self) -> None:
        self.zone = Zone("app.test")
        self.dns_port = serve_zone(self.zone, self)

    @inlineCallbacks
    def _backend(self, name: bytes, host: str = "127.0.0.1", number: int = 0):
        """
        A L{Named} backend listening on C{host}:C{number} until the end of
        the test: the resource, and its port number.
        """
        named = Named(name)
        endpoint = TCP4ServerEndpoint(reactor, number, interface=host)
        port = yield endpoint.listen(server.Site(named))
        self.addCleanup(port.stopListening)
        return named, port.getHost().port

    def _proxy(self, entry: BackendServer):
        service = ProxyService(lookup_config(entry, self.dns_port), reactor)
        service.startService()
        # After the stop: twisted.names keeps a timer for each query in
        # flight until it is answered or times out, whatever became of its
        # Deferred, so a lookup the stop cut short leaves one for a while.
        self.addCleanup(until, _no_dns_query_in_flight)
        self.addCleanup(service.stopService)
        return service, service.ports[0].getHost().port

    def _changes(self, service: ProxyService) -> List[Deferred]:
        """
        Deferreds fired by the balancer's changes of backends, in order:
        a test takes the next with C{changes.pop(0)} before it changes
        the zone.
        """
        balancer = service.runtime.balancers["app"]
        change = balancer.change
        waiting: List[Deferred] = []

        def watch(added, removed, ramp=True):
            change(added, removed, ramp)
            if (added or removed) and waiting:
                waiting.pop(0).callback((added, removed))

        balancer.change = watch
        return waiting

    def _next_change(self, waiting: List[Deferred]) -> Deferred:
        d: Deferred = Deferred()
        waiting.append(d)
        return d



class DiscoveryTests(ZoneCase):
    @inlineCallbacks
    def test_srv_change_adds_new_target_and_drains_the_one_that_left(self):
        backends = {}
        for name in (b"one", b"two", b"three"):
            backends[name] = yield self._backend(name)
        port = {name: number for name, (_, number) in backends.items()}
        self.zone.set(
            "_http._tcp.app.test",
            srv((10, 1, port[b"one"], "one.app.test"), (10, 1, port[b"two"], "two.app.test")),
        )
        for name in ("one", "two", "three"):
            self.zone.set("%s.app.test" % (name,), a("127.0.0.1"))
        entry = BackendServer(
            "http://_http._tcp.app.test", "http", "_http._tcp.app.test", 0, lookup="srv"
        )
        service, proxy = self._proxy(entry)
        waiting = self._changes(service)

        answers = yield gatherResults([get(proxy) for _ in range(6)])
        self.assertEqual({status for status, _ in answers}, {200})
        self.assertEqual({body for _, body in answers}, {b"one", b"two"})

        # A slow request reaches "two" (round robin: within two requests).
        slow = [get(proxy, b"/slow") for _ in range(2)]
        yield backends[b"two"][0].slow_arrived

        changed = self._next_change(waiting)
        flowing = []

        @inlineCallbacks
        def flow():
            # Requests while the records change, until a few after the
            # proxy saw it (at most 500).
            after = 0
            while after < 5 and len(flowing) < 500:
                flowing.append((yield get(proxy)))
                after += changed.called

        stream = flow()
        self.zone.set(
            "_http._tcp.app.test",
            srv((10, 1, port[b"one"], "one.app.test"), (10, 1, port[b"three"], "three.app.test")),
        )
        added, removed = yield changed
        yield stream
        self.assertEqual({status for status, _ in flowing}, {200})
        self.assertEqual([b.server.port for b in added], [port[b"three"]])
        self.assertEqual([b.server.port for b in removed], [port[b"two"]])
        balancer = service.runtime.balancers["app"]
        self.assertEqual(balancer.leaving, list(removed))

        answers = yield gatherResults([get(proxy) for _ in range(10)])
        self.assertEqual({status for status, _ in answers}, {200})
        self.assertEqual({body for _, body in answers}, {b"one", b"three"})

        backends[b"two"][0].finish_slow()
        backends[b"one"][0].finish_slow()
        slow_answers = yield gatherResults(slow)
        self.assertIn((200, b"two"), slow_answers)
        self.assertEqual(balancer.leaving, [])

    @inlineCallbacks
    def test_an_unresolvable_name_answers_503_until_it_resolves(self):
        backend, number = yield self._backend(b"late")
        entry = BackendServer(
            "http://late.app.test:%d" % (number,), "http", "late.app.test", number,
            lookup="dns",
        )
        service, proxy = self._proxy(entry)
        waiting = self._changes(service)
        status, _ = yield get(proxy)
        self.assertEqual(status, 503)

        changed = self._next_change(waiting)
        self.zone.set("late.app.test", a("127.0.0.1"))
        yield changed
        self.assertEqual((yield get(proxy)), (200, b"late"))


CONFIG = """\
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.app]
servers = [{{ dns = "app.test", port = {port} }}]
resolvers = ["127.0.0.1:{dns_port}"]
dns_min_ttl = "50ms"
dns_max_ttl = "50ms"

[[routes]]
upstream = "app"

[admin]
endpoint = "tcp:0:interface=127.0.0.1"
"""


class DiscoveryAdminTests(AdminClient, ZoneCase):
    """
    A proxy started from a configuration file, drained through the admin
    API.
    """

    @inlineCallbacks
    def test_a_records_keep_the_backends_that_stay_with_their_drain(self):
        _, number = yield self._backend(b"two", "127.0.0.2")
        yield self._backend(b"three", "127.0.0.3", number)
        yield self._backend(b"four", "127.0.0.4", number)
        self.zone.set("app.test", a("127.0.0.2", "127.0.0.3"))
        self.start_with(CONFIG.format(port=number, dns_port=self.dns_port))
        waiting = self._changes(self.proxy)
        answers = yield gatherResults([get(self.port) for _ in range(4)])
        self.assertEqual({body for _, body in answers}, {b"two", b"three"})

        url = "http://127.0.0.2:%d" % (number,)
        code, state = yield self.json("POST", "/backends/app/%s/drain" % (quote(url, safe=""),))
        self.assertEqual((code, state["url"], state["draining"]), (200, url, True))
        balancer = self.proxy.runtime.balancers["app"]
        drained = balancer.backend(url)

        changed = self._next_change(waiting)
        self.zone.set("app.test", a("127.0.0.2", "127.0.0.3", "127.0.0.4"))
        yield changed
        self.assertIs(balancer.backend(url), drained)
        code, status = yield self.json("GET", "/status")
        backends = {b["url"]: b for b in status["upstreams"]["app"]["backends"]}
        self.assertEqual(
            sorted(backends), [url, url.replace(".2:", ".3:"), url.replace(".2:", ".4:")]
        )
        self.assertTrue(backends[url]["draining"])
        answers = yield gatherResults([get(self.port) for _ in range(6)])
        self.assertEqual({body for _, body in answers}, {b"three", b"four"})

    @inlineCallbacks
    def test_a_reload_starts_with_the_servers_found_and_keeps_their_drain(self):
        _, number = yield self._backend(b"two", "127.0.0.2")
        yield self._backend(b"three", "127.0.0.3", number)
        self.zone.set("app.test", a("127.0.0.2", "127.0.0.3"))
        self.start_with(CONFIG.format(port=number, dns_port=self.dns_port))
        yield gatherResults([get(self.port) for _ in range(2)])
        url = "http://127.0.0.2:%d" % (number,)
        yield self.json("POST", "/backends/app/%s/drain" % (quote(url, safe=""),))

        code, _ = yield self.json("POST", "/reload")
        self.assertEqual(code, 200)
        balancer = self.proxy.runtime.balancers["app"]
        self.assertEqual(
            [b.server.url for b in balancer.backends], [url, url.replace(".2:", ".3:")]
        )
        self.assertTrue(balancer.backend(url).draining)
        answers = yield gatherResults([get(self.port) for _ in range(4)])
        self.assertEqual(set(answers), {(200, b"three")})


PROCESS_CONFIG = """\
[listeners.web]
endpoint = "tcp:{{port}}:interface=127.0.0.1"

[upstreams.app]
servers = [{{{{ dns = "app.test", port = {backend} }}}}]
resolvers = ["127.0.0.1:{dns_port}"]
dns_min_ttl = "100ms"
dns_max_ttl = "100ms"

[[routes]]
upstream = "app"
"""


class DiscoveryProcessTests(ZoneCase):
    """
    The keys in a file, under C{twistd -n txrevproxy}.
    """

    timeout = 120

    @inlineCallbacks
    def test_twistd_follows_the_a_records_of_a_name(self):
        _, number = yield self._backend(b"first", "127.0.0.2")
        yield self._backend(b"second", "127.0.0.3", number)
        self.zone.set("app.test", a("127.0.0.2"))
        # Its first query may wait in the socket while this process waits
        # for the proxy's port, and be asked again: one more to be sure.
        asked = self.zone.asked_again("app.test", 3)
        text = PROCESS_CONFIG.format(backend=number, dns_port=self.dns_port)
        running = proxy_process(temporary_directory(self), [], text)
        proxy = running.__enter__()
        self.addCleanup(running.__exit__, None, None, None)
        yield asked
        self.assertEqual((yield get(proxy.port)), (200, b"first"))

        asked = self.zone.asked_again("app.test")
        self.zone.set("app.test", a("127.0.0.3"))
        yield asked
        answers = yield gatherResults([get(proxy.port) for _ in range(3)])
        self.assertEqual(set(answers), {(200, b"second")})
