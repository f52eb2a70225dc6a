"""
The C{[redis.NAME]} tables and the rate limit that keeps its buckets in
one (C{store = "redis:NAME"}): the URL forms, the problems with their key
paths, the one-round-trip decision, the fallback as C{on_store_error}
says, and the share of each of C{[server] workers} without a store.
"""

from __future__ import annotations

import pytest
from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock

from txrevproxy.config.model import RedisAddress
from txrevproxy.filters import rate_limit
from txrevproxy.filters.shared_rate import key_bytes
from txrevproxy.interfaces import Answer, FilterContext
from txrevproxy.observe.metrics import Metrics, merge
from txrevproxy.redis.client import StoreUnavailable
from txrevproxy.redis.protocol import RedisError

from twisted.logger import formatEvent

from ..support.configs import document, parse, problems
from ..support.filter_requests import FakeRequest
from .test_redis_client import logged  # noqa: F401 (a fixture)

REDIS = '[redis.shared]\nurl = "redis://127.0.0.1:6379/0"\n'
LIMIT = '[filters.limit]\ntype = "rate_limit"\nrate = "10/s"\n'


@pytest.mark.parametrize(
    "url, address",
    [
        ("redis://127.0.0.1:6379/0", RedisAddress()),
        ("redis://cache.internal", RedisAddress(host="cache.internal")),
        (
            "rediss://app:pw@cache.internal:6380/3",
            RedisAddress(True, "cache.internal", 6380, None, 3, "app", "pw"),
        ),
        (
            "unix:///run/redis/redis.sock?db=1",
            RedisAddress(host=None, path="/run/redis/redis.sock", db=1),
        ),
        ("redis://:p%40ss@[::1]:7000", RedisAddress(host="::1", port=7000, password="p@ss")),
    ],
)
def test_redis_urls(url, address):
    config = parse(document(extra='[redis.shared]\nurl = "%s"' % (url,)))
    assert config.redis["shared"].url == address


def test_redis_table_defaults():
    table = parse(document(extra=REDIS)).redis["shared"]
    assert (table.timeout, table.connect_timeout, table.pool_size, table.retry_interval) == (
        0.25,
        1.0,
        2,
        1.0,
    )


@pytest.mark.parametrize(
    "extra, problem",
    [
        ('[redis.shared]\nurl = "http://x"', 'redis.shared.url: unknown scheme in "http://x"'),
        ('[redis.shared]\nurl = "redis:///0"', 'redis.shared.url: no host in "redis:///0"'),
        ('[redis.shared]\nurl = "redis://h/zero"', 'redis.shared.url: the database must be a number'),
        ('[redis.shared]\nurl = "unix://"', "redis.shared.url: a unix:// URL needs the socket's path"),
        ("[redis.shared]\ntimeout = \"1s\"", "redis.shared.url: required key is missing"),
        (REDIS + "pool_size = 0", "redis.shared.pool_size: must be at least 1"),
        (
            REDIS + 'ca = "missing.pem"',
            "redis.shared.ca: ",
        ),
        (LIMIT + 'store = "redis"', 'filters.limit.store: expected "local" or "redis:NAME"'),
        (
            REDIS + LIMIT + 'store = "redis:sahred"',
            'filters.limit.store: no [redis.sahred] table; known: "redis:shared"',
        ),
        (LIMIT + 'store = "redis:shared"', "filters.limit.store: no [redis.shared] table; add one"),
        (REDIS + LIMIT + 'on_store_error = "ignore"', "filters.limit.on_store_error: unknown value"),
    ],
)
def test_redis_problems_name_their_key(extra, problem):
    found = problems(document(extra=extra))
    assert any(text.startswith(problem) for text in found), found


def test_a_store_names_an_existing_table():
    config = parse(document(extra=REDIS + LIMIT + 'store = "redis:shared"'))
    assert config.filters["limit"].options["store"] == "redis:shared"


# The filter ----------------------------------------------------------------


class Buckets:
    """
    Stands for L{txrevproxy.filters.shared_rate.RedisBuckets}: answers
    each take with the next of C{answers}.
    """

    def __init__(self, answers, up=True):
        self.answers = list(answers)
        self.client = self
        self.up = up
        self.taken = []

    settings = type("Settings", (), {"name": "shared"})

    def take(self, key):
        self.taken.append(key)
        return self.answers.pop(0)


