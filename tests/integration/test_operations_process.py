"""
The operations of a real C{twistd -n txrevproxy} process: SIGHUP reloads
the routes, and C{workers = 2} spreads connections over two processes,
survives the death of one, sums their metrics and stops cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client.parser import text_string_to_metric_families

from ..support.processes import free_port, proxy_process
from ..support.waiting import until_blocking

#: A bound on every wait for the process to do something.
WAIT = 30.0

CONFIG = """
[server]
workers = {workers}

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


class Backend(BaseHTTPRequestHandler):
    """
    Answers every GET with C{body} and C{fields}.
    """

    body = b"backend"
    fields: dict = {}

    def do_GET(self):
        self.send_response(200)
        for name, value in self.fields.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, *args):
        pass


def serving(handler):
    """
    Run an HTTP server of C{handler} on a loopback port in a thread;
    yield its port, and stop it afterwards.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


@pytest.fixture
def backend():
    yield from serving(Backend)


def config(backend: int, admin: int, workers: int = 1, fixed: str = "one") -> str:
    return CONFIG.format(workers=workers, backend=backend, admin=admin, fixed=fixed)


def fetch(url: str, method: str = "GET") -> bytes:
    request = urllib.request.Request(url, method=method)
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return response.read()


def test_sighup_reloads_the_routes(tmp_path, backend):
    admin = free_port()
    with proxy_process(tmp_path, [], config(backend, admin)) as proxy:
        url = "http://127.0.0.1:%d/fixed" % proxy.port
        assert fetch(url) == b"one"
        proxy.config.write_text(
            config(backend, admin, fixed="two").format(port=proxy.port)
        )
        proxy.process.send_signal(signal.SIGHUP)
        until_blocking(lambda: fetch(url) == b"two", not_yet=(OSError,))
        assert proxy.process.poll() is None


def test_sigusr1_reopens_the_access_log(tmp_path, backend):
    admin = free_port()
    text = config(backend, admin) + '\n[log]\naccess = "access.log"\n'
    with proxy_process(tmp_path, [], text) as proxy:
        url = "http://127.0.0.1:%d/fixed" % proxy.port
        log = tmp_path / "access.log"
        fetch(url)
        until_blocking(lambda: log.exists() and log.read_text().count("\n") == 1)
        log.rename(tmp_path / "access.log.1")
        proxy.process.send_signal(signal.SIGUSR1)
        until_blocking(lambda: log.exists())
        fetch(url)
        until_blocking(lambda: log.read_text().count("\n") == 1)
        assert '"GET /fixed HTTP/1.1" 200 3' in log.read_text()
        assert (tmp_path / "access.log.1").read_text().count("\n") == 1


class HeldBackend(BaseHTTPRequestHandler):
    """
    Answers a GET once C{release} is set, after setting C{arrived}.
    """

    arrived = threading.Event()
    release = threading.Event()

    def do_GET(self):
        self.arrived.set()
        self.release.wait(WAIT)
        self.send_response(200)
        self.send_header("Content-Length", "4")
        self.end_headers()
        self.wfile.write(b"held")

    def log_message(self, *args):
        pass


def test_a_second_sigterm_during_the_drain_changes_nothing(tmp_path):
    """
    An operator who sends SIGTERM again while a request is being drained
    gets the same graceful stop: the request is answered, the process
    exits 0, and no traceback is logged.
    """
    HeldBackend.arrived.clear()
    HeldBackend.release.clear()
    for held in serving(HeldBackend):
        admin = free_port()
        with proxy_process(tmp_path, [], config(held, admin)) as proxy:
            answers = []
            client = threading.Thread(
                target=lambda: answers.append(fetch("http://127.0.0.1:%d/" % proxy.port))
            )
            client.start()
            assert HeldBackend.arrived.wait(WAIT)
            proxy.process.send_signal(signal.SIGTERM)

            def draining() -> bool:
                try:
                    fetch("http://127.0.0.1:%d/ready" % admin)
                except urllib.error.HTTPError as error:
                    return error.code == 503
                return False

            until_blocking(draining, not_yet=(OSError,))
            proxy.process.send_signal(signal.SIGTERM)
            proxy.process.send_signal(signal.SIGINT)
            HeldBackend.release.set()
            client.join(WAIT)
            assert answers == [b"held"]
            assert proxy.process.wait(timeout=WAIT) == 0
        output = (tmp_path / "proxy.log").read_text()
        assert "Traceback" not in output, output


def worker_connections(admin: int):
    status = json.loads(fetch("http://127.0.0.1:%d/status" % admin))
    return {
        worker["pid"]: worker["listeners"]["web"]["connections"]
        for worker in status["workers"]
    }


def requests_counted(admin: int) -> float:
    text = fetch("http://127.0.0.1:%d/metrics" % admin).decode()
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "txrevproxy_requests"
        for sample in family.samples
    )


def process_series(admin: int, name: str):
    text = fetch("http://127.0.0.1:%d/metrics" % admin).decode()
    return sorted(
        (
            sample.labels
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == name and sample.value > 0
        ),
        key=lambda labels: sorted(labels.items()),
    )


def test_two_workers_share_connections_and_survive_one_dying(tmp_path, backend):
    admin = free_port()
    with proxy_process(tmp_path, [], config(backend, admin, workers=2)) as proxy:
        until_blocking(lambda: len(worker_connections(admin)) == 2, not_yet=(OSError,))

        # Connections held open until each worker has some.
        held = []
        for _ in range(200):
            held.append(socket.create_connection(("127.0.0.1", proxy.port)))
            time.sleep(0.01)
            if all(worker_connections(admin).values()):
                break
        counts = worker_connections(admin)
        assert all(counts.values()), counts
        for connection in held:
            connection.close()

        sent = 20
        for _ in range(sent):
            assert fetch("http://127.0.0.1:%d/" % proxy.port) == b"backend"
        assert requests_counted(admin) == sent
        # The process series: the supervisor's own, unlabelled, and each
        # worker's by its position.
        assert process_series(admin, "process_resident_memory_bytes") == [
            {},
            {"worker": "0"},
            {"worker": "1"},
        ]

        # A reload and a drain reach both workers.
        proxy.config.write_text(
            config(backend, admin, workers=2, fixed="two").format(port=proxy.port)
        )
        answer = fetch("http://127.0.0.1:%d/reload" % admin, method="POST")
        assert json.loads(answer) == {"reloaded": True}
        for _ in range(10):
            assert fetch("http://127.0.0.1:%d/fixed" % proxy.port) == b"two"
        fetch("http://127.0.0.1:%d/backends/app/0/drain" % admin, method="POST")
        status = json.loads(fetch("http://127.0.0.1:%d/status" % admin))
        assert [
            worker["upstreams"]["app"]["backends"][0]["draining"]
            for worker in status["workers"]
        ] == [True, True]
        fetch("http://127.0.0.1:%d/backends/app/0/enable" % admin, method="POST")

        victim = sorted(counts)[0]
        os.kill(victim, signal.SIGKILL)
        for _ in range(sent):
            assert fetch("http://127.0.0.1:%d/" % proxy.port) == b"backend"
        pids = until_blocking(
            lambda: (lambda p: len(p) == 2 and victim not in p and p)(
                worker_connections(admin)
            ),
            not_yet=(OSError,),
        )
        assert len(pids) == 2

        proxy.process.send_signal(signal.SIGTERM)
        assert proxy.process.wait(timeout=WAIT) == 0


def test_with_workers_each_log_line_says_which_process_wrote_it(tmp_path, backend):
    admin = free_port()
    text = config(backend, admin, workers=2) + (
        '\n[log]\naccess = "access.log"\nformat = "json"\nevents = "text"\n'
        '[upstreams.down]\nservers = [{{ url = "http://127.0.0.1:%d" }}]\n'
        '[[routes]]\npath = "/down"\nupstream = "down"\n' % (free_port(),)
    )
    with proxy_process(tmp_path, [], text) as proxy:
        until_blocking(lambda: len(worker_connections(admin)) == 2, not_yet=(OSError,))
        for _ in range(4):
            assert fetch("http://127.0.0.1:%d/fixed" % proxy.port) == b"one"
        with pytest.raises(urllib.error.HTTPError) as refused:
            fetch("http://127.0.0.1:%d/down" % proxy.port)
        assert refused.value.code == 502
        log = tmp_path / "access.log"
        until_blocking(lambda: log.exists() and log.read_text().count("\n") == 5)
        proxy.process.send_signal(signal.SIGTERM)
        assert proxy.process.wait(timeout=WAIT) == 0
    lines = [json.loads(line) for line in log.read_text().splitlines()]
    assert {line["worker"] for line in lines} <= {0, 1}
    output = (tmp_path / "proxy.log").read_text().splitlines()
    systems = [line.split(" [", 1)[1].split("]", 1)[0] for line in output if " [" in line]
    assert systems, output
    assert all(s.split(" ", 1)[0] in ("supervisor", "worker") for s in systems), output
    assert "supervisor txrevproxy.app.workers.WorkerSupervisor#info" in systems
    assert {"worker 0 txrevproxy.app.service.ProxyService#info",
            "worker 1 txrevproxy.app.service.ProxyService#info"} <= set(systems)
    [error] = [line for line in output if "errors#error]" in line]
    assert " [worker 0 txrevproxy.errors#error] 502 (" in error or (
        " [worker 1 txrevproxy.errors#error] 502 (" in error
    ), error


def two_workers(admin: int):
    """
    Wait until the admin API lists two workers; their pids.
    """
    return until_blocking(
        lambda: (lambda pids: len(pids) == 2 and pids)(worker_connections(admin)),
        not_yet=(OSError,),
    )


def stop(proxy) -> None:
    proxy.process.send_signal(signal.SIGTERM)
    assert proxy.process.wait(timeout=WAIT) == 0


def test_a_worker_that_cannot_start_says_why_in_one_line_and_is_retried_less_often(
    tmp_path, backend
):
    admin = free_port()
    with proxy_process(tmp_path, [], config(backend, admin, workers=2)) as proxy:
        pids = two_workers(admin)
        good = proxy.config.read_text()
        proxy.config.write_text(good + "\n[listeners.web.bad]\n")
        os.kill(sorted(pids)[0], signal.SIGKILL)
        log = tmp_path / "proxy.log"

        def refused(count: int):
            lines = log.read_text().splitlines()
            return len([line for line in lines if "cannot start" in line]) >= count and lines

        lines = until_blocking(lambda: refused(2))
        proxy.config.write_text(good)
        two_workers(admin)
        stop(proxy)
    assert not [line for line in lines if "Traceback" in line], lines
    [first, second] = [line for line in lines if "starting it again in" in line][:2]
    assert first.endswith("starting it again in 1s") and second.endswith("again in 2s")
    [why] = [line for line in lines if "cannot start" in line][:1]
    assert why.startswith("worker 0: cannot start: ") or why.startswith("worker 1: cannot ")
    assert "listeners.web.bad" in why


def test_a_worker_started_again_after_the_file_was_edited_says_it_serves_another_configuration(
    tmp_path, backend
):
    admin = free_port()
    with proxy_process(tmp_path, [], config(backend, admin, workers=2)) as proxy:
        pids = two_workers(admin)
        proxy.config.write_text(
            config(backend, admin, workers=2, fixed="two").format(port=proxy.port)
        )
        os.kill(sorted(pids)[0], signal.SIGKILL)
        log = tmp_path / "proxy.log"
        until_blocking(lambda: "changed since the last reload" in log.read_text())
        two_workers(admin)
        stop(proxy)
    [warning] = [line for line in log.read_text().splitlines() if "since the last reload" in line]
    assert "txrevproxy.app.worker#warn] %s changed since the last reload: this worker" % (
        proxy.config,
    ) in warning
