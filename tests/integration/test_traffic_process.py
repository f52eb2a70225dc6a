"""
CORS, a split and a mirror in a real C{twistd -n txrevproxy} process, with
the keys as the documentation spells them: a preflight answered by the
proxy, an override choosing the new side, the sticky cookie, the mirror's
backend getting a copy of a request with its body, and the metrics of
both on the admin C{/metrics}.
"""

from __future__ import annotations

import contextlib
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler

from ..support.processes import free_port, proxy_process
from ..support.waiting import until_blocking
from .test_metrics_process import scrape
from .test_operations_process import WAIT, serving

CONFIG = """
[listeners.web]
endpoint = "tcp:{{port}}:interface=127.0.0.1"

[admin]
endpoint = "tcp:{admin}:interface=127.0.0.1"

[upstreams.old]
servers = [{{{{ url = "http://127.0.0.1:{old}" }}}}]
[upstreams.new]
servers = [{{{{ url = "http://127.0.0.1:{new}" }}}}]
[upstreams.shadow]
servers = [{{{{ url = "http://127.0.0.1:{shadow}" }}}}]

[[routes]]
name = "api"
path = "/api/"
upstreams = [{{{{ name = "old", weight = 90 }}}}, {{{{ name = "new", weight = 10 }}}}]
split_cookie = "txrevproxy_split"
split_override = {{{{ header = "X-Canary", cookie = "canary" }}}}
mirror = "shadow"
mirror_percent = 100
mirror_max_body = "64KiB"
filters = ["cors"]

[filters.cors]
type = "cors"
allow_origins = ["https://app.example.com", "https://*.example.com"]
allow_methods = ["GET", "POST", "PUT"]
allow_headers = ["Content-Type", "X-Canary"]
allow_credentials = true
max_age = "10m"
"""


def named(name: bytes, seen=None):
    """
    A backend handler class answering every request with C{name}, and
    recording C{(method, path, body)} in C{seen}.
    """

    class Named(BaseHTTPRequestHandler):
        def answer(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            if seen is not None:
                with lock:
                    seen.append((self.command, self.path, body))
            self.send_response(200)
            self.send_header("Content-Length", str(len(name)))
            self.end_headers()
            self.wfile.write(name)

        do_GET = do_POST = do_PUT = answer

        def log_message(self, *args):
            pass

    return Named


lock = threading.Lock()


def send(url, method="GET", headers=None, body=None):
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return response.status, response.headers, response.read()


def test_cors_split_and_mirror_in_a_real_process(tmp_path):
    copies = []
    with serving_all(named(b"old"), named(b"new"), named(b"shadow", copies)) as ports:
        old, new, shadow = ports
        admin = free_port()
        text = CONFIG.format(old=old, new=new, shadow=shadow, admin=admin)
        with proxy_process(tmp_path, [], text) as proxy:
            url = "http://127.0.0.1:%d/api/orders" % proxy.port
            status, fields, body = send(
                url,
                "OPTIONS",
                {
                    "Origin": "https://a.example.com",
                    "Access-Control-Request-Method": "PUT",
                    "Access-Control-Request-Headers": "x-canary",
                },
            )
            assert (status, body) == (204, b"")
            assert fields["Access-Control-Allow-Origin"] == "https://a.example.com"
            assert fields["Access-Control-Allow-Credentials"] == "true"
            assert fields["Access-Control-Max-Age"] == "600"
            try:
                send(url, "OPTIONS", {
                    "Origin": "https://example.com.evil.com",
                    "Access-Control-Request-Method": "PUT",
                })
            except urllib.error.HTTPError as refused:
                assert refused.code == 403
            else:
                raise AssertionError("a look-alike origin's preflight was answered")

            status, fields, body = send(
                url,
                "POST",
                {"X-Canary": "new", "Origin": "https://app.example.com"},
                b"item=42",
            )
            assert (status, body) == (200, b"new")
            assert fields["Access-Control-Allow-Origin"] == "https://app.example.com"
            assert fields["Vary"] == "Origin"
            until_blocking(lambda: copies)
            assert copies == [("POST", "/api/orders", b"item=42")]

            status, fields, side = send(url)
            assert side in (b"old", b"new")
            cookie = fields["Set-Cookie"].split(";")[0]
            assert cookie == "txrevproxy_split=" + side.decode()
            for _ in range(3):
                assert send(url, headers={"Cookie": cookie})[2] == side

            until_blocking(lambda: len(copies) == 5)
            samples = scrape(admin)
            assert samples["txrevproxy_mirror_requests_total"] == {
                (("result", "answered"), ("route", "api"), ("upstream", "shadow")): 5
            }
            sides = {
                dict(labels)["upstream"]
                for labels in samples["txrevproxy_requests_total"]
            }
            assert "new" in sides and side.decode() in sides


@contextlib.contextmanager
def serving_all(*handlers):
    """
    Serve several backend handler classes, each on its own loopback port;
    yield the ports.
    """
    servers = [serving(handler) for handler in handlers]
    try:
        yield [next(server) for server in servers]
    finally:
        for server in servers:
            next(server, None)
