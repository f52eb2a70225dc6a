"""
Stored responses, and the in-memory store that keeps them (an
L{ICacheStore}) within a byte bound, least recently used first out.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Dict, List, Optional, Tuple

import attr
from zope.interface import implementer

from ..interfaces import IBodyWriter, ICacheStore
from .partial import held_size
from .policy import Timing

Header = Tuple[bytes, bytes]

#: What a stored response costs besides its body and fields (the objects
#: that hold them), so that many tiny responses cannot exceed the bound.
OVERHEAD = 256


@attr.s(frozen=True, auto_attribs=True)
class StoredResponse:
    """
    A complete response as the cache keeps it.

    @ivar key: the primary key, the request's URL (C{b"https://host/p?q"}).
    @ivar vary_fields: the request fields its Vary names, lower-case, sorted.
    @ivar vary_values: the values of those fields in the request that got
        it (see L{txrevproxy.cache.policy.vary_values}).
    @ivar status: its status code.
    @ivar reason: its reason phrase.
    @ivar headers: its end-to-end fields, without Content-Length (the
        cache frames what it serves), hop-by-hop fields or Set-Cookie.
    @ivar body: the whole body: L{bytes}, or for a store that keeps
        bodies elsewhere an object with C{len()} and C{open()} (see
        L{IBodyWriter.close}); for a partial response (status 206) or one
        combined from pieces, a L{txrevproxy.cache.partial.Pieces} of such
        bodies.
    @ivar timing: when it was requested and received, for its age.
    @ivar kept: what L{txrevproxy.cache.freshness.freshness} worked out of
        it, with the settings it was for: a hit reads it again and again.
        Never copied (not an argument: C{attr.evolve} starts afresh), and
        no part of its equality.
    """

    key: bytes
    vary_fields: Tuple[bytes, ...]
    vary_values: Tuple[bytes, ...]
    status: int
    reason: bytes
    headers: Tuple[Header, ...]
    body: Any
    timing: Timing
    kept: List[Any] = attr.ib(init=False, factory=list, eq=False, repr=False)

    @property
    def size(self) -> int:
        """
        The bytes it counts for in a store.
        """
        return (
            OVERHEAD
            + len(self.key)
            + held_size(self.body)
            + sum(len(name) + len(value) for name, value in self.headers)
        )

    @property
    def variant(self) -> Tuple[Tuple[bytes, ...], Tuple[bytes, ...]]:
        """
        What tells it apart from the other responses of its key.
        """
        return (self.vary_fields, self.vary_values)


@implementer(IBodyWriter)
class MemoryBodyWriter:
    """
    A body kept in memory as its chunks.
    """

    def __init__(self) -> None:
        self._chunks: Optional[List[bytes]] = []

    def write(self, data: bytes) -> None:
        self._chunks.append(data)

    def received(self) -> Optional[List[bytes]]:
        return self._chunks

    def close(self) -> bytes:
        body = b"".join(self._chunks)
        self._chunks = None
        return body

    def discard(self) -> None:
        self._chunks = None


@implementer(ICacheStore)
class MemoryStore:
    """
    Responses in memory, bounded by bytes.

    Recency is kept per primary key (an L{OrderedDict} moved to the end on
    each use), so lookups and evictions are constant time; the variants of
    one key are few and live and die together.
    """

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.size = 0
        self.count = 0
        self.evicted = 0
        self._entries: "OrderedDict[bytes, List[StoredResponse]]" = OrderedDict()

    def variants(self, key: bytes) -> List[StoredResponse]:
        found = self._entries.get(key)
        if found is None:
            return []
        self._entries.move_to_end(key)
        return list(found)

    def writer(self) -> MemoryBodyWriter:
        return MemoryBodyWriter()

    def put(self, response: StoredResponse) -> None:
        self.kept(response)
        found = self._entries.get(response.key)
        if found is None:
            found = self._entries[response.key] = []
        else:
            self._entries.move_to_end(response.key)
            for old in found:
                if old.variant == response.variant:
                    found.remove(old)
                    self._forget([old])
                    break
        found.insert(0, response)
        self.size += response.size
        self.count += 1
        self._evict()

    def _evict(self) -> None:
        entries = self._entries
        while self.size > self.max_size and entries:
            _, evicted = entries.popitem(last=False)
            self.evicted += len(evicted)
            self._forget(evicted)

    def remove(self, key: bytes) -> int:
        found = self._entries.pop(key, None)
        if not found:
            return 0
        self._forget(found)
        return len(found)

    def _forget(self, responses: List[StoredResponse]) -> None:
        for response in responses:
            self.size -= response.size
            self.count -= 1
            self.forgotten(response)

    def kept(self, response: StoredResponse) -> None:
        """
        A response is being stored, before the one it replaces is
        forgotten: a store that keeps bodies elsewhere counts its bodies
        here, since a response combined from pieces shares bodies with the
        one it replaces (see L{txrevproxy.cache.partial.combined}).
        """

    def forgotten(self, response: StoredResponse) -> None:
        """
        A response left the store; a store that keeps bodies elsewhere
        lets go of its body here.
        """

    def remove_prefix(self, prefix: bytes) -> int:
        keys = [key for key in self._entries if key.startswith(prefix)]
        return sum(self.remove(key) for key in keys)

    def keys(self) -> Dict[bytes, int]:
        """
        The primary keys stored and how many variants each has, least
        recently used first (for tests and status pages).
        """
        return {key: len(found) for key, found in self._entries.items()}


def configure(settings, clock) -> MemoryStore:
    """
    The store of a C{[caches.NAME]} table with C{store = "memory"} (see
    L{txrevproxy.interfaces.ICacheStoreType.configure}).
    """
    return MemoryStore(settings.max_size)
