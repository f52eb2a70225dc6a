"""
The status page of a real C{twistd -n txrevproxy} with C{workers = 2}:
C{/status.json} adds up the workers' last minute and lists them.
"""

from __future__ import annotations

import functools
import json
import threading
import time
import urllib.request
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

from ..support.processes import free_port, proxy_process, wait_for_port

#: A bound on every wait for the process to do something.
WAIT = 30.0

CONFIG = """
[server]
workers = 2

[listeners.web]
endpoint = "tcp:{{port}}:interface=127.0.0.1"

[upstreams.app]
servers = [{{{{ url = "http://127.0.0.1:{backend}" }}}}]

[[routes]]
name = "files"
upstream = "app"

[admin]
endpoint = "tcp:{admin}:interface=127.0.0.1"
"""


class Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def fetch(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=WAIT) as answer:
        return answer.read()


def test_status_json_sums_the_workers_last_minute(tmp_path):
    (tmp_path / "index.html").write_text("hello")
    backend = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path))
    )
    threading.Thread(target=backend.serve_forever, daemon=True).start()
    admin = free_port()
    status_url = "http://127.0.0.1:%d/status.json" % (admin,)
    try:
        text = CONFIG.format(backend=backend.server_address[1], admin=admin)
        with proxy_process(tmp_path, [], text) as proxy:
            # The admin listener is its own port, which may start
            # listening after the proxy's.
            wait_for_port(admin, proxy.process)
            deadline = time.monotonic() + WAIT
            while time.monotonic() < deadline:
                document = json.loads(fetch(status_url))
                if len(document["workers"]) == 2:
                    break
                time.sleep(0.1)
            assert sorted(w["index"] for w in document["workers"]) == [0, 1]

            sent = 20
            for _ in range(sent):
                assert fetch("http://127.0.0.1:%d/" % (proxy.port,)) == b"hello"
            # Each worker samples its counters once a second.
            while time.monotonic() < deadline:
                document = json.loads(fetch(status_url))
                [upstream] = document["upstreams"]
                if sum(upstream["stats"]["rates"]) == sent:
                    break
                time.sleep(0.2)
            assert sum(upstream["stats"]["rates"]) == sent
            assert upstream["stats"]["error_rate"] == 0.0
            assert upstream["backends"][0]["state"] == "up"
            [route] = document["routes"]
            assert (route["name"], sum(route["stats"]["rates"])) == ("files", sent)
            assert document["config"]["loaded"] <= document["now"]
            assert b"status.json" in fetch("http://127.0.0.1:%d/" % (admin,))
    finally:
        backend.shutdown()
        backend.server_close()
