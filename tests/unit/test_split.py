"""
Unit tests of splits and mirrors: the route keys and their problems, the
choice of a side (weights with an injected random, sticky cookie,
overrides), what a mirror copies, and their metrics.
"""

from __future__ import annotations

import random

import pytest
from twisted.internet.task import Clock
from twisted.web.http_headers import Headers

from txrevproxy.config.model import SplitOverride, SplitSide
from txrevproxy.forward import mirror
from txrevproxy.forward.clientless import ClientlessRequest
from txrevproxy.forward.resource import ProxyTarget
from txrevproxy.interfaces import IRequestHandler
from txrevproxy.observe.metrics import Metrics, render
from txrevproxy.routing.split import (
    OVERRIDE_COOKIE,
    OVERRIDE_HEADER,
    STICKY,
    WEIGHT,
    Choice,
    SplitChooser,
)
from txrevproxy.tools.lint import check_warnings

from ..support.configs import document, parse, problems

UPSTREAMS = """
[upstreams.old]
servers = [{ url = "http://127.0.0.1:9001" }]
[upstreams.new]
servers = [{ url = "http://127.0.0.1:9002" }]
"""

SPLIT = 'upstreams = [{ name = "old", weight = 90 }, { name = "new", weight = 10 }]'


def split_route(text: str):
    return parse(document(route=text, extra=UPSTREAMS)).routes[0]


def problem_list(text: str):
    return problems(document(route=text, extra=UPSTREAMS))


# Configuration ---------------------------------------------------------------


def test_split_route_keys():
    route = split_route(
        SPLIT
        + '\nsplit_cookie = "txrevproxy_split"'
        + '\nsplit_override = { header = "X-Canary", cookie = "canary" }'
        + '\nmirror = "app"\nmirror_percent = 10\nmirror_max_body = "1KiB"'
        + '\nmirror_timeout = "2s"'
    )
    assert route.upstream is None
    assert route.upstreams == (SplitSide("old", 90), SplitSide("new", 10))
    assert route.upstream_names == ("old", "new")
    assert route.forwards
    assert route.split_cookie == "txrevproxy_split"
    assert route.split_override == SplitOverride("X-Canary", "canary")
    assert (route.mirror, route.mirror_percent, route.mirror_max_body) == ("app", 10, 1024)
    assert route.mirror_timeout == 2.0


def test_mirror_defaults():
    route = split_route('upstream = "app"\nmirror = "old"')
    assert (route.mirror_percent, route.mirror_max_body, route.mirror_timeout) == (
        100,
        65536,
        5.0,
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        (
            SPLIT + '\nupstream = "app"',
            ("routes[0].upstreams", "a route has exactly one of upstream, upstreams, "
             "redirect or respond; this one also has upstream"),
        ),
        (
            'upstreams = [{ name = "old", weight = 0 }]',
            ("routes[0].upstreams[0].weight", "must be at least 1, got 0"),
        ),
        (
            'upstreams = [{ name = "old" }, { name = "olde" }]',
            ("routes[0].upstreams[1].name", 'no upstream named "olde"; did you mean "old"?'),
        ),
        (
            'upstreams = [{ name = "old" }, { name = "old" }]',
            ("routes[0].upstreams[1].name", 'upstream "old" is already a side of this split'),
        ),
        (
            'upstream = "app"\nsplit_cookie = "side"',
            ("routes[0].split_cookie", "only a route with upstreams can use it"),
        ),
        (
            'upstream = "app"\nmirror_percent = 5',
            ("routes[0].mirror_percent", "only a route with mirror can use it"),
        ),
        (
            SPLIT + "\nsplit_override = {}",
            ("routes[0].split_override", "needs a header, a cookie or both"),
        ),
        (
            'upstream = "app"\nmirror = "shadow"',
            ("routes[0].mirror", 'no upstream named "shadow"'),
        ),
        (
            SPLIT + '\ncache = "pages"\n\n[caches.pages]',
            ("routes[0].cache", "a route with upstreams (a split) is not cached: one "
             "stored response would be served to clients of every side; cache the "
             "sides' own routes, or end the split first"),
        ),
        (
            'respond = { status = 200 }\nmirror = "app"',
            ("routes[0].mirror", "only a route with an upstream can use it"),
        ),
    ],
)
def test_split_and_mirror_problems(text, expected):
    assert "%s: %s" % expected in problem_list(text)


# Choosing a side --------------------------------------------------------------


class Counting:
    """
    A random whose draws go through every number in turn.
    """

    def __init__(self) -> None:
        self.next = 0

    def randrange(self, stop: int) -> int:
        number = self.next % stop
        self.next += 1
        return number


SIDES = (SplitSide("old", 90), SplitSide("new", 10))


def fields(*pairs):
    headers = Headers()
    for name, value in pairs:
        headers.addRawHeader(name, value)
    return headers


