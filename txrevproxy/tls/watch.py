"""
Reading a C{[tls.NAME]} table's certificates again when their files
change (C{watch}), as certbot or an ACME client renews them, without a
reload.

Every C{watch} seconds the files are looked at with C{stat} (following
symbolic links: certbot's C{live/NAME/fullchain.pem} is a link that a
renewal points at a new file in C{archive/}), which costs no reading.
When one changed, the store reads them all again (L{CertificateStore.reload}):
a certificate whose new files do not go together yet (a key written
before its certificate) keeps being served from its old files, and the
files are read again at the next tick at which they changed again.
"""

from __future__ import annotations

import os
from typing import Dict, List, Optional, Tuple

from twisted.application.service import Service
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from .acme.storage import Storage
from .files import FileProblem, directory_pairs

#: What tells that a file changed: its device, inode, size and modification
#: time in nanoseconds, or L{None} for a file that is not there.
FileState = Optional[Tuple[int, int, int, int]]


def watched_files(block) -> List[str]:
    """
    The files of a C{[tls.NAME]} table: each certificate's C{cert},
    C{key} and C{ocsp}, for C{directory} the directory itself (a pair
    added or removed changes it) and the files of every pair in it, and
    for C{acme} the certificate and key in its storage.
    """
    paths: List[str] = []
    for spec in block.certificates:
        paths += [spec.cert, spec.key] + ([spec.ocsp] if spec.ocsp else [])
    if block.directory is not None:
        paths.append(block.directory)
        try:
            for cert, key in directory_pairs(block.directory):
                paths += [cert, key, os.path.dirname(cert)]
        except FileProblem:
            pass
    if block.acme is not None:
        # Where the process that orders writes the certificate.
        storage = Storage.of(block.acme)
        paths += [storage.chain, storage.key]
    return list(dict.fromkeys(paths))


def file_states(block) -> Dict[str, FileState]:
    """
    The L{FileState} of every file of L{watched_files}.
    """
    states: Dict[str, FileState] = {}
    for path in watched_files(block):
        try:
            found = os.stat(path)
        except OSError:
            states[path] = None
        else:
            states[path] = (found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns)
    return states


class CertificateWatcher(Service):
    """
    Every C{interval} seconds, reads a table's certificates again into its
    L{CertificateStore} when any of their files changed.

    Owned by the runtime of the configuration (a reload replaces it with
    the new runtime's), started and stopped with the proxy service.
    """

    log = Logger()

    def __init__(self, store, block, interval: float, clock) -> None:
        """
        @param store: the L{txrevproxy.tls.store.CertificateStore} of
            C{block}.
        @param block: the L{txrevproxy.config.model.TLS} table, with
            absolute paths.
        """
        self.store = store
        self.block = block
        self.interval = interval
        self._loop = LoopingCall(self.check)
        self._loop.clock = clock
        self._served: Dict[str, FileState] = {}
        self._refused: Optional[Dict[str, FileState]] = None

    def startService(self) -> None:
        super().startService()
        # The store read the files when it was built, just before.
        self._served = file_states(self.block)
        self._loop.start(self.interval, now=False)

    def stopService(self):
        super().stopService()
        if self._loop.running:
            self._loop.stop()

    def check(self) -> None:
        """
        Read the certificates again if a file changed since they were last
        read, unless the files are as they were when that failed.
        """
        states = file_states(self.block)
        if states == self._served or states == self._refused:
            return
        changed = ", ".join(
            path
            for path in dict.fromkeys(list(states) + list(self._served))
            if states.get(path) != self._served.get(path)
        )
        problems = self.store.reload()
        if problems:
            self._refused = states
            self.log.warn(
                "tls.{table}: {changed} changed, but kept the previous "
                "certificate where the new files cannot be used (see above); "
                "read again when they change",
                table=self.block.name,
                changed=changed,
            )
            return
        self._served, self._refused = states, None
        self.log.info(
            "tls.{table}: reloaded the certificates: {changed} changed",
            table=self.block.name,
            changed=changed,
        )
