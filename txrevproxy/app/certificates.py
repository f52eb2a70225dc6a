"""
The ACME certificate managers of a process, kept across reloads.

A manager belongs to the process, not to a runtime: a reload that leaves
a table's C{acme} (and its challenge) as it was keeps the manager, with
its renewal timer and any order in progress; one that changes it stops
the old manager and starts a new one; one that removes it stops it.

Only the process that orders has managers: the supervisor with C{[server]
workers} (its workers read the certificates from the storage), else the
single process.
"""

from __future__ import annotations

from typing import Callable, Dict

from twisted.application.service import MultiService

from ..config.model import Config
from ..tls.acme.manager import CertificateManager, challenge_kind


class CertificateManagers(MultiService):
    """
    One L{CertificateManager} per C{[tls.NAME]} table with C{acme}.

    @param renewed: called with a table's name when its certificate was
        renewed (to reload that table's store).
    """

    def __init__(self, reactor, renewed: Callable[[str], object]) -> None:
        super().__init__()
        self._reactor = reactor
        self._renewed = renewed
        self.managers: Dict[str, CertificateManager] = {}

    def configure(self, config: Config) -> None:
        """
        Have a manager for every table of C{config} with C{acme}, keeping
        those whose settings did not change.
        """
        wanted = {
            name: (block.acme, challenge_kind(config, block))
            for name, block in config.tls.items()
            if block.acme is not None
        }
        for name, manager in list(self.managers.items()):
            if wanted.get(name) != (manager.acme, manager.kind):
                del self.managers[name]
                manager.disownServiceParent()
        for name, (acme, kind) in wanted.items():
            if name not in self.managers:
                manager = CertificateManager(
                    name, acme, kind, self._reactor, lambda name=name: self._renewed(name)
                )
                self.managers[name] = manager
                manager.setServiceParent(self)