def test_weights_share_the_draws_exactly():
    chooser = SplitChooser(SIDES, Counting())
    sides = [chooser.choose(fields()).side for _ in range(1000)]
    assert (sides.count("old"), sides.count("new")) == (900, 100)
    assert sides[89:91] == ["old", "new"]
    assert chooser.shares() == {"old": 90.0, "new": 10.0}


def test_seeded_random_repeats_the_same_sides():
    first = SplitChooser(SIDES, random.Random(21))
    second = SplitChooser(SIDES, random.Random(21))
    run = [first.choose(fields()) for _ in range(200)]
    assert run == [second.choose(fields()) for _ in range(200)]
    assert {choice.reason for choice in run} == {WEIGHT}
    assert {choice.side for choice in run} == {"old", "new"}


def test_sticky_cookie_keeps_the_side():
    chooser = SplitChooser(SIDES, Counting(), cookie="txrevproxy_split")
    headers = fields((b"Cookie", b"a=1; txrevproxy_split=new"))
    assert [chooser.choose(headers) for _ in range(3)] == [Choice("new", STICKY)] * 3


def test_sticky_cookie_naming_a_removed_side_falls_back_to_weights():
    chooser = SplitChooser(SIDES, Counting(), cookie="txrevproxy_split")
    choice = chooser.choose(fields((b"Cookie", b"txrevproxy_split=older")))
    assert choice == Choice("old", WEIGHT)


def test_overrides_force_a_side_before_the_sticky_cookie():
    chooser = SplitChooser(
        SIDES, Counting(), cookie="s", override=SplitOverride("X-Canary", "canary")
    )
    assert chooser.choose(
        fields((b"X-Canary", b"new"), (b"Cookie", b"s=old; canary=old"))
    ) == Choice("new", OVERRIDE_HEADER)
    assert chooser.choose(fields((b"Cookie", b"s=old; canary=new"))) == Choice(
        "new", OVERRIDE_COOKIE
    )
    # A value naming no side forces nothing.
    assert chooser.choose(fields((b"X-Canary", b"yes"), (b"Cookie", b"s=new"))) == Choice(
        "new", STICKY
    )


def test_decided_is_none_without_cookie_or_override():
    chooser = SplitChooser(SIDES, Counting(), cookie="s")
    assert chooser.decided(fields()) is None


# Mirroring --------------------------------------------------------------------


class Draws:
    def __init__(self, *values) -> None:
        self._values = list(values)

    def random(self) -> float:
        return self._values.pop(0)


class Handler:
    """
    The real exchange's place: what it receives.
    """

    def __init__(self) -> None:
        self.calls = []

    def bodyReceived(self, data):
        self.calls.append(("body", data))

    def bodyFinished(self):
        self.calls.append(("finished",))

    def bodyTooLarge(self):
        self.calls.append(("too large",))

    def clientGone(self):
        self.calls.append(("gone",))


class Request:
    method = b"POST"
    uri = path = b"/orders"
    clientproto = b"HTTP/1.1"
    connection = site = None
    request_id = b"0123456789abcdef"

    def __init__(self, length=None, complete=False, received=0) -> None:
        self.bodyLength = length
        self.bodyComplete = complete
        self.bodyBytes = received
        self.requestHeaders = Headers({b"content-type": [b"text/plain"]})
        self.handler = Handler()

    def requestedUpgrade(self):
        return None


class RecordingMirror(mirror.Mirror):
    """
    A mirror that keeps what it would send.
    """

    def send(self, copy, body):
        self.sent.append((copy, b"".join(body)))


def make_mirror(percent=100, max_body=10, draws=Draws()):
    metrics = Metrics()
    made = RecordingMirror(None, "api", "shadow", percent, max_body, draws, metrics)
    made.sent = []
    return made, metrics


def mirrored(metrics):
    return metrics.snapshot()["mirror_requests"]


def test_percentage_draws_which_requests_are_copied():
    made, _ = make_mirror(percent=25, draws=Draws(0.10, 0.25, 0.249, 0.9))
    for _ in range(4):
        made.copy(Request(length=0, complete=True))
    assert len(made.sent) == 2


def test_request_without_body_is_copied_at_once():
    made, _ = make_mirror()
    request = Request(length=0, complete=True)
    made.copy(request)
    [(copy, body)] = made.sent
    assert (copy.method, copy.uri, copy.request_id, body) == (
        b"POST",
        b"/orders",
        b"0123456789abcdef",
        b"",
    )
    assert copy.requestHeaders.getRawHeaders(b"content-type") == [b"text/plain"]


def test_body_streams_to_the_exchange_and_is_copied_when_complete():
    made, _ = make_mirror()
    request = Request(length=None)
    real = request.handler
    made.copy(request)
    tee = request.handler
    assert IRequestHandler.providedBy(tee)
    tee.bodyReceived(b"abc")
    tee.bodyReceived(b"def")
    assert made.sent == []
    tee.bodyFinished()
    assert real.calls == [("body", b"abc"), ("body", b"def"), ("finished",)]
    assert [body for _, body in made.sent] == [b"abcdef"]