def shared(answers, on_store_error="local", up=True, **options):
    metrics = Metrics()
    options = rate_limit.OPTIONS(
        {"rate": "1/m", "burst": 1, "on_store_error": on_store_error, **options}
    )
    limit = rate_limit.RateLimit(
        options,
        Clock(),
        shared=Buckets(answers, up),
        errors=metrics.store_errors("shared", "limit"),
    )
    return limit, metrics


def store_errors(metrics):
    return metrics.snapshot()["store_errors"]["shared\tlimit"]


def test_shared_decision_is_one_deferred_and_says_the_limit():
    decision = Deferred()
    limit, _ = shared([decision])
    request = FakeRequest()
    verdict = limit.request(request)
    decision.callback((False, 0.0, 30.5))
    answer = verdict.result
    assert isinstance(answer, Answer) and answer.status == 429
    assert dict(answer.headers)[b"Retry-After"] == b"31"
    assert limit._shared.taken == ["192.0.2.1"]


def test_shared_allowed_request_passes():
    limit, metrics = shared([succeed((True, 4.0, 1.0))])
    assert limit.request(FakeRequest()).result is None
    assert store_errors(metrics) == 0


@pytest.mark.parametrize(
    "on_store_error, statuses",
    [("local", [None, 429]), ("allow", [None, None]), ("deny", [429, 429])],
)
def test_store_failure_falls_back_as_configured(on_store_error, statuses):
    limit, metrics = shared(
        [fail(StoreUnavailable("down")), fail(RedisError("ERR script"))], on_store_error
    )
    verdicts = [limit.request(FakeRequest()).result for _ in range(2)]
    assert [v if v is None else v.status for v in verdicts] == statuses
    assert store_errors(metrics) == 2


def test_a_refused_script_is_logged_at_most_once_a_minute(logged):
    limit, metrics = shared([fail(RedisError("OOM command not allowed")) for _ in range(4)], "allow")
    for now in (0, 1, 59, 60):
        limit.clock.advance(now - limit.clock.seconds())
        assert limit.request(FakeRequest()).result is None
    lines = [
        formatEvent(event) for event in logged if "refused the rate limit" in event.get("log_format", "")
    ]
    assert lines == [
        'redis.shared refused the rate limit script: OOM command not allowed; requests '
        'are decided as on_store_error = "allow" says (logged at most once a minute)'
    ] * 2
    assert store_errors(metrics) == 4


def test_open_circuit_decides_at_once_without_asking():
    limit, metrics = shared([], "local", up=False)
    assert limit.request(FakeRequest()) is None
    assert limit.request(FakeRequest()).status == 429
    assert limit._shared.taken == []
    assert store_errors(metrics) == 2


def test_store_keys_are_spelled_alike_by_every_instance():
    assert key_bytes(("192.0.2.1", (b"a", b"b"), 3, None)) == b"192.0.2.1\0a\0b\x003\0"


def test_each_worker_has_its_share_of_a_local_limit():
    options = rate_limit.OPTIONS({"rate": "10/s", "burst": 5})
    limit = rate_limit.RateLimit(options, Clock(), workers=2)
    assert (limit.rate, limit.burst) == (5.0, 3)
    assert [limit.take("k")[0] for _ in range(4)] == [True] * 3 + [False]
    # Clients are told the machine's limit.
    assert dict(limit._fields(0, 1))[b"RateLimit-Limit"] == b"5"


def test_configure_uses_the_tables_client_and_counts_in_the_metrics():
    client = object()
    metrics = Metrics()
    context = FilterContext("limit", Clock(), None, redis={"shared": client}, metrics=metrics, workers=4)
    limit = rate_limit.configure({"rate": "4/s", "store": "redis:shared"}, context)
    assert limit._shared.client is client
    # Shared buckets are not divided; the local fallback is.
    assert limit._shared._arguments == (250000, 4)
    assert (limit.rate, limit.burst) == (1.0, 1)
    assert metrics.snapshot()["store_errors"] == {"shared\tlimit": 0}


def test_store_errors_of_workers_add_up():
    first, second = Metrics(), Metrics()
    for metrics, count in ((first, 2), (second, 3)):
        errors = metrics.store_errors("shared", "limit")
        for _ in range(count):
            errors()
    total = merge([first.snapshot(), second.snapshot()])
    assert total["store_errors"] == {"shared\tlimit": 5}
