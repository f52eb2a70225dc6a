"""
Tests for the balancing keys of the configuration: servers' weight,
max_connections and drain; an upstream's policy, hash key, sticky
sessions, slow start, queue, retries, and its health and outlier tables.
"""

from __future__ import annotations

import pytest

from txrevproxy.config.model import (
    BackendServer,
    HealthCheck,
    OutlierDetection,
    Sticky,
    Upstream,
)

from ..support.configs import document, parse, problems


def test_every_balancing_key():
    config = parse(
        document(
            upstream="""
            servers = [
              { url = "http://127.0.0.1:9001", weight = 3, max_connections = 100 },
              { url = "http://127.0.0.1:9002", drain = true },
            ]
            balance = "hash"
            hash_key = "header:X-User"
            sticky = { cookie = "backend", ttl = "1h" }
            slow_start = "30s"
            queue_size = 50
            queue_timeout = "2s"
            retries = 2
            retry_budget = 10

            [upstreams.app.health]
            path = "/healthz?deep=1"
            interval = "10s"
            timeout = "1s"
            rise = 3
            fall = 2
            statuses = ["2xx", 404]
            host = "app.internal"

            [upstreams.app.outlier]
            consecutive_failures = 3
            count_5xx = false
            ejection_time = "10s"
            max_ejection_time = "2m"
            max_ejection_percent = 34
            """
        )
    )
    assert config.upstreams["app"] == Upstream(
        "app",
        (
            BackendServer(
                "http://127.0.0.1:9001", "http", "127.0.0.1", 9001, weight=3, max_connections=100
            ),
            BackendServer("http://127.0.0.1:9002", "http", "127.0.0.1", 9002, drain=True),
        ),
        balance="hash",
        hash_key="header:x-user",
        sticky=Sticky("backend", 3600.0),
        slow_start=30.0,
        queue_size=50,
        queue_timeout=2.0,
        retries=2,
        retry_budget=10,
        health=HealthCheck(
            path="/healthz?deep=1",
            interval=10.0,
            timeout=1.0,
            rise=3,
            fall=2,
            statuses=("2xx", "404"),
            host="app.internal",
        ),
        outlier=OutlierDetection(3, False, 10.0, 120.0, 34),
    )


def test_health_and_outlier_tables_have_defaults():
    config = parse(
        document(
            upstream='servers = [{ url = "http://b" }]\n'
            "[upstreams.app.health]\n[upstreams.app.outlier]\n"
        )
    )
    upstream = config.upstreams["app"]
    assert upstream.health == HealthCheck()
    assert upstream.outlier == OutlierDetection()


def test_tcp_health_check():
    config = parse(
        document(upstream='servers = [{ url = "http://b" }]\nhealth = { type = "tcp" }')
    )
    assert config.upstreams["app"].health == HealthCheck(type="tcp")


@pytest.mark.parametrize(
    "status, passes", [(200, True), (302, True), (404, True), (403, False), (503, False)]
)
def test_health_statuses(status, passes):
    check = HealthCheck(statuses=("2xx", "3xx", "404"))
    assert check.passes(status) is passes


def test_every_balancing_problem_with_its_key_path():
    found = problems(
        document(
            upstream="""
            servers = [
              { url = "http://127.0.0.1:9001", weight = 0 },
              { url = "http://127.0.0.1:9002", weight = 300, max_connections = -1 },
              { url = "http://127.0.0.1:9003", drain = "yes" },
            ]
            hash_key = "client_ip"
            sticky = { ttl = "1h" }
            queue_timeout = "0s"
            retries = -1
            retry_budget = 150

            [upstreams.app.health]
            type = "tcp"
            path = "/healthz"
            statuses = ["2xx"]

            [upstreams.app.outlier]
            ejection_time = "1m"
            max_ejection_time = "30s"
            """
        )
    )
    assert found == [
        "upstreams.app.servers[0].weight: must be at least 1, got 0",
        "upstreams.app.servers[1].weight: must be at most 256, got 300",
        "upstreams.app.servers[1].max_connections: must be at least 0, got -1",
        "upstreams.app.servers[2].drain: expected true or false, got \"yes\"",
        "upstreams.app.sticky.cookie: required key is missing",
        'upstreams.app.queue_timeout: must be longer than zero, got "0s"',
        "upstreams.app.retries: must be at least 0, got -1",
        "upstreams.app.retry_budget: must be at most 100, got 150",
        'upstreams.app.health.path: only meaningful with type = "http"',
        'upstreams.app.health.statuses: only meaningful with type = "http"',
        "upstreams.app.outlier.max_ejection_time: must not be shorter than ejection_time",
    ]


@pytest.mark.parametrize(
    "upstream, expected",
    [
        (
            'balance = "round_robin"\nhash_key = "path"',
            'upstreams.app.hash_key: only meaningful with balance = "hash", '
            'got balance = "round_robin"',
        ),
        (
            'balance = "hash"\nhash_key = "query"',
            'upstreams.app.hash_key: expected client_ip, path, "header:NAME" or '
            '"cookie:NAME", got "query"',
        ),
        (
            'balance = "hash"\nhash_key = "header:"',
            'upstreams.app.hash_key: expected client_ip, path, "header:NAME" or '
            '"cookie:NAME", got "header:"',
        ),
        (
            "[upstreams.app.health]\nstatuses = [99]",
            'upstreams.app.health.statuses[0]: expected a status code such as 200 or '
            'a class such as "2xx", got 99',
        ),
        (
            '[upstreams.app.health]\nstatuses = ["6xx"]',
            'upstreams.app.health.statuses[0]: expected a status code such as 200 or '
            'a class such as "2xx", got "6xx"',
        ),
        (
            '[upstreams.app.health]\npath = "healthz"',
            'upstreams.app.health.path: expected a path such as "/healthz" '
            '(printable ASCII, no spaces), got "healthz"',
        ),
        (
            '[upstreams.app.health]\ntype = "udp"',
            'upstreams.app.health.type: unknown value "udp"; expected one of "http", "tcp"',
        ),
        (
            '[upstreams.app.health]\nintervall = "1s"',
            'upstreams.app.health.intervall: unknown key; did you mean "interval"?',
        ),
        (
            "[upstreams.app.outlier]\nmax_ejection_percent = 101",
            "upstreams.app.outlier.max_ejection_percent: must be at most 100, got 101",
        ),
    ],
)
def test_balancing_problem(upstream, expected):
    text = document(upstream='servers = [{ url = "http://b" }]\n' + upstream)
    assert problems(text) == [expected]
