"""
The twistd plugin: C{twistd -n txrevproxy --config proxy.toml}.

Kept tiny on purpose: twistd imports every plugin module to list them, and
when one fails to import it only says "Unknown command".  Everything else is
imported inside L{ProxyServiceMaker.makeService}.
"""

from __future__ import annotations

import sys

from twisted.application.service import IServiceMaker, MultiService, Service
from twisted.internet.defer import DeferredList, maybeDeferred
from twisted.plugin import IPlugin
from twisted.python import usage
from zope.interface import implementer


class Options(usage.Options):
    synopsis = "[--config FILE]"
    longdesc = (
        "Run the txrevproxy reverse proxy with the configuration in FILE "
        "(TOML, default proxy.toml in the current directory; see "
        "docs/configuration.rst).  'txrevproxy check --config FILE' validates "
        "a file without starting."
    )
    optParameters = [
        ["config", "c", "proxy.toml", "The configuration file (TOML)."],
    ]

    def opt_version(self) -> None:
        """
        Print txrevproxy's version (and Twisted's) and exit.
        """
        from twisted import copyright
        from txrevproxy import __version__

        print("txrevproxy %s (Twisted %s)" % (__version__, copyright.version))
        sys.exit(0)


class StartFailure(SystemExit, Exception):
    """
    The proxy cannot start; the message is the sentences an operator reads.

    Both a L{SystemExit} and an L{Exception}, because twistd treats them
    differently and each way matters: twistd handles an L{Exception} raised
    while starting (it removes the pid file, and when daemonizing it hands
    the message to the waiting parent, which prints it), then re-raises it;
    at the top of the process Python prints a L{SystemExit}'s message alone,
    without a traceback, and exits with status 1.
    """


class _TwistdService(MultiService):
    """
    The service twistd runs, around the proxy (a L{ProxyService}, or the
    L{WorkerSupervisor} of its worker processes) and its admin API:

      - when a listener cannot open its endpoint, the process exits
        non-zero with the sentence naming the key, instead of a traceback;
      - SIGHUP reloads, SIGUSR1 reopens the access log, SIGTERM and SIGINT
        stop gracefully and exit 0 (see L{txrevproxy.app.signals});
      - the admin API stops after the proxy has drained, so that C{GET
        /ready} answers 503 during the drain instead of refusing
        connections.

    L{privilegedStartService} may be called early, before twistd
    daemonizes (see L{ProxyServiceMaker.makeService}); twistd's own call
    then does nothing.

    @param log_observer: the observer twistd should log with instead of
        its own (see L{txrevproxy.observe.eventlog}), or L{None}.
    """

    def __init__(self, reactor, proxy, log_observer=None) -> None:
        super().__init__()
        self._reactor = reactor
        self.proxy = proxy
        self._log_observer = log_observer
        self._restore_signals = None
        self._listening = False

    def setServiceParent(self, parent) -> None:
        # twistd adds this service to the application it made, then begins
        # logging to the application's ILogObserver, when it has one,
        # instead of its own observer.
        if self._log_observer is not None:
            from twisted.logger import ILogObserver

            parent.setComponent(ILogObserver, self._log_observer)
        super().setServiceParent(parent)

    def privilegedStartService(self) -> None:
        from txrevproxy.app.service import ListenError
        from txrevproxy.app.signals import handle_signals

        if self._listening:
            return
        try:
            super().privilegedStartService()
        except ListenError as error:
            raise StartFailure(str(error))
        self._listening = True
        # From the moment a client can connect, a SIGHUP reloads (once the
        # reactor runs) rather than ending the process, as the signal's
        # default action would until startService.
        self._restore_signals = handle_signals(self._reactor, self.proxy)

    def stopService(self):
        if self._restore_signals is not None:
            self._restore_signals()
            self._restore_signals = None
        Service.stopService(self)
        others = [each for each in self if each is not self.proxy]
        d = maybeDeferred(self.proxy.stopService)
        d.addBoth(
            lambda _: DeferredList([maybeDeferred(each.stopService) for each in others])
        )
        return d


@implementer(IServiceMaker, IPlugin)
class ProxyServiceMaker:
    tapname = "txrevproxy"
    description = "A streaming reverse proxy and TLS terminator."
    options = Options

    def makeService(self, options: Options) -> MultiService:
        """
        Load and validate the configuration, and build the proxy service.
        An invalid or unreadable configuration exits with every problem and
        its key path, exactly as C{txrevproxy check} prints them.
        """
        if getattr(options, "parent", None) is not None:
            # Run from twistd's command line (not by a test or another
            # program): on PyPy, start again with a nursery sized for a
            # proxy (see txrevproxy.app.gc_nursery), before anything opens.
            from txrevproxy.app.gc_nursery import restart_with_nursery

            restart_with_nursery()
            # twistd installs its default reactor only after this, when
            # none was chosen with --reactor: run on the proxy's own.
            from txrevproxy.net.reactor import install_unless_chosen

            install_unless_chosen()

        from twisted.internet import reactor

        from txrevproxy.app.admin import AdminService
        from txrevproxy.app.service import ProxyService
        from txrevproxy.config import ConfigError, load_config

        try:
            config = load_config(options["config"])
        except ConfigError as error:
            raise StartFailure(str(error))
        parent = getattr(options, "parent", None)
        if parent is not None:
            # On PyPy, the JIT's settings for a proxy, once the code that
            # starts it has run (see txrevproxy.app.pypy_jit).
            from txrevproxy.app.pypy_jit import apply_jit_parameters

            reactor.callWhenRunning(apply_jit_parameters)
        workers = config.server.workers > 1
        log_observer = None
        if parent is not None and config.log.events == "json":
            from txrevproxy.observe.eventlog import twistd_json_observer

            log_observer = twistd_json_observer(parent, {"supervisor": True} if workers else {})
        if workers:
            from txrevproxy.app.workers import WorkerSupervisor

            if parent is not None and log_observer is None:
                # Before twistd begins logging (see
                # txrevproxy.observe.process_label).
                from txrevproxy.observe.process_label import label_log_events

                label_log_events("supervisor")
            proxy = WorkerSupervisor(config, reactor)
        else:
            proxy = ProxyService(config, reactor)
        top = _TwistdService(reactor, proxy, log_observer)
        proxy.setServiceParent(top)
        if config.admin is not None:
            AdminService(proxy, reactor).setServiceParent(top)
        if parent is not None and not parent.get("nodaemon", True):
            # twistd daemonizes next, and a failure after that reaches the
            # terminal only as its first 100 bytes: open the listeners now
            # (as nginx binds before it forks), so a port in use is told
            # whole, and the daemon inherits the sockets.
            top.privilegedStartService()
        return top


serviceMaker = ProxyServiceMaker()
