"""
Unit tests of the built-in filters and of their configuration: bucket
arithmetic on a L{Clock}, client address resolution, CIDR lists, headers,
keys, passwords and WAF rules.
"""

from __future__ import annotations

import base64

import bcrypt
import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from txrevproxy.config import ConfigError
from txrevproxy.config.schema import Invalid
from txrevproxy.filters import (
    Answer,
    FilterContext,
    api_key,
    basic_auth,
    ip_filter,
    rate_limit,
    security_headers,
    waf,
)
from txrevproxy.filters.client import client_address

from ..support.configs import document, parse
from ..support.filter_requests import FakeRequest

# Rate limiting ---------------------------------------------------------


def limiter(clock, **options):
    return rate_limit.RateLimit(rate_limit.OPTIONS(options), clock)


def test_bucket_allows_burst_then_refills_at_rate():
    clock = Clock()
    limit = limiter(clock, rate="2/s", burst=4)
    assert [limit.take("k")[0] for _ in range(6)] == [True] * 4 + [False] * 2
    clock.advance(0.5)
    assert [limit.take("k")[0] for _ in range(2)] == [True, False]
    clock.advance(10)
    assert [limit.take("k")[0] for _ in range(5)] == [True] * 4 + [False]


def test_burst_defaults_to_one_second_of_rate():
    limit = limiter(Clock(), rate="6000/m")
    assert limit.burst == 100


def test_refusal_says_when_to_come_back():
    clock = Clock()
    limit = limiter(clock, rate="1/m", burst=1)
    assert limit.request(FakeRequest()) is None
    answer = limit.request(FakeRequest())
    fields = dict(answer.headers)
    assert answer.status == 429
    assert fields[b"Retry-After"] == b"60"
    assert fields[b"RateLimit-Remaining"] == b"0"
    assert fields[b"RateLimit-Limit"] == b"1"
    assert fields[b"RateLimit-Policy"] == b"1;w=60"
    clock.advance(30)
    assert dict(limit.request(FakeRequest()).headers)[b"Retry-After"] == b"30"


def test_allowed_responses_carry_the_closest_limit():
    clock = Clock()
    loose, tight = limiter(clock, rate="100/s"), limiter(clock, rate="5/s")
    request = FakeRequest()
    assert loose.request(request) is None and tight.request(request) is None
    headers = [(b"Content-Type", b"text/plain")]
    loose.response(request, 200, headers)
    tight.response(request, 200, headers)
    fields = dict(headers)
    assert fields[b"RateLimit-Remaining"] == b"4"
    assert fields[b"RateLimit-Limit"] == b"5"


def test_keys_are_separate_and_combinable():
    clock = Clock()
    limit = limiter(clock, rate="1/m", key="client_ip+header:X-Key")
    a1 = FakeRequest(b"192.0.2.1", [(b"X-Key", b"one")])
    a2 = FakeRequest(b"192.0.2.1", [(b"X-Key", b"two")])
    b1 = FakeRequest(b"192.0.2.2", [(b"X-Key", b"one")])
    assert [limit.request(r) for r in (a1, a2, b1)] == [None, None, None]
    assert limit.request(FakeRequest(b"192.0.2.1", [(b"X-Key", b"one")])).status == 429


def test_route_key_is_the_route_the_router_chose():
    limit = limiter(Clock(), rate="1/m", key="route")
    first, second = FakeRequest(b"192.0.2.1"), FakeRequest(b"192.0.2.2")
    first.route_index, second.route_index = 0, 1
    assert limit.request(first) is None and limit.request(second) is None
    again = FakeRequest(b"192.0.2.3")
    again.route_index = 0
    assert limit.request(again).status == 429


def test_idle_buckets_are_dropped_and_keys_bounded():
    clock = Clock()
    limit = limiter(clock, rate="10/s", burst=10, max_keys=50)
    for i in range(200):
        limit.take(i)
    assert len(limit) == 50
    clock.advance(1.0)  # every bucket has refilled: all idle
    for i in range(30):
        limit.take("new%d" % i)
    # Each take drops up to two idle buckets: the 50 idle ones are gone,
    # the 30 new ones stay.
    assert len(limit) == 30


@pytest.mark.parametrize(
    "options, problem",
    [
        (
            {"rate": "fast"},
            (".rate", 'expected a rate such as "100/s" or "6000/m", got "fast"'),
        ),
        ({"rate": "0/s"}, (".rate", 'must be more than 0, got "0/s"')),
        (
            {"rate": "1/s", "key": "ip"},
            (
                ".key",
                'unknown key part "ip"; expected "client_ip", "route" or "header:NAME"',
            ),
        ),
        ({"rate": "1/s", "burst": 0}, (".burst", "must be at least 1, got 0")),
        ({}, (".rate", "required key is missing")),
    ],
)
def test_rate_limit_options(options, problem):
    with pytest.raises(Invalid) as caught:
        rate_limit.OPTIONS(options)
    assert problem in caught.value.problems


