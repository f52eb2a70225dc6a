"""
The PROXY protocol over real sockets: headers in on a listener, before
TLS too, from Python and from curl; headers out to backends that read them
with Twisted's public C{proxyEndpoint}, with the proxy's own listener
(under TLS) and with nginx.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from ipaddress import ip_address

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.endpoints import (
    TCP4ClientEndpoint,
    TCP4ServerEndpoint,
    TCP6ClientEndpoint,
    TCP6ServerEndpoint,
)
from twisted.internet.protocol import Factory
from twisted.internet.utils import getProcessOutputAndValue
from twisted.protocols.haproxy import proxyEndpoint
from twisted.trial.unittest import TestCase
from twisted.web import resource, server

from txrevproxy.app.service import ProxyService

from txrevproxy.http.proxy_protocol import proxy_header_v1, proxy_header_v2

from ..support.configs import parse
from ..support.loopback import (
    CountingSite,
    Echo,
    RawClient,
    echoed_headers,
    listen,
    raw_exchange,
)
from ..support.origins import parse_response
from ..support.processes import free_port, temporary_directory, wait_for_port
from ..support.tls_listeners import TLSListenerCase

REQUEST = b"GET /who HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"


def start(testcase, text):
    """
    Start a proxy with the configuration C{text}; return its first
    listener's port.
    """
    service = ProxyService(parse(text), reactor)
    service.startService()
    testcase.addCleanup(service.stopService)
    return service.ports[0].getHost().port


#: A proxy that reads a PROXY header from its clients and sends one to its
#: backend.
RELAY = """
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"
proxy_protocol = true

[upstreams.app]
servers = [{ url = "%s" }]
proxy_protocol = "%s"
%s

[[routes]]
upstream = "app"
"""


#: A proxy whose listener reads a PROXY header (the [server] table, the
#: backend's port).
LISTENER = """
%s
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"
proxy_protocol = true

[upstreams.app]
servers = [{ url = "http://127.0.0.1:%d" }]

