"""
The disk store: responses whose bodies live in files, for caches of large
objects that memory should not hold.

The index (keys, fields, sizes) stays in memory, as in L{MemoryStore};
each body is one file in the store's directory, written chunk by chunk as
it arrives and served chunk by chunk as the client reads (see
L{txrevproxy.cache.serve}), so no body is ever whole in memory.  The
reads and writes are small, local and sequential, made on the reactor
thread as C{twisted.web.static.File} serves files.  The index is not
kept across restarts: a new store empties its directory of bodies before
its first write.
"""

from __future__ import annotations

import os
import tempfile
from typing import IO, Dict, Optional

from zope.interface import implementer

from ..interfaces import IBodyWriter
from .partial import bodies_of
from .store import MemoryStore, StoredResponse

#: The names of the body files, so that only they are ever removed.
_SUFFIX = ".txrevproxy-body"


class FileBody:
    """
    A stored body in a file.

    @ivar path: the file.
    """

    def __init__(self, path: str, length: int) -> None:
        self.path = path
        self._length = length

    def __len__(self) -> int:
        return self._length

    def open(self) -> IO[bytes]:
        return open(self.path, "rb")


@implementer(IBodyWriter)
class FileBodyWriter:
    """
    A body being written to a new file of the store's directory.
    """

    def __init__(self, directory: str) -> None:
        handle, self._path = tempfile.mkstemp(suffix=_SUFFIX, dir=directory)
        self._file: Optional[IO[bytes]] = os.fdopen(handle, "wb")
        self._length = 0

    def write(self, data: bytes) -> None:
        self._file.write(data)
        self._length += len(data)

    def received(self) -> None:
        return None

    def close(self) -> FileBody:
        self._file.close()
        self._file = None
        return FileBody(self._path, self._length)

    def discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
            _remove(self._path)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


class DiskStore(MemoryStore):
    """
    A L{MemoryStore} whose bodies are files in C{directory}; C{max_size}
    bounds the bytes on disk (and the index's own share).  A body's file
    is removed when no stored response holds it any more (responses
    combined from pieces share files with the ones they replace); a client
    still reading it keeps reading (the file stays until it is closed).
    """

    _prepared = False

    def __init__(self, directory: str, max_size: int) -> None:
        super().__init__(max_size)
        self.directory = directory
        #: How many stored responses hold each body file, by path.
        self._holders: Dict[str, int] = {}

    def writer(self) -> FileBodyWriter:
        if not self._prepared:
            self._prepare()
        return FileBodyWriter(self.directory)

    def _prepare(self) -> None:
        """
        Make the directory, and remove the bodies a previous store left
        there.  Done on the first write rather than when the store is made,
        so that making a runtime only to explain a request
        (C{txrevproxy route}) touches no file.
        """
        self._prepared = True
        os.makedirs(self.directory, exist_ok=True)
        for name in os.listdir(self.directory):
            if name.endswith(_SUFFIX):
                _remove(os.path.join(self.directory, name))

    def kept(self, response: StoredResponse) -> None:
        holders = self._holders
        for body in bodies_of(response.body):
            holders[body.path] = holders.get(body.path, 0) + 1

    def forgotten(self, response: StoredResponse) -> None:
        holders = self._holders
        for body in bodies_of(response.body):
            left = holders.pop(body.path, 1) - 1
            if left:
                holders[body.path] = left
            else:
                _remove(body.path)


def configure(settings, clock) -> DiskStore:
    """
    The store of a C{[caches.NAME]} table with C{store = "disk"} (see
    L{txrevproxy.interfaces.ICacheStoreType.configure}); its C{path} is
    required there.
    """
    return DiskStore(settings.path, settings.max_size)
