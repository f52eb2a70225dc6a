"""
The backend and the proxies under test: their configurations and how to start
them.

Every server listens on free ports of 127.0.0.1, keeps its configuration and
logs in the run's temporary directory, and is started through
L{processes.ProcessGroup}, pinned to its CPU.  Each proxy offers a plain
listener and, where it can, a TLS listener with the run's ECDSA P-256
certificate (TLS 1.2 and 1.3, HTTP/2 offered by ALPN) and an h2c one.  A
proxy is started in one of the L{SETUPS}: by default on one core with TLS
session resumption off everywhere, so that "a new TLS connection per
request" means a full handshake for every proxy.
"""

from __future__ import annotations

import getpass
import http.client
import os
import shutil
import socket
import ssl
import subprocess
from dataclasses import dataclass
from typing import Callable

from processes import (
    LOAD_CPU,
    PROXY_CPU,
    ProcessGroup,
    Started,
    StartupError,
    free_ports,
)

HERE = os.path.dirname(os.path.abspath(__file__))

#: Where C{setup-pypy.sh} puts its venv, the default for C{--pypy}.
DEFAULT_PYPY = os.path.join(HERE, ".venv-pypy", "bin", "python")

#: What txrevproxy can do today.  The harness skips the rows that need a
#: missing capability and prints why; the lead adds "tls" here when
#: txrevproxy terminates TLS.
TXREVPROXY_CAPABILITIES: frozenset[str] = frozenset(["tls"])

@dataclass(frozen=True)
class Setup:
    """
    How the proxies are configured and placed for the scenarios that name
    this setup; each setup is a start of its own of every proxy.

    @ivar resumption: TLS session resumption on (session caches and
        tickets), instead of off.
    @ivar access_log: an access log written to a file in the run's
        temporary directory.
    @ivar all_cores: the proxy runs unpinned with as many workers or
        threads as the machine has cores, instead of one on L{PROXY_CPU}.
    """

    name: str
    resumption: bool = False
    access_log: bool = False
    all_cores: bool = False

    @property
    def cpu(self) -> int | None:
        return None if self.all_cores else PROXY_CPU


SETUPS = {s.name: s for s in [
    Setup("default"),
    Setup("resume", resumption=True),
    Setup("accesslog", access_log=True),
    Setup("all-cores", all_cores=True),
]}

#: An OpenSSL configuration that turns TLS session resumption off in a
#: server that has no setting for it (txrevproxy resumes by default, with
#: tickets and a session cache): no TLS 1.3 tickets, no TLS 1.2 tickets.
#: Given to it with C{OPENSSL_CONF}, which the OpenSSL of C{cryptography}
#: reads when pyOpenSSL makes its first context.
NO_RESUMPTION_CNF = """\
openssl_conf = conf
[conf]
ssl_conf = ssl
[ssl]
system_default = no_resumption
[no_resumption]
NumTickets = 0
Options = -SessionTicket
"""

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
    #: The port of the redis-server that the C{small+ratelimit-redis}
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


def _nginx_head(ws: Workspace, prefix: str, connections: int, workers: str = "1") -> str:
    # Workers run as the invoking user: as root, nginx would otherwise switch
    # to "nobody", who cannot read the temporary directory.  ("user" is
    # ignored, with a notice, when not root.)
    return """
user {user};
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections {connections}; }}
""".format(user=getpass.getuser(), prefix=prefix, connections=connections, workers=workers)


def start_backend(ws: Workspace) -> None:
    """
    Start the backend: nginx with one worker on the load generator's core,
    answering C{/small} from memory and C{/files/100k}, C{/files/1g} from
    files (the 1 GiB one sparse, so it costs no disk), over HTTP/1.1 and,
    on a port of its own, HTTP/2 in cleartext (h2c); and the same as
    C{/small} under C{/ratelimit/}, C{/secheaders/} and C{/cachehit/}, the
    paths of the "features on" rows, which the proxies route through one
    feature each (cacheable for an hour under C{/cachehit/}).
    """
    files = ws.path("www", "files")
    os.makedirs(files)
    for name, size in FILE_SIZES.items():
        with open(os.path.join(files, name), "wb") as f:
            f.truncate(size)
    prefix = _nginx_prefix(ws, "backend")
    ws.backend_port, ws.backend_h2c_port = free_ports(2)
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
        location ~ ^/(ratelimit|ratelimit-redis|secheaders)/small$ {{
            default_type text/plain; return 200 "{body}";
        }}
        location = /cachehit/small {{
            default_type text/plain;
            add_header Cache-Control "max-age=3600";
            return 200 "{body}";
        }}
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


