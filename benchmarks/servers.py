"""
The backend and the proxies under test: their configurations and how to start
them.

Every server listens on free ports of 127.0.0.1, keeps its configuration and
logs in the run's temporary directory, and is started through
L{processes.ProcessGroup}, pinned to its CPU.  Each proxy offers a plain
listener and, where it can, a TLS listener with the run's ECDSA P-256
certificate; TLS session resumption is off everywhere, so that "a new TLS
connection per request" means a full handshake for every proxy.
"""

from __future__ import annotations

import getpass
import http.client
import os
import shutil
import subprocess
from dataclasses import dataclass
from typing import Callable

from processes import (
    LOAD_CPU,
    PROXY_CPU,
    ProcessGroup,
    Started,
    StartupError,
    free_port,
)

HERE = os.path.dirname(os.path.abspath(__file__))

#: Where C{setup-pypy.sh} puts its venv, the default for C{--pypy}.
DEFAULT_PYPY = os.path.join(HERE, ".venv-pypy", "bin", "python")

#: What txrevproxy can do today.  The harness skips the rows that need a
#: missing capability and prints why; the lead adds "tls" here when
#: txrevproxy terminates TLS.
TXREVPROXY_CAPABILITIES: frozenset[str] = frozenset(["tls"])

#: Response bodies served by the backend, by path.
SMALL_BODY = b"Hello, world!\n"
FILE_SIZES = {"100k": 100 * 1024, "1g": 1024 ** 3}


@dataclass
class Workspace:
    """
    What every server of one run shares: the temporary directory, the
    certificate, the interpreters, and the backend once it is up.
    """

    tmp: str
    group: ProcessGroup
    cpython: str
    pypy: str
    cert: str = ""
    key: str = ""
    backend_port: int = 0
    #: The backend's HTTP/2 port (h2c, prior knowledge), for the
    #: txrevproxy upstream with protocol = "h2c".
    backend_h2c_port: int = 0
    #: The port of the redis-server that the C{rate-limit-redis}
    #: scenario's filter keeps its buckets in (0: none, not installed).
    redis_port: int = 0

    def path(self, *parts: str) -> str:
        return os.path.join(self.tmp, *parts)

    def write(self, name: str, text: str) -> str:
        """
        Write a generated file into the temporary directory; return its path.
        """
        path = self.path(name)
        with open(path, "w") as f:
            f.write(text)
        return path


@dataclass
class RunningProxy:
    """
    A proxy under test that is up: its process and where to reach it.

    @ivar tls_port: C{None} when this proxy cannot terminate TLS.
    @ivar h2c_port: where it takes HTTP/2 in cleartext with prior
        knowledge; C{None} when it cannot.
    """

    name: str
    started: Started
    port: int
    tls_port: int | None
    h2c_port: int | None = None


def make_certificate(ws: Workspace) -> None:
    """
    Generate a self-signed ECDSA P-256 certificate for localhost/127.0.0.1.
    """
    ws.cert, ws.key = ws.path("cert.pem"), ws.path("key.pem")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", ws.key, "-out", ws.cert, "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        check=True, capture_output=True,
    )


def _nginx_prefix(ws: Workspace, name: str) -> str:
    """
    Make an nginx prefix directory; nginx creates its temp dirs below it.
    """
    prefix = ws.path(name)
    os.makedirs(os.path.join(prefix, "logs"), exist_ok=True)
    return prefix


def _nginx_head(ws: Workspace, prefix: str, connections: int) -> str:
    # Workers run as the invoking user: as root, nginx would otherwise switch
    # to "nobody", who cannot read the temporary directory.  ("user" is
    # ignored, with a notice, when not root.)
    return """
user {user};
worker_processes 1;
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {connections}; }}
""".format(user=getpass.getuser(), prefix=prefix, connections=connections)


