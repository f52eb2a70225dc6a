"""
Error pages in memory: the route's page before the listener's before the
proxy's own, the channel's answers before any request, filter refusals,
the keys' problems, the maintenance switches a reload carries, and backup
servers coming back.
"""

from __future__ import annotations

import pytest
from twisted.internet.testing import MemoryReactorClock
from twisted.web.resource import Resource

from txrevproxy.app.assembly import maintenance_switches
from txrevproxy.app.maintenance import find_route, route_states
from txrevproxy.config.model import Route, ServerSettings
from txrevproxy.filters.chain import answer
from txrevproxy.forward.maintenance import MaintenanceSwitch
from txrevproxy.interfaces import Answer
from txrevproxy.server.answers import connection_answer, respond_with_error
from txrevproxy.server.site import ProxySite
from txrevproxy.tools.explain import replay

from ..support.balancing import make_balancer, pick, server
from ..support.configs import document, problems

LISTENER_PAGES = {
    404: (b"<p>listener 404", b"text/html"),
    503: (b"<p>listener 503", b"text/html"),
    403: (b"<p>go away", b"text/html"),
}


def answered(code: int, route_pages=None) -> bytes:
    site = ProxySite(
        Resource(),
        reactor=MemoryReactorClock(),
        settings=ServerSettings(),
        error_pages=LISTENER_PAGES,
    )
    made, transport = replay(site, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "127.0.0.1")
    made.error_pages = route_pages
    respond_with_error(made, code)
    return transport.value()


def test_the_route_page_wins_over_the_listener_page():
    route = {503: (b"<p>route 503", b"text/html")}
    assert answered(503, route).endswith(b"<p>route 503")
    assert answered(404, route).endswith(b"<p>listener 404")
    assert answered(503).endswith(b"<p>listener 503")
    text = answered(502, route)
    assert b"Content-Type: text/plain; charset=utf-8\r\n" in text
    assert b"502 Bad Gateway\nrequest id: " in text


def test_a_connection_answer_uses_the_listener_page():
    page = (b"<p>bad", b"text/html")
    whole = connection_answer(400, b"abc", 0.0, None, page)
    assert whole.startswith(b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/html\r\n")
    assert b"X-Request-ID: abc\r\n" in whole
    assert whole.endswith(b"\r\n\r\n<p>bad")


def test_a_filter_refusal_without_a_body_gets_the_page_of_its_status():
    site = ProxySite(
        Resource(),
        reactor=MemoryReactorClock(),
        settings=ServerSettings(),
        error_pages=LISTENER_PAGES,
    )
    made, transport = replay(site, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "127.0.0.1")
    answer(made, Answer(403, [(b"Content-Type", b"text/plain")]))
    sent = transport.value()
    assert sent.startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert b"Content-Type: text/html\r\n" in sent
    assert b"text/plain" not in sent
    assert sent.endswith(b"<p>go away")
    made, transport = replay(site, b"GET / HTTP/1.1\r\nHost: h\r\n\r\n", "127.0.0.1")
    answer(made, Answer(403, body=b"own words"))
    assert transport.value().endswith(b"own words")


@pytest.mark.parametrize(
    "listener, expected",
    [
        (
            'endpoint = "tcp:8080"\nerror_pages = { 200 = "x.html" }',
            ["listeners.web.error_pages.200: expected a status from 400 to 599, got 200"],
        ),
        (
            'endpoint = "tcp:8080"\nerror_pages = { 404 = "/nonexistent/404.html" }',
            [
                "listeners.web.error_pages.404: cannot read /nonexistent/404.html: "
                "No such file or directory"
            ],
        ),
    ],
)
def test_listener_error_pages_problems(listener, expected):
    assert problems(document(listener=listener)) == expected


def test_route_names_are_unique():
    text = document(route='name = "shop"\nupstream = "app"') + (
        '[[routes]]\nname = "shop"\npath = "/b"\nupstream = "app"\n'
    )
    assert problems(text) == ['routes[1].name: "shop" is the name of routes[0] already']


def test_backup_flag_problem():
    upstream = 'servers = [{ url = "http://127.0.0.1:9001", backup = "yes" }]'
    assert problems(document(upstream=upstream)) == [
        'upstreams.app.servers[0].backup: expected true or false, got "yes"'
    ]


def test_a_reload_keeps_the_switch_of_a_named_route_only():
    before = maintenance_switches(
        [Route(0, "app", name="shop"), Route(1, "app", "/b"), Route(2, None, "/r")], {}
    )
    assert sorted(before) == [0, 1]
    before[0].on = before[1].on = True
    named = {"shop": before[0]}
    after = maintenance_switches([Route(0, "app", "/b"), Route(1, "app", name="shop")], named)
    assert after[1] is before[0]
    assert not after[0].on


def test_routes_are_found_by_name_or_index():
    routes = [Route(0, "app", name="shop"), Route(1, None, "/r")]
    switches = {0: MaintenanceSwitch()}
    assert find_route(routes, switches, "shop") is routes[0]
    assert find_route(routes, switches, "0") is routes[0]
    for key, message in [
        ("nosuch", "no route named nosuch"),
        ("7", "no route named 7"),
        ("1", "routes[1] answers without an upstream: it has no maintenance"),
    ]:
        with pytest.raises(KeyError) as raised:
            find_route(routes, switches, key)
        assert raised.value.args[0] == message
    assert [r["maintenance"] for r in route_states(routes, switches)] == [False, None]


def test_backup_servers_take_requests_only_while_every_primary_is_down():
    balancer = make_balancer([server(1), server(2), server(3, backup=True)])
    first, second, spare = balancer.backends
    assert {pick(balancer) for _ in range(4)} == {first, second}
    balancer.set_healthy(first, False)
    assert {pick(balancer) for _ in range(4)} == {second}
    balancer.drain(1)
    assert {pick(balancer) for _ in range(4)} == {spare}
    balancer.set_healthy(first, True)
    assert {pick(balancer) for _ in range(4)} == {first}


def test_when_everything_is_down_the_primaries_are_tried_first():
    balancer = make_balancer([server(1), server(2, backup=True)])
    first, spare = balancer.backends
    balancer.set_healthy(first, False)
    assert pick(balancer) is spare
    balancer.set_healthy(spare, False)
    assert {pick(balancer) for _ in range(3)} == {first}
