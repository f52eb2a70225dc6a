"""
ProxyService: the twistd service that owns the listeners and the runtime.
"""

from __future__ import annotations

from typing import List

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.protocols.haproxy import proxyEndpoint
from twisted.python.failure import Failure

from .config.model import Config
from .runtime import Runtime
from .tls.store import CertificateError

#: Listen backlog for TCP listeners that do not set one: Twisted's default
#: of 50 refuses connections under a burst; nginx uses 511.
DEFAULT_BACKLOG = 511


def with_default_backlog(description: str) -> str:
    """
    A server endpoint description with L{DEFAULT_BACKLOG} added when it is
    a TCP (or SSL) endpoint that does not choose a backlog itself.
    """
    kind = description.split(":", 1)[0].strip().lower()
    if kind in ("tcp", "tcp6", "ssl") and "backlog=" not in description:
        return description + ":backlog=%d" % (DEFAULT_BACKLOG,)
    return description


class ListenError(Exception):
    """
    A listener could not open its endpoint or read its certificates; the
    message names the key.
    """


class ProxyService(MultiService):
    """
    Runs one configuration: listens on every listener's endpoint and serves
    requests through a L{Runtime}.

    Listening happens in L{privilegedStartService} when run by twistd (so
    that ports below 1024 are bound before privileges are dropped) and
    synchronously where the endpoint allows, so that a port already in use
    stops the start with a sentence rather than a traceback.

    The runtime's health checkers are child services: they start and stop
    with this one.
    """

    log = Logger()

    def __init__(self, config: Config, reactor) -> None:
        super().__init__()
        self.config = config
        self._reactor = reactor
        self.runtime = None
        self._ports: List = []

    def privilegedStartService(self) -> None:
        self._listen()
        super().privilegedStartService()

    def startService(self) -> None:
        if self.runtime is None:
            self._listen()
        super().startService()

    def _listen(self) -> None:
        try:
            self.runtime = Runtime(self.config, self._reactor)
        except CertificateError as error:
            # The files changed since the configuration was validated.
            self.log.critical("{message}", message=str(error))
            raise ListenError(str(error))
        for checker in self.runtime.health_checkers:
            checker.setServiceParent(self)
        for name, listener in self.config.listeners.items():
            endpoint = serverFromString(
                self._reactor, with_default_backlog(listener.endpoint)
            )
            if listener.proxy_protocol:
                endpoint = proxyEndpoint(endpoint)
            d = endpoint.listen(self.runtime.factories[name])
            d.addCallbacks(
                self._listening,
                self._cannotListen,
                callbackArgs=(name,),
                errbackArgs=(name, listener.endpoint),
            )
            failed: List[Failure] = []
            d.addErrback(failed.append)
            if failed:
                self._stopListening()
                failed[0].raiseException()

    def _listening(self, port, name: str) -> None:
        self._ports.append(port)
        self.runtime.ports[name] = getattr(port.getHost(), "port", 0)
        self.log.info("listener {name} on {address}", name=name, address=port.getHost())

    def _cannotListen(self, failure: Failure, name: str, description: str) -> None:
        message = "listeners.%s.endpoint: cannot listen on %s: %s" % (
            name,
            description,
            failure.getErrorMessage(),
        )
        self.log.critical("{message}", message=message)
        raise ListenError(message)

    def _stopListening(self) -> Deferred:
        ports, self._ports = self._ports, []
        return DeferredList(
            [d for d in (port.stopListening() for port in ports) if d is not None]
        )

    def reload_certificates(self) -> List[str]:
        """
        Read the listeners' certificate files again: new handshakes get the
        new certificates, established connections keep theirs, and a
        certificate whose new files are broken keeps being served from the
        old ones.

        @return: the problems found, each a sentence with its key path;
            they are also logged.
        """
        if self.runtime is None:
            return []
        return self.runtime.reload_certificates()

    @property
    def ports(self) -> List:
        """
        The listening ports, in listener order (tests read their numbers).
        """
        return list(self._ports)

    def stopService(self) -> Deferred:
        super().stopService()
        d = self._stopListening()
        closing = [d] if d is not None else []
        if self.runtime is not None:
            closing.append(self.runtime.close())
        return DeferredList(closing)