#: nginx's equivalent of txrevproxy's security_headers filter's defaults.
_NGINX_SECURITY_HEADERS = """
            add_header X-Content-Type-Options nosniff;
            add_header X-Frame-Options SAMEORIGIN;
            add_header Referrer-Policy strict-origin-when-cross-origin;
            add_header Permissions-Policy "camera=(), microphone=(), geolocation=()";
            proxy_hide_header X-Powered-By;
            proxy_hide_header X-AspNet-Version;
            proxy_hide_header X-AspNetMvc-Version;"""


def start_redis(ws: Workspace) -> None:
    """
    Start redis-server on the load generator's core, without persistence,
    for the C{small+ratelimit-redis} scenario; nothing when it is not
    installed (the scenario then shows n/a).
    """
    if shutil.which("redis-server") is None:
        return
    [ws.redis_port] = free_ports(1)
    started = ws.group.start("redis", [
        "redis-server", "--port", str(ws.redis_port), "--bind", "127.0.0.1",
        "--save", "", "--appendonly", "no", "--dir", ws.tmp], LOAD_CPU)
    ws.group.wait_for_port(started, ws.redis_port)


def _start_nginx(ws: Workspace, setup: Setup) -> RunningProxy:
    prefix = _nginx_prefix(ws, "proxy-nginx-" + setup.name)
    port, tls_port, h2c_port = free_ports(3)
    sessions = ("ssl_session_cache shared:SSL:10m; ssl_session_tickets on;"
                if setup.resumption else "ssl_session_cache off; ssl_session_tickets off;")
    # Buffered and flushed once a second, as txrevproxy writes its log.
    access_log = ("{} combined buffer=64k flush=1s".format(ws.path("access-nginx.log"))
                  if setup.access_log else "off")
    # proxy_max_temp_file_size 0: stream a large response with backpressure
    # instead of spooling it to disk, which is what the other proxies do.
    # The rate limit is one nobody reaches: the row measures its bookkeeping.
    conf = _nginx_head(ws, prefix, 16384, "auto" if setup.all_cores else "1") + """
http {{
    access_log {access_log};
    limit_req_zone $binary_remote_addr zone=ratelimit:1m rate=1000000r/s;
    proxy_cache_path {prefix}/cache keys_zone=cachehit:10m;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
    upstream backend {{
        server 127.0.0.1:{backend};
        keepalive 64;
        keepalive_requests 1000000;
    }}
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl http2;
        listen 127.0.0.1:{h2c_port} http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        {sessions}
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_max_temp_file_size 0;
        location / {{ proxy_pass http://backend; }}
        location /ratelimit/ {{
            limit_req zone=ratelimit burst=1000 nodelay;
            proxy_pass http://backend;
        }}
        location /secheaders/ {{{security_headers}
            proxy_pass http://backend;
        }}
        location /cachehit/ {{
            proxy_cache cachehit;
            proxy_pass http://backend;
        }}
    }}
}}
""".format(backend=ws.backend_port, port=port, tls_port=tls_port, h2c_port=h2c_port,
           cert=ws.cert, key=ws.key, sessions=sessions, access_log=access_log,
           prefix=prefix, security_headers=_NGINX_SECURITY_HEADERS)
    path = ws.write("proxy-nginx-{}.conf".format(setup.name), conf)
    started = ws.group.start("nginx", ["nginx", "-p", prefix, "-c", path], setup.cpu)
    return RunningProxy("nginx", started, port, tls_port, h2c_port)