# Client addresses and IP filters --------------------------------------


@pytest.mark.parametrize(
    "peer, forwarded, expected",
    [
        (b"192.0.2.1", None, "192.0.2.1"),
        # An untrusted peer's X-Forwarded-For is ignored.
        (b"192.0.2.1", b"10.9.9.9", "192.0.2.1"),
        # A trusted peer: the right-most untrusted entry.
        (b"10.0.0.1", b"198.51.100.7", "198.51.100.7"),
        (b"10.0.0.1", b"6.6.6.6, 198.51.100.7, 10.0.0.2", "198.51.100.7"),
        (b"10.0.0.1", b"garbage, 10.0.0.3", "garbage"),
        (b"10.0.0.1", b"10.0.0.5, 10.0.0.3", "10.0.0.5"),
        (b"10.0.0.1", None, "10.0.0.1"),
        (b"::1", b"2001:db8::7", "2001:db8::7"),
    ],
)
def test_client_address(peer, forwarded, expected):
    headers = [] if forwarded is None else [(b"X-Forwarded-For", forwarded)]
    request = FakeRequest(peer, headers, trusted=["10.0.0.0/8", "::1/128"])
    assert client_address(request) == expected


def test_ip_filter_deny_then_allow():
    check = ip_filter.configure(
        {"allow": ["10.0.0.0/8", "2001:db8::/32"], "deny": ["10.6.6.0/24"]}, None
    )
    assert check.allows("10.1.2.3")
    assert not check.allows("10.6.6.6")
    assert not check.allows("192.0.2.1")
    assert check.allows("2001:db8::1")
    assert not check.allows("2001:db9::1")
    assert check.allows("::ffff:10.1.2.3")
    assert not check.allows("unix")
    assert check.request(FakeRequest(b"192.0.2.1")) == Answer(403)
    only_deny = ip_filter.configure({"deny": ["192.0.2.0/24"], "status": 404}, None)
    assert only_deny.request(FakeRequest(b"192.0.2.1")) == Answer(404)
    assert only_deny.request(FakeRequest(b"198.51.100.1")) is None


def test_ip_filter_options():
    with pytest.raises(Invalid) as caught:
        ip_filter.OPTIONS({"allow": ["10.0.0.1/8"]})
    assert caught.value.problems == [
        (".allow[0]", '"10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?')
    ]
    with pytest.raises(Invalid):
        ip_filter.OPTIONS({})


# Security headers --------------------------------------------------------


def test_security_headers_defaults():
    headers = [
        (b"Server", b"Apache/2.4.1"),
        (b"X-Powered-By", b"PHP/5"),
        (b"X-Frame-Options", b"DENY"),
    ]
    security_headers.configure({}, None).response(FakeRequest(), 200, headers)
    fields = dict(headers)
    assert b"Server" not in fields and b"X-Powered-By" not in fields
    assert fields[b"X-Frame-Options"] == b"DENY"  # the backend's own is kept
    assert fields[b"X-Content-Type-Options"] == b"nosniff"
    assert fields[b"Referrer-Policy"] == b"strict-origin-when-cross-origin"
    assert fields[b"Strict-Transport-Security"].startswith(b"max-age=")
    assert b"Content-Security-Policy" not in fields


def test_security_headers_configured():
    filter_ = security_headers.configure(
        {
            "override": True,
            "frame_options": "DENY",
            "hsts": False,
            "content_security_policy": "default-src 'self'",
            "server": "edge",
            "hide_headers": [],
        },
        None,
    )
    headers = [(b"X-Frame-Options", b"ALLOWALL"), (b"Server", b"gunicorn")]
    filter_.response(FakeRequest(), 200, headers)
    fields = dict(headers)
    assert fields[b"X-Frame-Options"] == b"DENY"
    assert fields[b"Server"] == b"edge"
    assert fields[b"Content-Security-Policy"] == b"default-src 'self'"
    assert b"Strict-Transport-Security" not in fields
    with pytest.raises(Invalid):
        security_headers.OPTIONS({"frame_options": 3})


# API keys --------------------------------------------------------------


