"""
HPACK encoding of the fields the proxy sends over HTTP/2 to its clients,
without the dynamic table (RFC 7541 section 6.2.2, literal without
indexing), each field's bytes worked out once.

C{hpack}'s encoder adds every field it sends to the dynamic table, looks
each one up there, and Huffman-codes every literal anew: in pure Python
that was a tenth of the CPU an HTTP/2 request costs the proxy.  A
response head is mostly the same few fields (the status, the backend's
Server and Content-Type, a Date that changes once a second): encoded
without the dynamic table, a field is the same bytes in every header
block of every connection, so L{StaticTableEncoder} keeps them, and a
head is a join of known bytes.  nginx encodes its responses the same way
(the static table for names, literals without indexing); the cost is a
few dozen bytes per head that a dynamic table would have saved, on a
connection that carries whole responses.
"""

from __future__ import annotations

from typing import Dict, FrozenSet, Iterable, Tuple

from h2.utilities import CONNECTION_HEADERS
from hpack import Encoder, NeverIndexedHeaderTuple
from hpack.huffman import HuffmanEncoder
from hpack.huffman_constants import REQUEST_CODES, REQUEST_CODES_LENGTH
from hpack.table import HeaderTable

_HUFFMAN = HuffmanEncoder(REQUEST_CODES, REQUEST_CODES_LENGTH)

#: The static table's index of each field, and of each name (the first
#: entry with it).
_STATIC_FIELDS: Dict[Tuple[bytes, bytes], int] = {}
_STATIC_NAMES: Dict[bytes, int] = {}
for _index, _field in enumerate(HeaderTable.STATIC_TABLE, 1):
    _STATIC_FIELDS.setdefault(_field, _index)
    _STATIC_NAMES.setdefault(_field[0], _index)

#: Fields whose values may be credentials, as C{h2} sends them: never
#: indexed, by anyone (RFC 7541 section 7.1.3), and never kept here.
_SECRET_FIELDS = frozenset([b"authorization", b"proxy-authorization"])

#: How many fields L{StaticTableEncoder} keeps (all of them go when it is
#: full: new ones are then mostly Dates), and the longest value it keeps.
CACHE_FIELDS = 4096
CACHE_VALUE_LENGTH = 256


def _integer(value: int, prefix_bits: int, flags: int) -> bytes:
    """
    C{value} in HPACK's integer representation (RFC 7541 section 5.1),
    after the C{flags} bits of its first byte.
    """
    limit = (1 << prefix_bits) - 1
    if value < limit:
        return bytes([flags | value])
    octets = [flags | limit]
    value -= limit
    while value >= 128:
        octets.append((value & 127) | 128)
        value >>= 7
    octets.append(value)
    return bytes(octets)


def _string(data: bytes) -> bytes:
    """
    A string literal (RFC 7541 section 5.2), Huffman-coded when that is
    shorter.
    """
    coded = _HUFFMAN.encode(data)
    if len(coded) < len(data):
        return _integer(len(coded), 7, 0x80) + coded
    return _integer(len(data), 7, 0) + data


def encode_name(name: bytes, never_indexed: bool = False) -> bytes:
    """
    The start of a literal field without indexing (never indexed, with
    C{never_indexed}): the static table's index of C{name} when it has
    one, else the name itself.

    @param name: in lower case, as HTTP/2 has them.
    """
    flags = 0x10 if never_indexed else 0x00
    index = _STATIC_NAMES.get(name)
    if index is not None:
        return _integer(index, 4, flags)
    return bytes([flags]) + _string(name)


def encode_field(name: bytes, value: bytes, never_indexed: bool = False) -> bytes:
    """
    One field's representation, none of which touches the dynamic table:
    the static table's index for a field it holds, else a literal without
    indexing (L{encode_name}).

    @param name: in lower case, as HTTP/2 has them.
    """
    index = _STATIC_FIELDS.get((name, value))
    if index is not None:
        return _integer(index, 7, 0x80)
    return encode_name(name, never_indexed) + _string(value)


class StaticTableEncoder(Encoder):
    """
    An HPACK encoder for C{h2} (its connection's C{encoder}) that never
    adds to the dynamic table (see the module docstring).

    It normalises the fields as C{h2} does before it encodes them (its
    connection's C{normalize_outbound_headers} is then turned off): names
    in lower case, values without surrounding whitespace, no
    connection-specific field (RFC 9113 section 8.2.2), credentials never
    indexed.  The table size updates the client's SETTINGS call for are
    sent as C{hpack}'s encoder sends them.

    @ivar uncached: the fields whose values are new in every head
        (X-Request-ID): the bytes of each one's name, by its lower-case
        name.  Their values are not kept, and sent as they are (Huffman
        coding a random value would cost more CPU than the few bytes it
        saves).
    """

    #: Each field's bytes, by the field as it was given, shared by every
    #: connection: the bytes are the same whatever was sent before them.
    _cache: Dict[Tuple[bytes, bytes], bytes] = {}

    def __init__(self, uncached: FrozenSet[bytes] = frozenset()) -> None:
        """
        @param uncached: the lower-case names of the uncached fields.
        """
        super().__init__()
        self.uncached = {name: encode_name(name) for name in uncached}

    def encode(self, headers: Iterable[Tuple[bytes, bytes]], huffman: bool = True) -> bytes:
        """
        The header block of C{headers}.

        @param huffman: ignored: a literal is Huffman-coded when that makes
            it shorter.
        """
        block = []
        table = self.header_table
        if table.resized:
            block.append(self._encode_table_size_change())
            table.resized = False
        cache = self._cache
        for field in headers:
            # Only plain tuples are kept: a NeverIndexedHeaderTuple equals
            # the plain tuple of its field, but is encoded otherwise.
            if field.__class__ is tuple:
                encoded = cache.get(field) or self._encode(field)
            else:
                encoded = self._encode(field)
            block.append(encoded)
        return b"".join(block)

    def _encode(self, field: Tuple[bytes, bytes]) -> bytes:
        """
        Encode a field not kept yet, and keep it unless it is unique,
        secret, or long.
        """
        name, value = field[0], field[1]
        if isinstance(name, str):
            name = name.encode("utf-8")
        if isinstance(value, str):
            value = value.encode("utf-8")
        name = name.strip().lower()
        value = value.strip()
        if name in CONNECTION_HEADERS:
            return b""
        unique = self.uncached.get(name)
        if unique is not None and field.__class__ is tuple:
            return unique + _integer(len(value), 7, 0) + value
        secret = (
            isinstance(field, NeverIndexedHeaderTuple)
            or name in _SECRET_FIELDS
            or (name == b"cookie" and len(value) < 20)
        )
        encoded = encode_field(name, value, never_indexed=secret)
        if not (
            secret
            or field.__class__ is not tuple
            or len(value) > CACHE_VALUE_LENGTH
        ):
            cache = self._cache
            if len(cache) >= CACHE_FIELDS:
                cache.clear()
            cache[field] = encoded
        return encoded
