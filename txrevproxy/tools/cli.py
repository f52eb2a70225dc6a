"""
The C{txrevproxy} command: tools around the proxy that twistd runs.

C{txrevproxy check --config FILE} validates a configuration the way the
proxy would at start (the C{nginx -t} of this project), C{txrevproxy
route} explains where a request would go, C{txrevproxy reload} has
the running proxy reload and says whether it did, C{txrevproxy demo} runs a
configuration in the foreground with demo backends behind it, for a first
try, and C{txrevproxy certs} makes development certificates.  The proxy
itself runs under twistd: C{twistd -n txrevproxy --config FILE}.

This module and the twistd plugin are the only places that use the global
reactor, and only inside functions.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import Any, Callable, Iterable, List, Optional, Sequence, TextIO, Tuple

from twisted.internet.defer import ensureDeferred
from twisted.internet.error import CannotListenError

from .. import __version__
from ..config import ConfigError, load_config
from ..config.model import Config

#: The configuration file used when C{--config} is not given, as for twistd.
DEFAULT_CONFIG = "proxy.toml"

#: The configuration C{txrevproxy demo} runs when C{--config} is not given:
#: the quickstart shipped in the package beside the development certificates
#: its relative paths name, so that the demo runs from any directory after
#: C{pip install .}.  The same bytes as the repository's
#: C{examples/quickstart.toml} and C{certs/}.
DEMO_CONFIG = os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "demo_files", "examples", "quickstart.toml"
)


def _plural(count: int, word: str) -> str:
    return "%d %s%s" % (count, word, "" if count == 1 else "s")


def summary(config: Config) -> str:
    """
    One line telling what a valid configuration holds.
    """
    servers = sum(len(upstream.servers) for upstream in config.upstreams.values())
    return "%s: OK: %s, %s (%s), %s" % (
        config.source or "configuration",
        _plural(len(config.listeners), "listener"),
        _plural(len(config.upstreams), "upstream"),
        _plural(servers, "server"),
        _plural(len(config.routes), "route"),
    )


def _load(path: str, stderr: TextIO, load: Callable[[str], Any] = load_config) -> Any:
    """
    Load a configuration (with C{load}), or print every problem (one per
    line) to C{stderr} and return None.
    """
    try:
        return load(path)
    except ConfigError as error:
        for problem in error.problems:
            print(problem, file=stderr)
        return None


def _collect_warnings(warnings: List[str], event: dict) -> None:
    """
    Keep a warning logged while a configuration loads (something it asks
    for that this installation cannot do), for C{check} to print.
    """
    from twisted.logger import LogLevel, formatEvent

    if event.get("log_level") in (LogLevel.warn, LogLevel.error, LogLevel.critical):
        warnings.append(formatEvent(event))


def check(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """
    C{txrevproxy check}: validate without starting, and warn about what
    can never take effect or what this installation cannot do (exit 1 on
    a warning with C{--strict}); with C{--diff}, also say what the file
    changes from the running proxy's configuration or an older file's;
    with C{--dump}, print the effective configuration to C{stdout} and
    the summary and warnings to C{stderr} (as C{nginx -T} does), so that
    the output can be saved as a file.
    """
    from functools import partial

    from twisted.logger import globalLogPublisher

    loader: Callable[[str], Any] = load_config
    if args.dump:
        from ..config.dump import dump_config

        def loader(path: str):
            return dump_config(path, args.show_secrets)

    warnings: List[str] = []
    observer = partial(_collect_warnings, warnings)
    globalLogPublisher.addObserver(observer)
    try:
        loaded = _load(args.config, stderr, loader)
    finally:
        globalLogPublisher.removeObserver(observer)
    if loaded is None:
        return 1
    if args.dump:
        config, text = loaded
        stdout.write(text)
        report = stderr
    else:
        config, report = loaded, stdout
    from .lint import check_warnings

    print(summary(config), file=report)
    warnings += check_warnings(config)
    for warning in warnings:
        print("warning: " + warning, file=report)
    if args.admin is not None and args.diff is not _RUNNING:
        print("--admin goes with --diff (without OLD)", file=stderr)
        return 1
    if args.diff is not None and not _diff(args, config, stdout, stderr):
        return 1
    return 1 if warnings and args.strict else 0


#: What C{--diff} given without a file stands for: the running proxy.
_RUNNING = object()


def _diff(args: argparse.Namespace, config: Config, stdout: TextIO, stderr: TextIO) -> bool:
    """
    Print what C{config} changes from the configuration C{--diff} names:
    an older file, or (without one) the one the proxy serves, through the
    admin API of C{--admin} or of C{config}'s C{[admin]} table.

    @return: whether the comparison could be made.
    """
    from ..config.dump import dumped
    from .changes import changes
    from .reload import ReloadError, admin_address, get_config, read_token

    if args.diff is not _RUNNING:
        old = _load(args.diff, stderr)
        if old is None:
            print("%s: cannot compare with this file" % (args.diff,), file=stderr)
            return False
        # Both with their secrets, so that a changed secret is seen (and
        # said without its value).
        old_text, new_text, shown = dumped(old, True), dumped(config, True), args.diff
    else:
        try:
            token = args.token
            if args.token_file is not None:
                token = read_token(args.token_file)
            if args.admin is not None:
                address = admin_address(args.admin)
            elif config.admin is None:
                raise ReloadError(
                    "%s: no [admin] table; give --diff OLD.toml or --admin URL"
                    % (config.source,)
                )
            else:
                address = admin_address(config.admin.endpoint)
                if token is None:
                    token = config.admin.token
            old_text = get_config(address, token, args.timeout)
        except ReloadError as error:
            print(str(error), file=stderr)
            return False
        # The proxy redacts its secrets: compared redacted, they read equal.
        new_text, shown = dumped(config), "the running proxy (%s)" % (address.shown,)
    print("changes from %s:" % (shown,), file=stdout)
    for line in changes(old_text, new_text):
        print("  " + line, file=stdout)
    return True


def _loopback_host(host: str) -> Optional[str]:
    """
    The address to listen on for a backend host, if it is on this machine's
    loopback (the only place the demo starts backends); otherwise None.
    """
    if host.lower() == "localhost":
        return "127.0.0.1"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    return host if address.is_loopback else None


def demo_backends(config: Config) -> Tuple[List[Tuple[str, str, int]], List[str]]:
    """
    The demo backends to start for a configuration.

    @return: C{(name, host, port)} for every distinct loopback backend, and
        the URLs of the backends that are not on the loopback (not started).
    """
    backends: List[Tuple[str, str, int]] = []
    elsewhere: List[str] = []
    seen = set()
    for upstream in config.upstreams.values():
        for index, server in enumerate(upstream.servers):
            host = _loopback_host(server.host)
            if host is None:
                elsewhere.append(server.url)
            elif (host, server.port) not in seen:
                seen.add((host, server.port))
                name = "%s[%d] %s" % (upstream.name, index, server.url)
                backends.append((name, host, server.port))
    return backends, elsewhere


def _try_urls(config: Config, ports: Iterable) -> List[str]:
    """
    A URL on each listening TCP port, for the "try" hint.
    """
    urls = []
    for listener, port in zip(config.listeners.values(), ports):
        address = port.getHost()
        if not hasattr(address, "port"):
            continue
        host = address.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        if ":" in host:
            host = "[%s]" % (host,)
        kind = listener.endpoint.split(":", 1)[0].lower()
        if listener.tls is not None or kind in ("ssl", "tls"):
            https = _https_hint(config, listener, host)
            if https is not None:
                urls.append(https % (address.port, address.port))
            continue
        urls.append("http://%s:%d/" % (host, address.port))
    return urls


def _https_hint(config: Config, listener, host: str) -> Optional[str]:
    """
    A curl command line for an HTTPS listener (with C{%d} for its port):
    for a listener whose default certificate sits beside a development
    C{ca.pem} (as C{txrevproxy certs} writes them), trusting that CA and
    asking for the certificate's first name on the loopback address.
    """
    block = config.tls.get(listener.tls) if listener.tls else None
    if block is None or not block.certificates:
        return None
    first = block.certificates[0]
    ca = os.path.join(os.path.dirname(first.cert), "ca.pem")
    name = (first.names or ("localhost",))[0].replace("*", "www")
    if not os.path.exists(ca):
        return None
    return "--cacert %s --resolve %s:%%d:%s https://%s:%%d/" % (
        _shown_path(ca),
        name,
        host,
        name,
    )


def _shown_path(path: str) -> str:
    """
    A file's path as the demo prints it for the user to paste: relative
    when the file is under the current directory (C{certs/ca.pem} in a
    clone), absolute otherwise (the shipped files, wherever pip put them).
    """
    relative = os.path.relpath(path)
    return path if relative.startswith(os.pardir) else relative


class _DemoFailure(Exception):
    """
    The demo cannot start; the message says why.
    """


async def _start_demo(
    reactor, config: Config, stdout: TextIO, stderr: TextIO
) -> None:
    """
    Start the demo backends, then the proxy, and arrange for both to stop
    when the reactor does.  Log events are shown from then on (Twisted
    keeps the earlier ones until then), so that a failure to start is told
    once, by the message of the L{_DemoFailure}.
    """
    from ..app.service import ListenError, ProxyService
    from .demo import listen_demo_backend

    backends, elsewhere = demo_backends(config)
    ports = []

    def stop_backends() -> None:
        for port in ports:
            port.stopListening()

    reactor.addSystemEventTrigger("after", "shutdown", stop_backends)
    for name, host, port_number in backends:
        try:
            port = await listen_demo_backend(reactor, name, host, port_number)
        except CannotListenError as error:
            raise _DemoFailure(
                "demo backend %s: cannot listen on %s port %d: %s"
                % (name, host, port_number, error.socketError)
            )
        ports.append(port)
        print("started demo backend %s" % (name,), file=stdout)
    for url in elsewhere:
        print("not started (not a loopback address): backend %s" % (url,), file=stdout)

    service = ProxyService(config, reactor)
    try:
        service.startService()
    except ListenError as error:
        raise _DemoFailure(str(error))
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    _begin_logging(stderr)
    for name, listener in config.listeners.items():
        print("started proxy listener %s on %s" % (name, listener.endpoint), file=stdout)
    urls = _try_urls(config, service.ports)
    if urls:
        print("", file=stdout)
        print("Try it (each request goes to the next backend):", file=stdout)
        print("    curl %s" % (urls[0],), file=stdout)
        print(
            "    curl --data-binary @%s %supload" % (_shown_path(config.source), urls[0]),
            file=stdout,
        )
        for url in urls[1:]:
            print("    curl %s" % (url,), file=stdout)
    print("", file=stdout)
    print("Press Ctrl-C to stop.", file=stdout)
    stdout.flush()


def _begin_logging(stream: TextIO) -> None:
    """
    Show the proxy's warnings and errors (a backend down, a failed request)
    on C{stream}; informational messages would drown the demo's own output.
    """
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    observer = FilteringLogObserver(
        textFileLogObserver(stream),
        [LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)],
    )
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def demo(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """
    C{txrevproxy demo}: demo backends and the proxy in one foreground
    process, until Ctrl-C or SIGTERM, on the reactor twistd would use.
    """
    from ..app.signals import handle_stop_signals
    from ..net.reactor import install_unless_chosen

    install_unless_chosen()
    from twisted.internet import reactor

    config = _load(args.config, stderr)
    if config is None:
        return 1
    status = [0]

    def failed(failure) -> None:
        status[0] = 1
        if failure.check(_DemoFailure):
            print(failure.getErrorMessage(), file=stderr)
        else:
            print(failure.getTraceback(), file=stderr)
        reactor.stop()

    def start() -> None:
        ensureDeferred(_start_demo(reactor, config, stdout, stderr)).addErrback(failed)

    reactor.callWhenRunning(start)
    handle_stop_signals(reactor)
    reactor.run()
    return status[0]


def _certificate_name(text: str) -> str:
    """
    A name for C{txrevproxy certs}: an IP address, or a host name in the
    form the configuration uses (lower-case, IDNA, C{*.} wildcard).

    @raise Invalid: for anything else.
    """
    from ..config.values import server_name

    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return server_name(text)


def certs(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """
    C{txrevproxy certs}: a development CA and a leaf certificate per name.
    """
    from ..config.schema import Invalid
    from ..tls.devcerts import write_development_certificates

    names = []
    for text in args.names:
        try:
            names.append(_certificate_name(text))
        except Invalid as invalid:
            for _, message in invalid.problems:
                print("%s: %s" % (text, message), file=stderr)
            return 1
    try:
        written = write_development_certificates(args.out, names)
    except (OSError, ValueError) as error:
        print(str(error), file=stderr)
        return 1
    for path in written:
        print("wrote %s" % (path,), file=stdout)
    ca = os.path.join(args.out, "ca.pem")
    print("", file=stdout)
    print("Each NAME.pem has its key in NAME-key.pem.  Trust the development", file=stdout)
    print("CA %s in your client, for example:" % (ca,), file=stdout)
    print("    curl --cacert %s https://%s:8443/" % (ca, names[0].replace("*", "a")), file=stdout)
    return 0


def route(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """
    C{txrevproxy route}: explain where a request would go.
    """
    from .explain import ExplainError, explain

    config = _load(args.config, stderr)
    if config is None:
        return 1
    try:
        lines = explain(
            config,
            args.method,
            args.url,
            args.header,
            listener_name=args.listener,
            client_ip=args.client_ip,
        )
    except ExplainError as error:
        print(str(error), file=stderr)
        return 1
    for line in lines:
        print(line, file=stdout)
    return 0


def reload(args: argparse.Namespace, stdout: TextIO, stderr: TextIO) -> int:
    """
    C{txrevproxy reload}: have the running proxy reload, and exit 0 only if
    it did: through the admin API of C{--admin} or of the configuration's
    C{[admin]} table, or with C{--pidfile} by C{SIGHUP}, after checking the
    configuration as C{check} does (a signal cannot answer problems).
    """
    from .reload import (
        ReloadError,
        admin_address,
        post_reload,
        read_token,
        report,
        signal_reload,
    )

    def checked() -> Config:
        config = _load(args.config, stderr)
        if config is None:
            raise ReloadError("not reloaded: the proxy keeps its configuration")
        return config

    try:
        if args.pidfile is not None:
            checked()
            pid = signal_reload(args.pidfile)
            print("sent SIGHUP to process %d" % (pid,), file=stdout)
            return 0
        token = args.token
        if args.token_file is not None:
            token = read_token(args.token_file)
        if args.admin is not None:
            address = admin_address(args.admin)
        else:
            config = checked()
            if config.admin is None:
                raise ReloadError(
                    "%s: no [admin] table; give --admin URL or --pidfile FILE"
                    % (config.source,)
                )
            address = admin_address(config.admin.endpoint)
            if token is None:
                token = config.admin.token
        status, document = post_reload(address, token, args.timeout)
    except ReloadError as error:
        print(str(error), file=stderr)
        return 1
    return report(address, status, document, stdout, stderr)


def _add_config_option(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument(
        "--config",
        "-c",
        default=default,
        metavar="FILE",
        help="the configuration file (default: %(default)s)",
    )


def _add_admin_options(parser: argparse.ArgumentParser):
    """
    The options that reach the admin API: C{--admin}, C{--token} or
    C{--token-file}, C{--timeout}.

    @return: the group C{--admin} is in, whose options exclude each other.
    """
    ways = parser.add_mutually_exclusive_group()
    ways.add_argument(
        "--admin",
        metavar="URL",
        help="the admin API: http://HOST:PORT, or an endpoint such as "
        "unix:/run/txrevproxy-admin.sock (default: the configuration's "
        "[admin] endpoint)",
    )
    token_options = parser.add_mutually_exclusive_group()
    token_options.add_argument(
        "--token", metavar="TOKEN", help="the admin API's bearer token"
    )
    token_options.add_argument(
        "--token-file", metavar="FILE", help="a file holding the bearer token"
    )
    # A reload reads every certificate and, with workers, waits for each.
    parser.add_argument(
        "--timeout",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="how long to wait for the admin API's answer (default: %(default)g)",
    )
    return ways


def build_parser() -> argparse.ArgumentParser:
    """
    The command line of C{txrevproxy}.
    """
    parser = argparse.ArgumentParser(
        prog="txrevproxy",
        description=(
            "Tools for txrevproxy, a reverse proxy on Twisted.  The proxy "
            "itself runs under twistd: twistd -n txrevproxy --config FILE."
        ),
    )
    parser.add_argument("--version", action="version", version="txrevproxy " + __version__)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    check_parser = commands.add_parser(
        "check",
        help="validate a configuration file without starting",
        description=(
            "Validate a configuration file as the proxy would at start.  "
            "Exit 0 with a one-line summary, or print every problem, each "
            "with its key path, and exit 1.  Warn (exit 0 unless --strict) "
            "about what can never take effect: a route that never matches, "
            "an upstream, filter, cache or tls table nothing uses.  With "
            "--diff, also say what the file changes from the running proxy "
            "or from an older file, and what of it needs a restart."
        ),
    )
    _add_config_option(check_parser, DEFAULT_CONFIG)
    outputs = check_parser.add_mutually_exclusive_group()
    outputs.add_argument(
        "--dump",
        action="store_true",
        help="print the effective configuration (included files merged, "
        "environment variables substituted, defaults written out) as TOML",
    )
    check_parser.add_argument(
        "--show-secrets",
        action="store_true",
        help='with --dump, print secrets (tokens, keys) instead of "<redacted>"',
    )
    check_parser.add_argument(
        "--strict",
        action="store_true",
        help="exit 1 on a warning too (a route that never matches, an "
        "upstream, filter, cache or tls table nothing uses)",
    )
    outputs.add_argument(
        "--diff",
        nargs="?",
        const=_RUNNING,
        metavar="OLD",
        help="also say what the file changes, table by table, and what of it "
        "needs a restart: from the configuration file OLD, or without OLD "
        "from the configuration the running proxy serves (through its "
        "admin API: --admin, else the file's [admin] table)",
    )
    _add_admin_options(check_parser)
    check_parser.set_defaults(run=check)

    demo_parser = commands.add_parser(
        "demo",
        help="run a configuration with demo backends behind it",
        description=(
            "Start a demo backend for every upstream server on a loopback "
            "address, then the proxy, in this one process, until Ctrl-C."
        ),
    )
    _add_config_option(demo_parser, DEMO_CONFIG)
    demo_parser.set_defaults(run=demo)

    route_parser = commands.add_parser(
        "route",
        help="explain which route, upstream and backends a request would take",
        description=(
            "Explain how the proxy would route a request: the listener, the "
            "route that wins and why every other route lost, the upstream, "
            "the backends its balancer could pick, and the request head "
            "sent to the backend (or the answer the proxy gives itself).  "
            "Nothing is sent anywhere: the request goes through the "
            "proxy's own parsing and routing in memory."
        ),
    )
    _add_config_option(route_parser, DEFAULT_CONFIG)
    route_parser.add_argument("method", metavar="METHOD", help="such as GET")
    route_parser.add_argument(
        "url", metavar="URL", help="such as https://shop.example.test/products/1"
    )
    route_parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header (repeat for more); Host overrides the URL's",
    )
    route_parser.add_argument(
        "--listener",
        metavar="NAME",
        help="the listener the request arrives on (default: the one of the "
        "URL's scheme and port)",
    )
    route_parser.add_argument(
        "--client-ip",
        default="127.0.0.1",
        metavar="ADDRESS",
        help="the client's address (default: %(default)s)",
    )
    route_parser.set_defaults(run=route)

    certs_parser = commands.add_parser(
        "certs",
        help="make a development CA and certificates for local HTTPS",
        description=(
            "Make a development CA (DIR/ca.pem and DIR/ca-key.pem, reused "
            "when present) and, for each NAME, a certificate signed by it: "
            "DIR/NAME.pem (the certificate, then the CA) and DIR/NAME-key.pem.  "
            "A wildcard *.example.test is written as _wildcard.example.test.pem.  "
            "IP addresses go into the first host name's certificate (clients "
            "send no SNI name for an address), so that DIR serves as it is "
            "as a [tls.NAME] directory.  "
            "For development only."
        ),
    )
    certs_parser.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="DIR",
        help="the directory to write to (made if missing)",
    )
    certs_parser.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help="a host name, a wildcard such as *.example.test, or an IP address",
    )
    certs_parser.set_defaults(run=certs)

    reload_parser = commands.add_parser(
        "reload",
        help="have the running proxy reload its configuration; exit 1 if it did not",
        description=(
            "Have the running proxy reload its configuration, through its "
            "admin API: the one of --admin, else the [admin] table of the "
            "configuration file (endpoint and token).  Print every problem "
            "that kept the old configuration, each with its key path, and "
            "exit 1; or exit 0 once the proxy serves the new one.  With "
            "--pidfile, check the configuration file as 'check' does and, "
            "when it is valid, send SIGHUP to the pid in that file."
        ),
    )
    _add_config_option(reload_parser, DEFAULT_CONFIG)
    ways = _add_admin_options(reload_parser)
    ways.add_argument(
        "--pidfile",
        metavar="FILE",
        help="send SIGHUP to the pid in FILE (twistd's --pidfile) instead, "
        "after checking the configuration",
    )
    reload_parser.set_defaults(run=reload)
    return parser


def main(
    argv: Optional[Sequence[str]] = None,
    stdout: Optional[TextIO] = None,
    stderr: Optional[TextIO] = None,
) -> int:
    """
    Run C{txrevproxy} with C{argv} (default: the process's arguments).

    @return: the exit status.
    """
    args = build_parser().parse_args(argv)
    return args.run(args, stdout or sys.stdout, stderr or sys.stderr)