def test_declared_body_over_the_limit_is_not_mirrored():
    made, metrics = make_mirror()
    request = Request(length=11)
    made.copy(request)
    assert made.sent == []
    assert mirrored(metrics) == {"api\tshadow\ttoo_large": 1}
    assert isinstance(request.handler, Handler)


def test_chunked_body_over_the_limit_is_dropped_but_still_forwarded():
    made, metrics = make_mirror()
    request = Request(length=None)
    real = request.handler
    made.copy(request)
    request.handler.bodyReceived(b"123456")
    request.handler.bodyReceived(b"789012")
    request.handler.bodyFinished()
    assert made.sent == []
    assert real.calls == [("body", b"123456"), ("body", b"789012"), ("finished",)]
    assert mirrored(metrics) == {"api\tshadow\ttoo_large": 1}


def test_client_gone_abandons_the_copy():
    made, metrics = make_mirror()
    request = Request(length=5)
    real = request.handler
    made.copy(request)
    request.handler.bodyReceived(b"12")
    request.handler.clientGone()
    assert made.sent == []
    assert real.calls == [("body", b"12"), ("gone",)]
    assert mirrored(metrics) == {"api\tshadow\tabandoned": 1}


def test_websocket_upgrade_is_not_copied():
    made, metrics = make_mirror()
    request = Request(length=0, complete=True)
    request.requestedUpgrade = lambda: b"websocket"
    made.copy(request)
    assert made.sent == []
    assert mirrored(metrics) == {}


def test_body_refused_as_too_large_abandons_the_copy():
    """
    A body over the server's C{max_request_body} is refused with 413: its
    copy is not sent, and the request's exchange hears of it as ever.
    """
    made, metrics = make_mirror(max_body=100)
    request = Request(length=None)
    real = request.handler
    made.copy(request)
    request.handler.bodyReceived(b"12")
    request.handler.bodyTooLarge()
    assert made.sent == []
    assert real.calls == [("body", b"12"), ("too large",)]
    assert mirrored(metrics) == {"api\tshadow\tabandoned": 1}


def test_mirror_metric_is_rendered_with_its_labels():
    metrics = Metrics()
    metrics.mirrored("api", "shadow", "answered")
    metrics.mirrored("api", "shadow", "answered")
    metrics.mirrored("api", "shadow", "timeout")
    text = render(metrics.snapshot()).decode()
    series = 'txrevproxy_mirror_requests_total{result="%s",route="api",upstream="shadow"} %s'
    assert series % ("answered", "2.0") in text
    assert series % ("timeout", "1.0") in text


def test_sides_of_a_split_share_one_duration_histogram():
    metrics = Metrics()
    metrics.route("web", "api", "old").record(200, 0.01, 0, 0)
    metrics.route("web", "api", "new").record(502, 0.01, 0, 0)
    data = metrics.snapshot()
    assert data["requests"] == {"web\tapi\told\t2xx": 1, "web\tapi\tnew\t5xx": 1}
    assert data["request_duration_seconds"]["web\tapi"][-1] == pytest.approx(0.02)


def test_sides_and_mirrors_are_used_upstreams():
    config = parse(
        document(route=SPLIT + '\nmirror = "app"', extra=UPSTREAMS)
        + '[upstreams.spare]\nservers = [{ url = "http://127.0.0.1:9003" }]\n'
    )
    assert check_warnings(config) == ["upstreams.spare: unused: no route names it"]


class FullBalancer:
    """
    A balancer none of whose backends can take a request now.
    """

    def lease_now(self, request):
        return None

    def acquire(self, request):
        raise AssertionError("a copy waited in the queue")


def test_copy_never_waits_for_a_backend():
    outcomes = []
    copy = ClientlessRequest(Request(length=0, complete=True), b"0123456789abcdef")
    copy.started = 0.0
    mirror.MirrorExchange(
        copy, ProxyTarget(FullBalancer(), Clock(), 5.0, False), outcomes.append
    ).start()
    assert outcomes == [mirror.NO_BACKEND]


class BrokenBalancer:
    """
    A balancer whose policy fails (a third party's plugin, say).
    """

    def lease_now(self, request):
        raise KeyError("broken policy")


def test_a_copy_that_fails_to_start_is_counted_and_never_reaches_the_client():
    metrics = Metrics()
    made = mirror.Mirror(
        ProxyTarget(BrokenBalancer(), Clock(), 5.0, False),
        "api",
        "shadow",
        100,
        10,
        Draws(),
        metrics,
    )
    made.copy(Request(length=0, complete=True))
    assert mirrored(metrics) == {"api\tshadow\tfailed": 1}
