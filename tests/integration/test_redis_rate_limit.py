"""
Rate limits shared through a real redis-server (started by the tests on
a free port): the GCRA script's decisions, two proxies on one Redis
holding one limit between them, the fallback while Redis is killed under
load and the recovery once it is back, and C{[server] workers = 2}
without Redis holding the configured limit on the machine.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.logger import globalLogPublisher
from twisted.trial.unittest import TestCase

from txrevproxy.app.service import ProxyService
from txrevproxy.config.redis import REDIS
from txrevproxy.filters.shared_rate import RedisBuckets
from txrevproxy.redis.client import RedisClient, StoreUnavailable

from ..support.loopback import CountingSite, Echo, listen, raw_exchange
from ..support.processes import SOURCE_ROOT, proxy_process, temporary_directory
from ..support.redis_server import RedisServer, needs_redis, redis_server
from ..support.waiting import until
from .test_filters_integration import config, parse_response, request

#: The development CA and the localhost certificate it signed.
CERTS = SOURCE_ROOT / "certs"

#: redis-server's options for TLS only, with the localhost certificate.
TLS_SERVER = (
    "--tls-cert-file", str(CERTS / "localhost.pem"),
    "--tls-key-file", str(CERTS / "localhost-key.pem"),
    "--tls-ca-cert-file", str(CERTS / "ca.pem"),
    "--tls-auth-clients", "no",
)


def limited(backend_port: int, redis_url: str, limit: str) -> str:
    return config(
        backend_port,
        route='filters = ["limit"]',
        # A generous timeout: a loaded test machine must not make the
        # store look down.
        extra='[redis.shared]\nurl = "%s"\nretry_interval = "100ms"\ntimeout = "5s"\n\n'
        '[filters.limit]\ntype = "rate_limit"\nstore = "redis:shared"\n%s'
        % (redis_url, limit),
    )


@needs_redis
class GCRATests(TestCase):
    """
    The script's decisions, on Redis's clock.
    """

    def setUp(self):
        self.redis = redis_server(self)
        self.client = RedisClient(REDIS({"url": self.redis.url}, name="shared"), reactor)
        self.addCleanup(self.client.close)

    @inlineCallbacks
    def test_burst_is_taken_then_refused_until_the_next_token(self):
        buckets = RedisBuckets(self.client, "limit", per_second=1 / 60.0, burst=3)
        decisions = []
        for _ in range(4):
            decisions.append((yield buckets.take("192.0.2.1")))
        self.assertEqual([d[:2] for d in decisions], [(True, 2), (True, 1), (True, 0), (False, 0)])
        # Refused: the next token comes in at most a minute.
        self.assertTrue(0 < decisions[-1][2] <= 60)
        # Allowed: the bucket is full again once the tokens taken refill.
        self.assertTrue(120 < decisions[2][2] <= 180)

    @inlineCallbacks
    def test_each_key_and_each_filter_has_its_own_bucket(self):
        one = RedisBuckets(self.client, "one", per_second=1 / 60.0, burst=1)
        two = RedisBuckets(self.client, "two", per_second=1 / 60.0, burst=1)
        first = yield one.take(("192.0.2.1", (b"key",)))
        again = yield one.take(("192.0.2.1", (b"key",)))
        other_key = yield one.take(("192.0.2.2", (b"key",)))
        other_filter = yield two.take(("192.0.2.1", (b"key",)))
        self.assertEqual(
            [first[0], again[0], other_key[0], other_filter[0]], [True, False, True, True]
        )
        ttl = yield self.client.execute("PTTL", b"txrevproxy:rl:one:192.0.2.1\0key")
        self.assertTrue(0 < ttl <= 60000)

    @inlineCallbacks
    def test_a_flushed_script_cache_is_loaded_again(self):
        buckets = RedisBuckets(self.client, "limit", per_second=1.0, burst=5)
        yield buckets.take("a")
        yield self.client.execute("SCRIPT", "FLUSH")
        allowed, left, _ = yield buckets.take("a")
        self.assertEqual((allowed, left), (True, 3))


@needs_redis
class TransportTests(TestCase):
    """
    The other ways to reach Redis: TLS (C{rediss://}, the certificate
    checked against a private CA) and a unix socket, with a password.
    """

    @inlineCallbacks
    def ping(self, table):
        client = RedisClient(REDIS(table, name="shared"), reactor)
        self.addCleanup(client.close)
        answer = yield client.execute("PING")
        self.assertEqual(answer, b"PONG")
        self.assertTrue(client.up)

    def test_rediss_checks_the_server_certificate(self):
        server = redis_server(self, *TLS_SERVER)
        return self.ping(
            {"url": "rediss://localhost:%d/0" % (server.port,), "ca": str(CERTS / "ca.pem")}
        )

    @inlineCallbacks
    def test_rediss_refuses_an_unknown_authority(self):
        server = redis_server(self, *TLS_SERVER)
        client = RedisClient(
            REDIS({"url": "rediss://localhost:%d/0" % (server.port,)}, name="shared"), reactor
        )
        self.addCleanup(client.close)
        yield self.assertFailure(client.execute("PING"), StoreUnavailable)
        self.assertFalse(client.up)

    def test_unix_socket_with_password_and_database(self):
        directory = temporary_directory(self)
        socket_path = directory / "redis.sock"
        redis_server(self, "--unixsocket", str(socket_path), "--requirepass", "s3cret")
        return self.ping(
            {"url": "unix://%s?db=3" % (socket_path,), "password": "s3cret"}
        )


@needs_redis
class SharedLimitTests(TestCase):
    @inlineCallbacks
    def setUp(self):
        self.backend = CountingSite(Echo())
        self.backend_port = yield listen(self.backend, self)
        self.redis = redis_server(self)

    def start(self, config) -> ProxyService:
        service = ProxyService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        return service

    @inlineCallbacks
    def statuses(self, ports):
        """
        One request to each port in turn, all at once; their statuses.
        """
        answers = yield DeferredList(
            [raw_exchange(port, request()) for port in ports], fireOnOneErrback=True
        )
        return [parse_response(raw)[0] for _, raw in answers]

    @inlineCallbacks
    def test_two_proxies_on_one_redis_hold_one_limit(self):
        # 10 a minute with a burst of 10: over a few seconds, exactly 10
        # requests go through whichever proxy they are sent to.
        text = limited(self.backend_port, self.redis.url, 'rate = "10/m"\nburst = 10')
        ports = [service.ports[0].getHost().port for service in (self.start(text), self.start(text))]
        answered = []
        for _ in range(3):
            answered += (yield self.statuses(ports * 5))
        self.assertEqual((answered.count(200), answered.count(429)), (10, 20))
        self.assertEqual(self.backend.connections, 10)

    @inlineCallbacks
    def test_killed_redis_falls_back_then_recovers(self):
        logged = []
        globalLogPublisher.addObserver(logged.append)
        self.addCleanup(globalLogPublisher.removeObserver, logged.append)
        service = self.start(
            limited(
                self.backend_port,
                self.redis.url,
                'rate = "10/m"\nburst = 2\non_store_error = "deny"',
            )
        )
        port = service.ports[0].getHost().port
        self.assertEqual((yield self.statuses([port] * 3)).count(200), 2)

        self.redis.kill()
        during = yield self.statuses([port] * 20)
        # Denied, as on_store_error says, and not one 500 nor a hang.
        self.assertEqual(set(during), {429})
        errors = service.metrics.snapshot()["store_errors"]
        self.assertEqual(list(errors.values()), [20])
        downs = [e for e in logged if "down (" in e.get("log_format", "")]
        self.assertEqual(len(downs), 1)

        self.redis.start()
        # Retried in the background every 100ms: back to Redis, whose
        # buckets restarted empty.
        yield from until(lambda: service.runtime.redis["shared"].up)
        # Sent at once, so which of the three is refused is the network's
        # order; Redis decided all three (no more store errors).
        after = yield self.statuses([port] * 3)
        self.assertEqual(sorted(after), [200, 200, 429])
        self.assertEqual(list(service.metrics.snapshot()["store_errors"].values()), [20])
        self.assertEqual(sum(service.metrics.snapshot()["store_errors"].values()), 20)

    @inlineCallbacks
    def test_a_reload_keeps_the_client_of_an_unchanged_table(self):
        limit = 'rate = "10/m"\nburst = 3'
        service = self.start(limited(self.backend_port, self.redis.url, limit))
        port = service.ports[0].getHost().port
        client = service.runtime.redis["shared"]
        self.assertEqual((yield self.statuses([port])), [200])

        self.assertEqual(service.reload(limited(self.backend_port, self.redis.url, limit)), [])
        self.assertIs(service.runtime.redis["shared"], client)
        # The same buckets in Redis: the burst goes on where it was.
        self.assertEqual(sorted((yield self.statuses([port] * 3))), [200, 200, 429])

        changed = limited(self.backend_port, self.redis.url[: -len("/0")] + "/1", limit)
        self.assertEqual(service.reload(changed), [])
        self.assertIsNot(service.runtime.redis["shared"], client)
        # The replaced client was closed.
        yield self.assertFailure(client.execute("PING"), StoreUnavailable)

    @inlineCallbacks
    def test_local_fallback_keeps_limiting_while_redis_is_down(self):
        service = self.start(
            limited(self.backend_port, self.redis.url, 'rate = "10/m"\nburst = 3')
        )
        port = service.ports[0].getHost().port
        self.assertEqual((yield self.statuses([port] * 2)).count(200), 2)
        self.redis.kill()
        during = yield self.statuses([port] * 5)
        # This process's own buckets: a fresh burst of 3, then 429.
        self.assertEqual((during.count(200), during.count(429)), (3, 2))


def test_two_workers_without_redis_hold_the_configured_limit(tmp_path):
    """
    C{workers = 2}, buckets in each process: each worker has half the
    burst, 5 of the configured 10 a minute, so the machine never lets
    through more than 10 however the kernel spreads the connections (each
    request on a connection of its own); the access log says which worker
    answered each.
    """
    text = (
        '[server]\nworkers = 2\n\n'
        '[listeners.web]\nendpoint = "tcp:{port}:interface=127.0.0.1"\n\n'
        '[log]\naccess = "access.log"\nformat = "json"\n\n'
        '[upstreams.app]\nservers = [{{ url = "http://127.0.0.1:9" }}]\n\n'
        '[filters.limit]\ntype = "rate_limit"\nrate = "1/m"\nburst = 10\n\n'
        '[[routes]]\npath = "/"\nfilters = ["limit"]\n'
        'respond = {{ status = 200, body = "ok" }}\n'
    )
    log = tmp_path / "access.log"
    sent = 40
    with proxy_process(tmp_path, [], text) as proxy:
        for _ in range(sent):
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/" % (proxy.port,), timeout=10).read()
            except urllib.error.HTTPError as refused:
                assert refused.code == 429
        for _ in range(400):  # the workers write their lines as they go
            if log.exists() and log.read_text().count("\n") == sent:
                break
            time.sleep(0.05)
        lines = [json.loads(line) for line in log.read_text().splitlines()]
    served = [[line["status"] for line in lines if line["worker"] == w] for w in (0, 1)]
    # Each worker lets through its share, 5, of what it was sent.
    assert [statuses.count(200) for statuses in served] == [
        min(5, len(statuses)) for statuses in served
    ], served
    assert sum(statuses.count(200) for statuses in served) <= 10


@needs_redis
def test_twistd_workers_share_a_limit_kept_in_redis(tmp_path):
    """
    The keys as an operator writes them, under C{twistd -n txrevproxy}
    with two workers: the buckets are in Redis, so the machine lets
    through the configured 10, not 10 a worker.
    """
    server = RedisServer(tmp_path)
    server.start()
    try:
        text = (
            '[server]\nworkers = 2\n\n'
            '[listeners.web]\nendpoint = "tcp:{port}:interface=127.0.0.1"\n\n'
            '[redis.shared]\nurl = "%s"\ntimeout = "5s"\n\n'
            '[upstreams.app]\nservers = [{{ url = "http://127.0.0.1:9" }}]\n\n'
            '[filters.limit]\ntype = "rate_limit"\nrate = "10/m"\nburst = 10\n'
            'store = "redis:shared"\n\n'
            '[[routes]]\npath = "/"\nfilters = ["limit"]\n'
            'respond = {{ status = 200, body = "ok" }}\n' % (server.url,)
        )
        statuses = []
        with proxy_process(tmp_path, [], text) as proxy:
            for _ in range(30):
                try:
                    urllib.request.urlopen(
                        "http://127.0.0.1:%d/" % (proxy.port,), timeout=10
                    ).read()
                    statuses.append(200)
                except urllib.error.HTTPError as refused:
                    statuses.append(refused.code)
        assert (statuses.count(200), statuses.count(429)) == (10, 20)
    finally:
        server.kill()