def _start_haproxy(ws: Workspace, setup: Setup) -> RunningProxy:
    port, tls_port, h2c_port = free_ports(3)
    pem = ws.path("haproxy.pem")
    with open(pem, "w") as out:
        for part in (ws.cert, ws.key):
            with open(part) as f:
                out.write(f.read())
    # HAProxy wants two descriptors per maxconn and by default refuses to
    # start without them; "no strict-limits" lets it run with what an
    # unprivileged container allows (often 20,000), which is plenty for
    # 10,000 idle client connections and the few backend ones behind them.
    # Its access log goes to standard output, which is its log file here.
    conf = """
global
    nbthread {threads}
    maxconn 10100
    no strict-limits
    {cache}
    {log}

defaults
    mode http
    {httplog}
    maxconn 10100
    http-reuse always
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s

frontend bench
    bind 127.0.0.1:{port}
    bind 127.0.0.1:{tls_port} ssl crt {pem} alpn h2,http/1.1 {tickets}
    bind 127.0.0.1:{h2c_port} proto h2
    default_backend backend

backend backend
    server backend 127.0.0.1:{backend}
""".format(port=port, tls_port=tls_port, h2c_port=h2c_port, pem=pem,
           backend=ws.backend_port, threads=os.cpu_count() if setup.all_cores else 1,
           cache="" if setup.resumption else "tune.ssl.cachesize 0",
           tickets="" if setup.resumption else "no-tls-tickets",
           log="log stdout format raw local0" if setup.access_log else "",
           httplog="log global\n    option httplog" if setup.access_log else "")
    path = ws.write("haproxy-{}.cfg".format(setup.name), conf)
    started = ws.group.start("haproxy", ["haproxy", "-db", "-f", path], setup.cpu)
    return RunningProxy("haproxy", started, port, tls_port, h2c_port)


def _start_rpr(ws: Workspace, setup: Setup) -> RunningProxy:
    port, tls_port = free_ports(2)
    argv = [ws.cpython, os.path.join(HERE, "rpr_server.py"), str(ws.backend_port),
            str(port), str(tls_port), ws.cert, ws.key]
    started = ws.group.start("twisted-rpr", argv, PROXY_CPU, cwd=ws.tmp)
    return RunningProxy("twisted-rpr", started, port, tls_port)