def test_api_key_header_and_query(tmp_path):
    keys = tmp_path / "keys.txt"
    keys.write_text("# comment\nfile-key-12345\n")
    check = api_key.configure(
        {"keys": ["inline-key-123"], "keys_file": str(keys), "query": "api_key"},
        FilterContext("k", None, None),
    )
    good = FakeRequest(headers=[(b"X-API-Key", b"inline-key-123")])
    assert check.request(good) is None
    assert not good.requestHeaders.hasHeader(b"x-api-key")
    assert (
        check.request(FakeRequest(headers=[(b"X-API-Key", b"wrong-key-123")])).status
        == 401
    )
    assert check.request(FakeRequest()).status == 401
    by_query = FakeRequest(uri=b"/x?a=1&api_key=file-key-12345&b=2")
    assert check.request(by_query) is None
    assert by_query.uri == b"/x?a=1&b=2"


def test_api_key_options(tmp_path):
    with pytest.raises(Invalid) as caught:
        api_key.configure({"keys": ["short"]}, FilterContext("k", None, None))
    assert caught.value.problems[0][0] == ".keys[0]"
    with pytest.raises(Invalid) as caught:
        api_key.configure(
            {"keys_file": "missing.txt"}, FilterContext("k", None, None, str(tmp_path))
        )
    assert caught.value.problems[0][0] == ".keys_file"


# Basic authentication --------------------------------------------------


def authorization(user: bytes, password: bytes):
    return (b"Authorization", b"Basic " + base64.b64encode(user + b":" + password))


def test_basic_auth(tmp_path):
    users = tmp_path / "htpasswd"
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).replace(
        b"$2b$", b"$2y$"
    )
    users.write_bytes(b"alice:" + hashed + b"\n")
    clock = Clock()
    checks = []

    def run(function, *args):
        checks.append(args)
        return succeed(function(*args))

    parsed = basic_auth.OPTIONS({"users_file": str(users), "user_header": "X-User"})
    auth = basic_auth.BasicAuth(parsed, basic_auth.read_users(str(users)), clock, run)
    challenge = auth.request(FakeRequest())
    assert challenge.status == 401
    assert dict(challenge.headers)[b"WWW-Authenticate"].startswith(
        b'Basic realm="txrevproxy"'
    )
    request = FakeRequest(
        headers=[authorization(b"alice", b"s3cret"), (b"X-User", b"forged")]
    )
    results = []
    auth.request(request).addCallback(results.append)
    assert results == [None]
    assert request.requestHeaders.getRawHeaders(b"x-user") == [b"alice"]
    # The client's other spellings of the field are gone too.
    request = FakeRequest(
        headers=[
            authorization(b"alice", b"s3cret"),
            (b"X_User", b"admin"),
            (b"Connection", b"X-User"),
        ]
    )
    auth.request(request)
    assert request.requestHeaders.getRawHeaders(b"x_user") is None
    assert request.requestHeaders.getRawHeaders(b"connection") is None
    assert request.requestHeaders.getRawHeaders(b"x-user") == [b"alice"]
    # Remembered: the hash is not checked again within the cache time.
    assert (
        auth.request(FakeRequest(headers=[authorization(b"alice", b"s3cret")])) is None
    )
    assert len(checks) == 1
    clock.advance(61)
    auth.request(FakeRequest(headers=[authorization(b"alice", b"s3cret")]))
    assert len(checks) == 2
    results = []
    auth.request(FakeRequest(headers=[authorization(b"alice", b"wrong")])).addCallback(
        results.append
    )
    assert results[0].status == 401
    # An unknown user costs a hash check too, so that the time of the 401
    # does not tell which users exist.
    del checks[:]
    auth.request(FakeRequest(headers=[authorization(b"bob", b"s3cret")])).addCallback(
        results.append
    )
    assert results[1].status == 401
    assert checks == [(b"s3cret",)]
    assert (
        auth.request(FakeRequest(headers=[(b"Authorization", b"Basic !!!")])).status
        == 401
    )


@pytest.mark.parametrize(
    "line, message",
    [
        (b"alice:plaintext", "line 1: only bcrypt"),
        (b"alice:$apr1$abc$def", "line 1: only bcrypt"),
        (b"alice:{SHA}abc=", "line 1: only bcrypt"),
        (b"no colon here", "line 1: expected user:hash"),
    ],
)
def test_basic_auth_refuses_weak_files(tmp_path, line, message):
    users = tmp_path / "htpasswd"
    users.write_bytes(line + b"\n")
    with pytest.raises(Invalid) as caught:
        basic_auth.read_users(str(users))
    assert message in caught.value.problems[0][1]


def test_basic_auth_argon2(tmp_path):
    argon2 = pytest.importorskip("argon2")
    users = tmp_path / "htpasswd"
    users.write_text("carol:" + argon2.PasswordHasher().hash("pw") + "\n")
    check = basic_auth.read_users(str(users))[b"carol"]
    assert check(b"pw") and not check(b"nope")