[[routes]]
upstream = "app"
"""


class ProxyProtocolInTests(TestCase):
    timeout = 15

    @inlineCallbacks
    def setUp(self):
        backend_port = yield listen(CountingSite(Echo()), self)
        self.port = start(self, LISTENER % ("", backend_port))

    @inlineCallbacks
    def test_v2_header_names_an_ipv6_client(self):
        header = proxy_header_v2(("2001:db8::7", 40000), ("2001:db8::1", 8443))
        status, _, body = parse_response((yield raw_exchange(self.port, header + REQUEST)))
        self.assertEqual(status, 200)
        headers = echoed_headers(body)
        self.assertEqual(headers[b"x-forwarded-for"], [b"2001:db8::7"])
        self.assertEqual(headers[b"x-forwarded-port"], [b"8443"])

    @inlineCallbacks
    def test_v1_header_then_request_in_one_write(self):
        header = proxy_header_v1(("203.0.113.9", 40000), ("192.0.2.1", 80))
        status, _, body = parse_response((yield raw_exchange(self.port, header + REQUEST)))
        self.assertEqual(status, 200)
        self.assertEqual(echoed_headers(body)[b"x-forwarded-for"], [b"203.0.113.9"])

    @inlineCallbacks
    def test_connection_without_a_header_is_closed_unanswered(self):
        raw = yield raw_exchange(self.port, REQUEST)
        self.assertEqual(raw, b"")


class ProxyProtocolFromTrustedPeersTests(TestCase):
    """
    With C{trusted_proxies}, only those peers may name another client in
    a PROXY header.
    """

    timeout = 15

    @inlineCallbacks
    def start_with(self, trusted):
        self.backend = CountingSite(Echo())
        backend_port = yield listen(self.backend, self)
        server = "[server]\ntrusted_proxies = %s\n" % (trusted,)
        return start(self, LISTENER % (server, backend_port))

    @inlineCallbacks
    def test_a_peer_outside_trusted_proxies_is_closed_unanswered(self):
        port = yield self.start_with('["10.0.0.0/8"]')
        header = proxy_header_v1(("203.0.113.9", 40000), ("192.0.2.1", 80))
        raw = yield raw_exchange(port, header + REQUEST)
        self.assertEqual(raw, b"")
        self.assertEqual(self.backend.connections, 0)

    @inlineCallbacks
    def test_a_peer_in_trusted_proxies_names_the_client(self):
        port = yield self.start_with('["127.0.0.1"]')
        header = proxy_header_v1(("203.0.113.9", 40000), ("192.0.2.1", 80))
        status, _, body = parse_response((yield raw_exchange(port, header + REQUEST)))
        self.assertEqual(status, 200)
        self.assertEqual(echoed_headers(body)[b"x-forwarded-for"], [b"203.0.113.9"])


class ProxyProtocolBeforeTLSTests(TLSListenerCase):
    timeout = 30

    @inlineCallbacks
    def test_curl_sends_the_header_before_its_handshake(self):
        curl = shutil.which("curl")
        if curl is None:
            raise self.skipTest("curl is not installed")
        port = self.start(proxy_protocol=True)
        for version in ("--http1.1", "--http2"):
            out, err, code = yield getProcessOutputAndValue(
                curl,
                [
                    "-sS",
                    version,
                    "--haproxy-protocol",
                    "--cacert",
                    str(self.maker.ca_path),
                    "--resolve",
                    "localhost:%d:127.0.0.1" % (port,),
                    "-w",
                    "\n%{http_version}",
                    "https://localhost:%d/who" % (port,),
                ],
                env=os.environ,
            )
            self.assertEqual(code, 0, err)
            body, _, http_version = out.rpartition(b"\n")
            self.assertEqual(http_version, b"1.1" if version == "--http1.1" else b"2")
            headers = echoed_headers(body)
            self.assertEqual(headers[b"x-forwarded-for"], [b"127.0.0.1"])
            self.assertEqual(headers[b"x-forwarded-port"], [b"%d" % (port,)])


class WhoAsks(resource.Resource):
    """
    Answers with the addresses its connection's PROXY header named, as
    Twisted's own parser read them, and which backend connection carried
    the request.
    """

    isLeaf = True

    def __init__(self):
        super().__init__()
        self.channels = []

    def render_GET(self, request):
        if request.channel not in self.channels:
            self.channels.append(request.channel)
        peer, host = request.getClientAddress(), request.getHost()
        return b"%s %d %s %d %d" % (
            peer.host.encode(),
            peer.port,
            host.host.encode(),
            host.port,
            self.channels.index(request.channel),
        )


class ProxyProtocolOutTests(TestCase):
    """
    A proxy whose upstream has C{proxy_protocol}, in front of a backend
    that reads the header with Twisted's public C{proxyEndpoint}.
    """

    timeout = 15

    @inlineCallbacks
    def backend(self, interface="127.0.0.1"):
        self.who = WhoAsks()
        kind = TCP6ServerEndpoint if ":" in interface else TCP4ServerEndpoint
        port = yield proxyEndpoint(kind(reactor, 0, interface=interface)).listen(
            server.Site(self.who)
        )
        self.addCleanup(port.stopListening)
        return port.getHost().port

    def proxy(self, backend_port, version, ipv6=False):
        """
        Start a proxy to the backend on C{backend_port} with C{proxy_protocol
        = version}, listening and connecting on 127.0.0.1 (or ::1).
        """
        endpoint, host = ("tcp6:0:interface=\\:\\:1", "[::1]") if ipv6 else (
            "tcp:0:interface=127.0.0.1",
            "127.0.0.1",
        )
        return start(
            self,
            """
[listeners.web]
endpoint = '%s'

[upstreams.app]
servers = [{ url = "http://%s:%d" }]
proxy_protocol = "%s"