def txrevproxy_config(ws: Workspace, setup: Setup, port: int, tls_port: int | None,
                      h2c_port: int) -> str:
    """
    Render the txrevproxy TOML config: one plain listener, one with h2c
    (so that the other scenarios measure a plain listener as it is by
    default), one with TLS (and HTTP/2 by ALPN), one upstream, one route,
    everything else txrevproxy's defaults; for the C{h2-upstream} scenario,
    C{/h2/} routed to the backend's h2c port; for the "features on" rows,
    a route with its feature for each of their paths (the rate limit's
    buckets in the process, and, with the harness's redis-server, in
    Redis too); and what C{setup} adds: C{workers = "auto"}, an access log.
    """
    conf = ""
    if setup.all_cores:
        conf += '[server]\nworkers = "auto"\n\n'
    if setup.access_log:
        conf += '[log]\naccess = "{}"\n\n'.format(ws.path("access-txrevproxy.log"))
    conf += """\
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
http2 = true

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

# A limit nobody reaches: the row measures its bookkeeping.
[filters.bench_ratelimit]
type = "rate_limit"
rate = "1000000/s"
burst = 1000

[filters.bench_secheaders]
type = "security_headers"

[caches.bench]

[[routes]]
path = "/ratelimit/"
upstream = "bench"
filters = ["bench_ratelimit"]

[[routes]]
path = "/secheaders/"
upstream = "bench"
filters = ["bench_secheaders"]

[[routes]]
path = "/cachehit/"
upstream = "bench"
cache = "bench"
""".format(backend=ws.backend_port, h2c=ws.backend_h2c_port)
    if ws.redis_port:
        # The same limit with its buckets in Redis: one EVALSHA round trip
        # per request.
        conf += """
[redis.bench]
url = "redis://127.0.0.1:{port}/0"

[filters.bench_ratelimit_redis]
type = "rate_limit"
rate = "1000000/s"
burst = 1000
store = "redis:bench"

[[routes]]
path = "/ratelimit-redis/"
upstream = "bench"
filters = ["bench_ratelimit_redis"]
""".format(port=ws.redis_port)
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
    def start(ws: Workspace, setup: Setup) -> RunningProxy:
        port, h2c_port, tls_port = free_ports(3)
        if "tls" not in TXREVPROXY_CAPABILITIES:
            tls_port = None
        path = ws.write("{}-{}.toml".format(name, setup.name),
                        txrevproxy_config(ws, setup, port, tls_port, h2c_port))
        argv = twistd_command(python(ws)) + [
            "-n", "--pidfile=", "txrevproxy", "--config", path]
        env = None if setup.resumption else {
            "OPENSSL_CONF": ws.write("no-resumption.cnf", NO_RESUMPTION_CNF)}
        # cwd is the temp dir so that the source tree's twisted/plugins, which
        # "python -c" would put on sys.path, does not shadow the installed one.
        started = ws.group.start(name, argv, setup.cpu, cwd=ws.tmp, env=env)
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
    @ivar h2_problem: why its HTTP/2 rows are skipped, or C{None}.
    @ivar warmup: seconds of unrecorded load after each start, before any
        scenario: a JIT (PyPy) needs tens of seconds to reach its steady
        speed, and a proxy runs for months, so it is measured warm.
    """

    name: str
    start: Callable[[Workspace, Setup], RunningProxy]
    problem: Callable[[Workspace], str | None] = lambda ws: None
    tls_problem: str | None = None
    warmup: float = 2.0
    h2_problem: str | None = None

    def scenario_problem(self, scenario) -> str | None:
        """
        Why this proxy cannot take C{scenario} (a L{scenarios.Scenario}),
        or C{None}.
        """
        if scenario.only and not self.name.startswith(scenario.only):
            return "{} only".format(", ".join(scenario.only))
        return (scenario.tls and self.tls_problem) or (scenario.http2 and self.h2_problem) or None


CONTENDERS = [
    Contender("nginx", _start_nginx),
    Contender("haproxy", _start_haproxy),
    Contender("twisted-rpr", _start_rpr, lambda ws: _rpr_problem(ws.cpython, ws),
              h2_problem="no HTTP/2"),
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


def _tls_get(context: ssl.SSLContext, port: int,
             session: ssl.SSLSession | None) -> tuple[ssl.SSLSession, bool]:
    """
    GET C{/small} over TLS from C{port}, offering C{session}, and read the
    response to its end (so that TLS 1.3 tickets, sent after the
    handshake, have arrived).

    @return: the connection's session and whether it was resumed.
    """
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with context.wrap_socket(raw, server_hostname="localhost", session=session) as tls:
            tls.sendall(b"GET /small HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
            while tls.recv(65536):
                pass
            return tls.session, tls.session_reused


def tls_resumes(port: int) -> bool:
    """
    Whether a second TLS connection to C{port} resumes the session of a
    first one.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    session, _ = _tls_get(context, port, None)
    return _tls_get(context, port, session)[1]


def start_proxy(ws: Workspace, contender: Contender, setup: Setup = SETUPS["default"]) -> RunningProxy:
    """
    Start C{contender} in C{setup}, wait for its listeners, and check that
    a request through it gets the backend's answer and that its TLS
    listener resumes sessions if and only if C{setup} says so; raise
    L{StartupError} otherwise.
    """
    proxy = contender.start(ws, setup)
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
    if proxy.tls_port is not None:
        try:
            resumes = tls_resumes(proxy.tls_port)
        except OSError as e:
            ws.group.stop(proxy.started)
            raise StartupError("TLS check failed: {}".format(e))
        if resumes != setup.resumption:
            ws.group.stop(proxy.started)
            raise StartupError("TLS sessions {} resumed in the {} setup".format(
                "are" if resumes else "are not", setup.name))
    return proxy
