"""
The operations of a real C{twistd -n txrevproxy} process: SIGHUP reloads
the routes.
"""

from __future__ import annotations

import signal
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from .processes import free_port, proxy_process

#: A bound on every wait for the process to do something.
WAIT = 30.0

CONFIG = """
[listeners.web]
endpoint = "tcp:{{port}}:interface=127.0.0.1"

[upstreams.app]
servers = [{{{{ url = "http://127.0.0.1:{backend}" }}}}]

[[routes]]
path = "/"
upstream = "app"

[[routes]]
path = "/fixed"
respond = {{{{ status = 200, body = "{fixed}" }}}}

[admin]
endpoint = "tcp:{admin}:interface=127.0.0.1"
"""


class _Backend(BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"backend"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def backend():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Backend)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def config(backend: int, admin: int, fixed: str = "one") -> str:
    return CONFIG.format(backend=backend, admin=admin, fixed=fixed)


def fetch(url: str, method: str = "GET") -> bytes:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return response.read()


def until(condition):
    deadline = time.monotonic() + WAIT
    while True:
        value = condition()
        if value:
            return value
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_sighup_reloads_the_routes(tmp_path, backend):
    admin = free_port()
    with proxy_process(tmp_path, [], config(backend, admin)) as proxy:
        url = "http://127.0.0.1:%d/fixed" % proxy.port
        assert fetch(url) == b"one"
        proxy.config.write_text(
            config(backend, admin, fixed="two").format(port=proxy.port)
        )
        proxy.process.send_signal(signal.SIGHUP)
        until(lambda: fetch(url) == b"two")
        assert proxy.process.poll() is None