[[routes]]
upstream = "app"
"""
            % (endpoint, host, backend_port, version),
        )

    @inlineCallbacks
    def requests_on_one_connection(self, port, count, host="127.0.0.1"):
        """
        Send C{count} GETs on one client connection (the last closes it);
        return the backend's answers and the client's own port.
        """
        requests = b"GET /who HTTP/1.1\r\nHost: shop.test\r\n\r\n" * (count - 1)
        requests += REQUEST
        client = RawClient(requests)
        kind = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint
        yield kind(reactor, host, port).connect(Factory.forProtocol(lambda: client))
        own_port = client.transport.getHost().port
        raw = yield client.closed
        bodies = [
            answer.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0]
            for answer in raw.split(b"HTTP/1.1 200")[1:]
        ]
        return bodies, own_port

    @inlineCallbacks
    def test_v1_and_v2_name_the_client_and_the_listener(self):
        backend_port = yield self.backend()
        for version in ("v1", "v2"):
            port = self.proxy(backend_port, version)
            bodies, own_port = yield self.requests_on_one_connection(port, 1)
            self.assertEqual(
                bodies[0].split()[:4],
                [b"127.0.0.1", b"%d" % (own_port,), b"127.0.0.1", b"%d" % (port,)],
            )

    @inlineCallbacks
    def test_ipv6_client_is_sent_as_tcp6(self):
        try:
            backend_port = yield self.backend("::1")
        except Exception as error:
            raise self.skipTest("no IPv6 loopback here: %s" % (error,))
        for version in ("v1", "v2"):
            port = self.proxy(backend_port, version, ipv6=True)
            bodies, own_port = yield self.requests_on_one_connection(port, 1, host="::1")
            source, source_port, destination, destination_port = bodies[0].split()[:4]
            # Twisted's v2 parser writes IPv6 addresses in full.
            self.assertEqual(
                (ip_address(source.decode()), ip_address(destination.decode())),
                (ip_address("::1"), ip_address("::1")),
            )
            self.assertEqual(
                (source_port, destination_port), (b"%d" % (own_port,), b"%d" % (port,))
            )

    @inlineCallbacks
    def test_backend_connections_are_reused_by_the_same_client_only(self):
        backend_port = yield self.backend()
        port = self.proxy(backend_port, "v2")
        first, first_port = yield self.requests_on_one_connection(port, 3)
        second, second_port = yield self.requests_on_one_connection(port, 2)
        # Each client connection's requests all went over one backend
        # connection whose header named it, and no other's did.
        self.assertEqual(
            [body.split()[1::3] for body in first + second],
            [[b"%d" % (first_port,), b"0"]] * 3 + [[b"%d" % (second_port,), b"1"]] * 2,
        )


class ProxyProtocolToTLSBackendTests(TLSListenerCase):
    """
    The header goes before the TLS handshake: a proxy whose https upstream
    has C{proxy_protocol = "v2"}, in front of a proxy whose TLS listener
    reads it.  The client's address, named by a PROXY header to the first
    proxy, reaches the backend behind the second.
    """

    timeout = 30

    @inlineCallbacks
    def test_client_address_crosses_two_proxies(self):
        inner_port = self.start(proxy_protocol=True)
        outer_port = start(
            self,
            RELAY
            % ("https://localhost:%d" % (inner_port,), "v2", 'ca = "%s"' % (self.maker.ca_path,)),
        )
        header = proxy_header_v1(("198.51.100.23", 40000), ("192.0.2.1", 80))
        raw = yield raw_exchange(outer_port, header + REQUEST)
        status, _, body = parse_response(raw)
        self.assertEqual(status, 200)
        self.assertEqual(echoed_headers(body)[b"x-forwarded-for"], [b"198.51.100.23"])


NGINX = """
daemon off;
pid %(dir)s/nginx.pid;
error_log %(dir)s/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %(dir)s;
    proxy_temp_path %(dir)s;
    fastcgi_temp_path %(dir)s;
    uwsgi_temp_path %(dir)s;
    scgi_temp_path %(dir)s;
    server {
        listen 127.0.0.1:%(port)d proxy_protocol;
        location / {
            return 200 "[$proxy_protocol_addr:$proxy_protocol_port to $proxy_protocol_server_addr:$proxy_protocol_server_port]";
        }
    }
}
"""


class ProxyProtocolToNginxTests(TestCase):
    """
    nginx, with C{listen ... proxy_protocol}, as the backend that reads the
    header: a PROXY header nginx accepts, for requests and health checks.
    """

    timeout = 30

    def setUp(self):
        nginx = shutil.which("nginx") or (
            "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None
        )
        if nginx is None:
            raise self.skipTest("nginx is not installed")
        directory = temporary_directory(self)
        self.nginx_port = free_port()
        conf = directory / "nginx.conf"
        conf.write_text(NGINX % {"dir": directory, "port": self.nginx_port})
        process = subprocess.Popen(
            [nginx, "-p", str(directory), "-c", str(conf)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.addCleanup(process.wait)
        self.addCleanup(process.terminate)
        wait_for_port(self.nginx_port, process)

    @inlineCallbacks
    def test_nginx_reads_the_clients_address(self):
        for version in ("v1", "v2"):
            port = start(
                self, RELAY % ("http://127.0.0.1:%d" % (self.nginx_port,), version, "")
            )
            header = proxy_header_v2(("198.51.100.23", 40000), ("192.0.2.1", 8080))
            status, _, body = parse_response((yield raw_exchange(port, header + REQUEST)))
            self.assertEqual(status, 200)
            self.assertEqual(body, b"[198.51.100.23:40000 to 192.0.2.1:8080]")
