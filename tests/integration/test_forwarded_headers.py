"""
Integration tests of the forwarding headers a backend cannot be fooled by:
C{Forwarded} (RFC 7239), C{X-Forwarded-Port} and C{X-Forwarded-Prefix},
from untrusted clients and from a trusted proxy, over real loopback
sockets.
"""

from __future__ import annotations

import ipaddress

import attr
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txrevproxy.config.model import Route, ServerSettings

from ..support.commands import run
from ..support.loopback import (
    CountingSite,
    Echo,
    echoed_headers,
    listen,
    proxy_config,
    raw_exchange,
    start_proxy,
)
from ..support.processes import temporary_directory
from ..support.responses import split_response

#: What a client behind no trusted proxy sends to pass for someone else.
SPOOFED = (
    b"Forwarded: for=1.2.3.4;proto=https\r\n"
    b"forwarded: for=5.6.7.8\r\n"
    b"X-Forwarded-Port: 1\r\n"
    b"X-Forwarded-Prefix: /evil\r\n"
)

LOOPBACK = (ipaddress.ip_network("127.0.0.1/32"),)


class ForwardedHeadersTests(TestCase):
    timeout = 15

    @inlineCallbacks
    def proxy(self, **settings):
        """
        Start a proxy in front of an L{Echo} backend, with a route
        C{/app} that strips its prefix besides the route C{/}.

        @return: a Deferred firing with the proxy's port.
        """
        backend_port = yield listen(CountingSite(Echo()), self)
        config = proxy_config([backend_port], ServerSettings(**settings))
        config = attr.evolve(
            config,
            routes=config.routes + (Route(1, "app", "/app", strip_prefix=True),),
        )
        return start_proxy(config, self)

    @inlineCallbacks
    def seen(self, port, target=b"/", headers=b""):
        """
        The request line and headers the backend received for a request
        to C{target} with C{headers}.
        """
        raw = yield raw_exchange(
            port,
            b"GET " + target + b" HTTP/1.1\r\nHost: shop.test:8080\r\n" + headers
            + b"Connection: close\r\n\r\n",
        )
        status, _, body = split_response(raw)
        self.assertEqual(status, b"HTTP/1.1 200 OK")
        return body.split(b"\n")[0], echoed_headers(body)

    @inlineCallbacks
    def test_spoofed_headers_of_an_untrusted_client_never_reach_the_backend(self):
        port = yield self.proxy()
        _, seen = yield self.seen(port, headers=SPOOFED)
        self.assertNotIn(b"forwarded", seen)
        self.assertNotIn(b"x-forwarded-prefix", seen)
        self.assertEqual(seen[b"x-forwarded-port"], [b"%d" % (port,)])
        self.assertEqual(seen[b"x-forwarded-for"], [b"127.0.0.1"])

    @inlineCallbacks
    def test_an_untrusted_clients_forwarded_is_replaced_when_adding(self):
        port = yield self.proxy(forwarded="add")
        _, seen = yield self.seen(port, headers=SPOOFED)
        self.assertEqual(
            seen[b"forwarded"], [b'for=127.0.0.1;proto=http;host="shop.test:8080"']
        )

    @inlineCallbacks
    def test_a_trusted_proxys_forwarded_is_extended_with_this_hop(self):
        port = yield self.proxy(trusted_proxies=LOOPBACK, forwarded="add")
        _, seen = yield self.seen(
            port,
            headers=b'Forwarded: for="[2001:db8::1]:4711";proto=https\r\n'
            b"Forwarded: for=_hidden, for=unknown\r\n",
        )
        self.assertEqual(
            seen[b"forwarded"],
            [
                b'for="[2001:db8::1]:4711";proto=https, for=_hidden, for=unknown, '
                b'for=127.0.0.1;proto=http;host="shop.test:8080"'
            ],
        )

    @inlineCallbacks
    def test_a_trusted_proxys_malformed_forwarded_is_replaced_by_this_hop(self):
        port = yield self.proxy(trusted_proxies=LOOPBACK, forwarded="add")
        _, seen = yield self.seen(port, headers=b'Forwarded: for="1.2.3.4\r\n')
        self.assertEqual(
            seen[b"forwarded"], [b'for=127.0.0.1;proto=http;host="shop.test:8080"']
        )

    @inlineCallbacks
    def test_a_trusted_proxys_forwarded_passes_unchanged_when_off(self):
        port = yield self.proxy(trusted_proxies=LOOPBACK)
        _, seen = yield self.seen(port, headers=b"Forwarded: for=_lb;proto=https\r\n")
        self.assertEqual(seen[b"forwarded"], [b"for=_lb;proto=https"])
        _, seen = yield self.seen(port)
        self.assertNotIn(b"forwarded", seen)

    @inlineCallbacks
    def test_a_route_that_strips_its_prefix_sends_it(self):
        port = yield self.proxy()
        line, seen = yield self.seen(port, b"/app/login?next=/", SPOOFED)
        self.assertEqual(line, b"GET /login?next=/ 0")
        self.assertEqual(seen[b"x-forwarded-prefix"], [b"/app"])
        self.assertEqual(seen[b"x-forwarded-port"], [b"%d" % (port,)])

    @inlineCallbacks
    def test_a_trusted_proxys_port_is_kept_and_prefix_put_in_front(self):
        port = yield self.proxy(trusted_proxies=LOOPBACK)
        headers = b"X-Forwarded-Port: 443\r\nX-Forwarded-Prefix: /outer\r\n"
        _, seen = yield self.seen(port, b"/app/login", headers)
        self.assertEqual(seen[b"x-forwarded-port"], [b"443"])
        self.assertEqual(seen[b"x-forwarded-prefix"], [b"/outer/app"])
        _, seen = yield self.seen(port, b"/login", headers)
        self.assertEqual(seen[b"x-forwarded-prefix"], [b"/outer"])


class ForwardedCheckTests(TestCase):
    def test_check_rejects_an_unknown_forwarded_mode_with_its_key_path(self):
        path = temporary_directory(self) / "proxy.toml"
        path.write_text(
            '[server]\nforwarded = "yes"\n\n'
            '[listeners.web]\nendpoint = "tcp:8080:interface=127.0.0.1"\n\n'
            '[upstreams.app]\nservers = [{ url = "http://127.0.0.1:9001" }]\n\n'
            '[[routes]]\npath = "/"\nupstream = "app"\n'
        )
        status, out, err = run(["check", "--config", str(path)])
        self.assertEqual(
            (status, out, err.splitlines()),
            (1, "", ['server.forwarded: unknown value "yes"; expected one of "off", "add"']),
        )
