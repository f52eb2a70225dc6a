"""
Splits and mirrors from a configuration file, over real loopback sockets:
overrides and the sticky cookie choosing a real backend, per-side metrics,
and a mirror whose backend gets a copy of each request and body while the
client gets the primary's answer, even when the mirror is down, silent,
or the body is over the limit.
"""

from __future__ import annotations

import bcrypt
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.server import Site

from txrevproxy.app.service import ProxyService

from ..support.configs import parse
from ..support.loopback import (
    RecordingFactory,
    SilentFactory,
    listen,
    raw_exchange,
)
from ..support.origins import Scripted, parse_response
from ..support.processes import free_port, temporary_directory
from ..support.waiting import until


def named(name: bytes):
    """
    A backend that answers with its name, and keeps the request bodies it
    got (C{bodies}).
    """

    def answer(request):
        backend.bodies.append(request.content.read())
        request.setHeader(b"Content-Type", b"text/plain")
        return name

    backend = Scripted(answer)
    backend.bodies = []
    return backend


def request(method=b"GET", path=b"/api/orders", headers=(), body=b""):
    lines = [b"%s %s HTTP/1.1" % (method, path), b"Host: localhost", b"Connection: close"]
    lines += [b"%s: %s" % field for field in headers]
    if body:
        lines.append(b"Content-Length: %d" % (len(body),))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class ProxyCase(TestCase):
    timeout = 15

    def start(self, text: str):
        self.service = ProxyService(parse(text), reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        self.port = self.service.ports[0].getHost().port

    def fetch(self, *args, **kwargs):
        return raw_exchange(self.port, request(*args, **kwargs)).addCallback(
            parse_response
        )

    def series(self, family: str):
        return self.service.metrics.snapshot()[family]


SPLIT = """
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.old]
servers = [{ url = "http://127.0.0.1:%d" }]
[upstreams.new]
servers = [{ url = "http://127.0.0.1:%d" }]

[[routes]]
path = "/api/"
name = "api"
upstreams = [{ name = "old", weight = 1 }, { name = "new", weight = 1 }]
split_cookie = "txrevproxy_split"
split_override = { header = "X-Canary", cookie = "canary" }
"""


class SplitTests(ProxyCase):
    @inlineCallbacks
    def setUp(self):
        self.old = named(b"old")
        self.new = named(b"new")
        old_port = yield listen(Site(self.old), self)
        new_port = yield listen(Site(self.new), self)
        self.start(SPLIT % (old_port, new_port))

    @inlineCallbacks
    def test_override_header_and_cookie_force_a_side(self):
        for headers, side in [
            ([(b"X-Canary", b"new")], b"new"),
            ([(b"X-Canary", b"old")], b"old"),
            ([(b"Cookie", b"canary=new")], b"new"),
            ([(b"X-Canary", b"old"), (b"Cookie", b"canary=new")], b"old"),
        ]:
            status, fields, body = yield self.fetch(headers=headers)
            self.assertEqual((status, body), (200, side))
            # A forced side is not made sticky.
            self.assertNotIn(b"set-cookie", fields)

    @inlineCallbacks
    def test_sticky_cookie_is_set_on_the_first_answer_and_honoured_after(self):
        status, fields, first = yield self.fetch()
        self.assertEqual(status, 200)
        self.assertEqual(
            fields[b"set-cookie"],
            [b"txrevproxy_split=%s; Path=/api; HttpOnly; SameSite=Lax" % (first,)],
        )
        cookie = fields[b"set-cookie"][0].split(b";")[0]
        for _ in range(6):
            status, fields, body = yield self.fetch(headers=[(b"Cookie", cookie)])
            self.assertEqual((status, body), (200, first))
            self.assertNotIn(b"set-cookie", fields)

    @inlineCallbacks
    def test_cookie_naming_a_removed_side_is_drawn_again(self):
        status, fields, body = yield self.fetch(
            headers=[(b"Cookie", b"txrevproxy_split=legacy")]
        )
        self.assertEqual(status, 200)
        self.assertIn(body, (b"old", b"new"))
        self.assertEqual(
            fields[b"set-cookie"][0].split(b";")[0], b"txrevproxy_split=" + body
        )

    @inlineCallbacks
    def test_each_side_is_counted_under_its_upstream(self):
        yield self.fetch(headers=[(b"X-Canary", b"new")])
        yield self.fetch(headers=[(b"X-Canary", b"new")])
        yield self.fetch(headers=[(b"X-Canary", b"old")])
        self.assertEqual(
            self.series("requests"),
            {"web\tapi\tnew\t2xx": 2, "web\tapi\told\t2xx": 1},
        )
        self.assertEqual((len(self.old.requests), len(self.new.requests)), (1, 2))


MIRROR = """
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.app]
servers = [{ url = "http://127.0.0.1:%d" }]
[upstreams.shadow]
servers = [{ url = "http://127.0.0.1:%d" }]
%s

[[routes]]
path = "/api/"
name = "api"
upstream = "app"
mirror = "shadow"
mirror_max_body = "16B"
%s
"""


class MirrorTests(ProxyCase):
    @inlineCallbacks
    def startWith(self, shadow_port=None, shadow="", route=""):
        self.primary = named(b"primary")
        primary_port = yield listen(Site(self.primary), self)
        if shadow_port is None:
            self.shadow = RecordingFactory()
            shadow_port = yield listen(self.shadow, self)
        self.start(MIRROR % (primary_port, shadow_port, shadow, route))

    def mirrored(self):
        return self.series("mirror_requests")

    @inlineCallbacks
    def test_shadow_gets_the_same_request_and_body(self):
        yield self.startWith()
        status, _, body = yield self.fetch(
            b"POST", b"/api/orders?x=1", [(b"X-Trace", b"t1")], body=b"item=42"
        )
        self.assertEqual((status, body), (200, b"primary"))
        yield until(lambda: self.mirrored())
        [(head, sent)] = self.shadow.requests
        lines = head.split(b"\r\n")
        self.assertEqual(lines[0], b"POST /api/orders?x=1 HTTP/1.1")
        self.assertIn(b"X-Trace: t1", lines)
        self.assertIn(b"Content-Length: 7", lines)
        self.assertEqual(sent, b"item=42")
        primary = self.primary.requests[0]
        self.assertIn(
            b"X-Request-ID: " + primary.getHeader(b"x-request-id"), lines
        )
        self.assertEqual(self.mirrored(), {"api\tshadow\tanswered": 1})

    @inlineCallbacks
    def test_body_over_the_limit_is_not_mirrored(self):
        yield self.startWith()
        status, _, body = yield self.fetch(b"POST", body=b"x" * 17)
        self.assertEqual((status, body), (200, b"primary"))
        self.assertEqual(self.shadow.connections, 0)
        self.assertEqual(self.mirrored(), {"api\tshadow\ttoo_large": 1})

    @inlineCallbacks
    def test_shadow_down_does_not_fail_the_request(self):
        yield self.startWith(shadow_port=free_port())
        status, _, body = yield self.fetch(b"PUT", body=b"abc")
        self.assertEqual((status, body), (200, b"primary"))
        yield until(lambda: self.mirrored())
        self.assertEqual(self.mirrored(), {"api\tshadow\tfailed": 1})

    @inlineCallbacks
    def test_silent_shadow_neither_delays_the_client_nor_keeps_its_connection(self):
        silent = SilentFactory()
        shadow_port = yield listen(silent, self)
        yield self.startWith(shadow_port=shadow_port, route='mirror_timeout = "100ms"')
        status, _, body = yield self.fetch()
        # The answer came while the shadow has not answered.
        self.assertEqual((status, body), (200, b"primary"))
        self.assertEqual(self.mirrored(), {})
        yield until(lambda: silent.lost)
        self.assertEqual(len(silent.connected), 1)
        self.assertEqual(self.mirrored(), {"api\tshadow\ttimeout": 1})

    @inlineCallbacks
    def test_body_held_while_a_filter_decides_is_mirrored_whole(self):
        users = temporary_directory(self) / "users"
        users.write_bytes(b"alice:" + bcrypt.hashpw(b"pw", bcrypt.gensalt(rounds=4)) + b"\n")
        yield self.startWith(
            shadow='[filters.login]\ntype = "basic_auth"\nusers_file = "%s"' % (users,),
            route='filters = ["login"]',
        )
        status, _, body = yield self.fetch(
            b"POST", headers=[(b"Authorization", b"Basic YWxpY2U6cHc=")], body=b"held body"
        )
        self.assertEqual((status, body), (200, b"primary"))
        self.assertEqual(self.primary.bodies, [b"held body"])
        yield until(lambda: self.mirrored())
        self.assertEqual([sent for _, sent in self.shadow.requests], [b"held body"])

    @inlineCallbacks
    def test_no_copy_with_mirror_percent_zero(self):
        yield self.startWith(route="mirror_percent = 0")
        yield self.fetch()
        self.assertEqual(self.shadow.connections, 0)
        self.assertEqual(self.mirrored(), {})

    @inlineCallbacks
    def test_shadow_balanced_by_client_ip_gets_its_copy(self):
        """
        A copy has no client channel of its own: the client's address is
        read from the connection it copied, as the client request's is.
        """
        yield self.startWith(shadow='balance = "hash"\nhash_key = "client_ip"')
        status, _, _ = yield self.fetch()
        self.assertEqual(status, 200)
        yield until(lambda: self.mirrored())
        self.assertEqual(self.mirrored(), {"api\tshadow\tanswered": 1})
        self.assertEqual(len(self.shadow.requests), 1)