# WAF ----------------------------------------------------------------------


def test_waf_rules_and_scanners():
    firewall = waf.configure(
        {
            "rules": [
                {"field": "path", "contains": "../", "name": "traversal"},
                {"field": "query", "regex": r"(?i)union\s+select", "name": "sqli"},
                {"field": "header:X-Debug", "contains": "1"},
                {"field": "method", "regex": "^TRACE$"},
            ],
            "block_scanners": True,
        },
        None,
    )

    def rule(**kwargs):
        found = firewall.matching_rule(FakeRequest(**kwargs))
        return None if found is None else found.name

    assert rule() is None
    assert rule(uri=b"/a/%2E%2E/etc") == "traversal"
    assert rule(uri=b"/?q=1+UNION+%53ELECT+x") == "sqli"
    assert rule(headers=[(b"X-Debug", b"1")]) == "rules[2]"
    assert rule(method=b"TRACE") == "rules[3]"
    assert rule(headers=[(b"User-Agent", b"sqlmap/1.7")]) == "scanner"
    assert rule(headers=[(b"User-Agent", b"Mozilla/5.0")]) is None
    assert firewall.request(FakeRequest(method=b"TRACE")) == Answer(403)


def test_waf_options():
    with pytest.raises(Invalid) as caught:
        waf.OPTIONS(
            {
                "rules": [
                    {"field": "path", "regex": "("},
                    {"field": "body", "contains": "x"},
                ]
            }
        )
    paths = [path for path, _ in caught.value.problems]
    assert paths == [".rules[0].regex", ".rules[1].field"]


# Configuration -------------------------------------------------------------


FILTERS = """
[filters.limit]
type = "rate_limit"
rate = "10/s"

[filters.private]
type = "ip_filter"
allow = ["10.0.0.0/8"]
"""


def test_filters_attach_to_routes_and_listeners():
    config = parse(
        document(
            listener='endpoint = "tcp:8080"\nfilters = ["private"]',
            route='upstream = "app"\nfilters = ["limit"]',
            extra=FILTERS,
        )
    )
    assert config.listeners["web"].filters == ("private",)
    assert config.routes[0].filters == ("limit",)
    assert config.filters["limit"].type == "rate_limit"
    assert dict(config.filters["limit"].options) == {"rate": "10/s"}


@pytest.mark.parametrize(
    "pieces, expected",
    [
        (
            {"extra": '[filters.x]\ntype = "nope"'},
            'filters.x.type: unknown filter type "nope"; installed types: ',
        ),
        (
            {"extra": '[filters.x]\nrate = "1/s"'},
            "filters.x.type: required key is missing",
        ),
        (
            {"extra": '[filters.x]\ntype = "rate_limit"\nrate = "soon"'},
            'filters.x.rate: expected a rate such as "100/s" or "6000/m", got "soon"',
        ),
        (
            {"extra": '[filters.x]\ntype = "rate_limit"\nrate = "1/s"\nbrust = 2'},
            'filters.x.brust: unknown key; did you mean "burst"?',
        ),
        (
            {"route": 'upstream = "app"\nfilters = ["limt"]', "extra": FILTERS},
            'routes[0].filters[0]: no filter named "limt"; did you mean "limit"?',
        ),
        (
            {
                "listener": 'endpoint = "tcp:8080"\nfilters = ["privat"]',
                "extra": FILTERS,
            },
            'listeners.web.filters[0]: no filter named "privat"; did you mean "private"?',
        ),
    ],
)


def test_filter_problems(pieces, expected):
    with pytest.raises(ConfigError) as caught:
        parse(document(**pieces))
    assert any(problem.startswith(expected) for problem in caught.value.problems), (
        caught.value.problems
    )


def test_route_command_lists_filters_without_running_them():
    from txrevproxy.tools.explain import explain

    config = parse(
        document(
            listener='endpoint = "tcp:8080"\nfilters = ["private"]',
            route='upstream = "app"\nfilters = ["limit"]',
            extra=FILTERS,
        )
    )
    lines = explain(config, "GET", "http://localhost:8080/x", client_ip="192.0.2.1")
    assert "filters:  private (listener), limit (route) (run in this order; not run here)" in lines
    cached = parse(
        document(route='upstream = "app"\ncache = "pages"', extra="[caches.pages]")
    )
    lines = explain(cached, "GET", "http://localhost:8080/x", client_ip="192.0.2.1")
    assert any(line.startswith("cache:    pages") for line in lines)
    assert any(line.startswith("sent to http://127.0.0.1:9001") for line in lines)
