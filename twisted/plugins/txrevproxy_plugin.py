"""
The twistd plugin: C{twistd -n txrevproxy --config proxy.toml}.

Kept tiny on purpose: twistd imports every plugin module to list them, and
when one fails to import it only says "Unknown command".  Everything else is
imported inside L{ProxyServiceMaker.makeService}.
"""

from __future__ import annotations

from twisted.application.service import IServiceMaker, MultiService
from twisted.logger import Logger
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
    The service twistd runs, around the L{ProxyService}:

      - when a listener cannot open its endpoint, the process exits
        non-zero with the sentence naming the key, instead of a traceback;
      - SIGHUP reads the listeners' certificates again (new handshakes get
        the new ones; a broken new file keeps the old one serving and is
        logged).  The signal handler only schedules the work, through
        C{callFromThread}, which is safe to call from a signal handler.
    """

    log = Logger()

    def __init__(self, reactor) -> None:
        super().__init__()
        self._reactor = reactor
        self._previous_sighup = None

    def privilegedStartService(self) -> None:
        from txrevproxy.service import ListenError

        try:
            super().privilegedStartService()
        except ListenError as error:
            raise StartFailure(str(error))

    def startService(self) -> None:
        import signal

        super().startService()
        self._previous_sighup = signal.signal(signal.SIGHUP, self._onSIGHUP)

    def stopService(self):
        import signal

        if self._previous_sighup is not None:
            signal.signal(signal.SIGHUP, self._previous_sighup)
            self._previous_sighup = None
        return super().stopService()

    def _onSIGHUP(self, signum, frame) -> None:
        self._reactor.callFromThread(self.reload_certificates)

    def reload_certificates(self) -> None:
        for service in self:
            problems = service.reload_certificates()
            for problem in problems:
                self.log.error("reload: {problem}", problem=problem)
            if not problems:
                self.log.info("reload: certificates read again")


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
        from twisted.internet import reactor

        from txrevproxy.config import ConfigError, load_config
        from txrevproxy.service import ProxyService

        try:
            config = load_config(options["config"])
        except ConfigError as error:
            raise StartFailure(str(error))
        top = _TwistdService(reactor)
        ProxyService(config, reactor).setServiceParent(top)
        return top


serviceMaker = ProxyServiceMaker()