def start_backend(ws: Workspace) -> None:
    """
    Start the backend: nginx with one worker on the load generator's core,
    answering C{/small} from memory and C{/files/100k}, C{/files/1g} from
    files (the 1 GiB one sparse, so it costs no disk), over HTTP/1.1 and,
    on a port of its own, HTTP/2 in cleartext (h2c).
    """
    files = ws.path("www", "files")
    os.makedirs(files)
    for name, size in FILE_SIZES.items():
        with open(os.path.join(files, name), "wb") as f:
            f.truncate(size)
    prefix = _nginx_prefix(ws, "backend")
    ws.backend_port = free_port()
    ws.backend_h2c_port = free_port()
    conf = _nginx_head(ws, prefix, 4096) + """
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port} backlog=4096;
        root {root};
        location = /small {{ default_type text/plain; return 200 "{body}"; }}
    }}
    server {{
        listen 127.0.0.1:{h2c_port} http2 backlog=4096;
        http2_max_concurrent_streams 1000;
        root {root};
        location = /small {{ default_type text/plain; return 200 "{body}"; }}
    }}
}}
""".format(port=ws.backend_port, h2c_port=ws.backend_h2c_port, root=ws.path("www"),
           body=SMALL_BODY.decode().replace("\n", "\\n"))
    path = ws.write("backend.conf", conf)
    started = ws.group.start("backend", ["nginx", "-p", prefix, "-c", path], LOAD_CPU)
    ws.group.wait_for_port(started, ws.backend_port)
    ws.group.wait_for_port(started, ws.backend_h2c_port)


def start_redis(ws: Workspace) -> None:
    """
    Start redis-server on the load generator's core, without persistence,
    for the C{rate-limit-redis} scenario; nothing when it is not installed
    (the scenario then shows n/a).
    """
    if shutil.which("redis-server") is None:
        return
    ws.redis_port = free_port()
    started = ws.group.start("redis", [
        "redis-server", "--port", str(ws.redis_port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", ws.tmp], LOAD_CPU)
    ws.group.wait_for_port(started, ws.redis_port)


def _start_nginx(ws: Workspace) -> RunningProxy:
    prefix = _nginx_prefix(ws, "proxy-nginx")
    port, tls_port, h2c_port = free_port(), free_port(), free_port()
    # proxy_max_temp_file_size 0: stream a large response with backpressure
    # instead of spooling it to disk, which is what the other proxies do.
    conf = _nginx_head(ws, prefix, 16384) + """
http {{
    access_log off;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream backend {{
        server 127.0.0.1:{backend};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        listen 127.0.0.1:{h2c_port} http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_session_cache off;
        ssl_session_tickets off;
        location / {{
            proxy_pass http://backend;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_max_temp_file_size 0;
        }}
    }}
}}
""".format(backend=ws.backend_port, port=port, tls_port=tls_port, h2c_port=h2c_port,
           cert=ws.cert, key=ws.key)
    path = ws.write("proxy-nginx.conf", conf)
    started = ws.group.start("nginx", ["nginx", "-p", prefix, "-c", path], PROXY_CPU)
    return RunningProxy("nginx", started, port, tls_port, h2c_port)


def _start_haproxy(ws: Workspace) -> RunningProxy:
    port, tls_port, h2c_port = free_port(), free_port(), free_port()
    pem = ws.path("haproxy.pem")
    with open(pem, "w") as out:
        for part in (ws.cert, ws.key):
            with open(part) as f:
                out.write(f.read())
    # HAProxy wants two descriptors per maxconn and by default refuses to
    # start without them; "no strict-limits" lets it run with what an
    # unprivileged container allows (often 20,000), which is plenty for
    # 10,000 idle client connections and the few backend ones behind them.
    conf = """
global
    nbthread 1
    maxconn 10100
    no strict-limits
    tune.ssl.cachesize 0

defaults
    mode http
    maxconn 10100
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s

frontend bench
    bind 127.0.0.1:{port}
    bind 127.0.0.1:{tls_port} ssl crt {pem} no-tls-tickets
    bind 127.0.0.1:{h2c_port} proto h2
    default_backend backend

backend backend
    server backend 127.0.0.1:{backend}
""".format(port=port, tls_port=tls_port, h2c_port=h2c_port, pem=pem,
           backend=ws.backend_port)
    path = ws.write("haproxy.cfg", conf)
    started = ws.group.start("haproxy", ["haproxy", "-db", "-f", path], PROXY_CPU)
    return RunningProxy("haproxy", started, port, tls_port, h2c_port)


def _start_rpr(ws: Workspace) -> RunningProxy:
    port, tls_port = free_port(), free_port()
    argv = [ws.cpython, os.path.join(HERE, "rpr_server.py"), str(ws.backend_port),
            str(port), str(tls_port), ws.cert, ws.key]
    started = ws.group.start("twisted-rpr", argv, PROXY_CPU, cwd=ws.tmp)
    return RunningProxy("twisted-rpr", started, port, tls_port)


def txrevproxy_config(ws: Workspace, port: int, tls_port: int | None,
                      h2c_port: int) -> str:
    """
    Render the txrevproxy TOML config: one plain listener, one with h2c
    (so that the other scenarios measure a plain listener as it is by
    default), one with TLS, one upstream, one route, everything else
    txrevproxy's defaults; for the C{h2-upstream} scenario, C{/h2/} routed
    to the backend's h2c port; and for the rate-limit scenarios,
    C{/rl-local/} and C{/rl-redis/} through a C{rate_limit} filter whose
    limit is never reached, its buckets in the process or in Redis.
    """
    conf = """\
[listeners.bench]
endpoint = "tcp:{port}:interface=127.0.0.1"

[listeners.bench_h2c]
endpoint = "tcp:{h2c_port}:interface=127.0.0.1"
h2c = true
""".format(port=port, h2c_port=h2c_port)
    if tls_port is not None:
        conf += """
[listeners.bench_tls]
endpoint = "tcp:{port}:interface=127.0.0.1"
tls = "bench"

[tls.bench]
certificates = [{{ names = ["localhost"], cert = "{cert}", key = "{key}" }}]
default = "localhost"
""".format(port=tls_port, cert=ws.cert, key=ws.key)
    conf += """
[upstreams.bench]
servers = [{{ url = "http://127.0.0.1:{backend}" }}]

[[routes]]
path = "/"
upstream = "bench"

[upstreams.bench_h2]
servers = [{{ url = "http://127.0.0.1:{h2c}" }}]
protocol = "h2c"

[[routes]]
path = "/h2/"
strip_prefix = true
upstream = "bench_h2"
""".format(backend=ws.backend_port, h2c=ws.backend_h2c_port)
    stores = {"local": "local"}
    if ws.redis_port:
        stores["redis"] = "redis:bench"
        conf += """
[redis.bench]
url = "redis://127.0.0.1:{port}/0"
""".format(port=ws.redis_port)
    for name, store in stores.items():
        conf += """
[filters.limit_{name}]
type = "rate_limit"
rate = "100000000/s"
store = "{store}"

[[routes]]
path = "/rl-{name}/"
strip_prefix = true
upstream = "bench"
filters = ["limit_{name}"]
""".format(name=name, store=store)
    return conf


_TWISTD = "import sys; from twisted.scripts.twistd import run; sys.argv[0] = 'twistd'; run()"


def twistd_command(python: str) -> list[str]:
    """
    How to run twistd with C{python}: the C{twistd} script beside it, as an
    operator runs it (on PyPy the proxy then starts itself again with its
    nursery size, see C{txrevproxy.app.gc_nursery}), or else twistd's code
    given with C{-c}.
    """
    script = os.path.join(os.path.dirname(python), "twistd")
    if os.path.isfile(script):
        return [script]
    return [python, "-c", _TWISTD]


def _txrevproxy_starter(name: str, python: Callable[[Workspace], str]):
    def start(ws: Workspace) -> RunningProxy:
        port, h2c_port = free_port(), free_port()
        tls_port = free_port() if "tls" in TXREVPROXY_CAPABILITIES else None
        path = ws.write(name + ".toml", txrevproxy_config(ws, port, tls_port, h2c_port))
        argv = twistd_command(python(ws)) + [
            "-n", "--pidfile=", "txrevproxy", "--config", path]
        # cwd is the temp dir so that the source tree's twisted/plugins, which
        # "python -c" would put on sys.path, does not shadow the installed one.
        started = ws.group.start(name, argv, PROXY_CPU, cwd=ws.tmp)
        return RunningProxy(name, started, port, tls_port, h2c_port)

    return start


_PLUGIN_CHECK = """
from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
import txrevproxy
names = [p.tapname for p in getPlugins(IServiceMaker)]
print("ok" if "txrevproxy" in names else "twistd has no txrevproxy plugin")
"""


def _txrevproxy_problem(python: str, ws: Workspace, hint: str = "") -> str | None:
    if not os.path.exists(python):
        return "no interpreter at {}{}".format(python, hint)
    result = subprocess.run([python, "-c", _PLUGIN_CHECK], cwd=ws.tmp,
                            capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["failed"])[-1]
        return "txrevproxy not importable by {}: {}".format(python, last)
    if result.stdout.strip() != "ok":
        return result.stdout.strip()
    return None


def _rpr_problem(python: str, ws: Workspace) -> str | None:
    result = subprocess.run([python, "-c", "import twisted.web.proxy"],
                            capture_output=True, text=True, timeout=60)
    return None if result.returncode == 0 else "Twisted not importable by " + python


@dataclass(frozen=True)
class Contender:
    """
    A proxy the harness can measure.

    @ivar problem: returns why it cannot run here, or C{None}.
    @ivar tls_problem: why its TLS rows are skipped, or C{None}.
    @ivar h2c_problem: why its h2c rows are skipped, or C{None}.
    @ivar warmup: seconds of unrecorded load after each start, before any
        scenario: a JIT (PyPy) needs tens of seconds to reach its steady
        speed, and a proxy runs for months, so it is measured warm.
    """

    name: str
    start: Callable[[Workspace], RunningProxy]
    problem: Callable[[Workspace], str | None] = lambda ws: None
    tls_problem: str | None = None
    warmup: float = 2.0
    h2c_problem: str | None = None

    def scenario_problem(self, scenario) -> str | None:
        """
        Why this proxy cannot take C{scenario} (a L{scenarios.Scenario}),
        or C{None}.
        """
        if scenario.txrevproxy_only and not self.name.startswith("txrevproxy"):
            return "txrevproxy only"
        return (scenario.tls and self.tls_problem) or (scenario.h2c and self.h2c_problem) or None


CONTENDERS = [
    Contender("nginx", _start_nginx),
    Contender("haproxy", _start_haproxy),
    Contender("twisted-rpr", _start_rpr, lambda ws: _rpr_problem(ws.cpython, ws),
              h2c_problem="no HTTP/2"),
    Contender(
        "txrevproxy-cpython",
        _txrevproxy_starter("txrevproxy-cpython", lambda ws: ws.cpython),
        lambda ws: _txrevproxy_problem(ws.cpython, ws),
        None if "tls" in TXREVPROXY_CAPABILITIES else "TLS not implemented yet",
    ),
    Contender(
        "txrevproxy-pypy",
        _txrevproxy_starter("txrevproxy-pypy", lambda ws: ws.pypy),
        lambda ws: _txrevproxy_problem(ws.pypy, ws, "; run benchmarks/setup-pypy.sh"),
        None if "tls" in TXREVPROXY_CAPABILITIES else "TLS not implemented yet",
        warmup=30.0,
    ),
]


def start_proxy(ws: Workspace, contender: Contender) -> RunningProxy:
    """
    Start C{contender}, wait for its listeners, and check that a request
    through it gets the backend's answer; raise L{StartupError} otherwise.
    """
    proxy = contender.start(ws)
    for port in (proxy.port, proxy.tls_port, proxy.h2c_port):
        if port is not None:
            ws.group.wait_for_port(proxy.started, port, timeout=30)
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        conn.request("GET", "/small")
        response = conn.getresponse()
        body = response.read()
    except (OSError, http.client.HTTPException) as e:
        ws.group.stop(proxy.started)
        raise StartupError("GET /small failed: {}".format(e))
    finally:
        conn.close()
    if response.status != 200 or body != SMALL_BODY:
        ws.group.stop(proxy.started)
        raise StartupError("GET /small returned {} {!r}".format(response.status, body[:80]))
    return proxy
