"""
The PROXY protocol (HAProxy's, versions 1 and 2), sans I/O: reading the
header a load balancer sends before a connection's first byte, and making
the one the proxy sends its backends.

A header names the client's address and the address it connected to, so
that whoever receives the connection sees the client instead of the
balancer.  Version 1 is one line of text (at most 107 bytes with its CRLF);
version 2 is binary: a 12-byte signature, a version and command byte, a
family byte, a 2-byte length and that many bytes of addresses and
extensions (TLVs, which are skipped).  The specification:
U{https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt}.
"""

from __future__ import annotations

import ipaddress
import struct
from typing import Optional, Tuple, Union

import attr

#: An address as the protocol carries it: an IP address literal and a port.
Address = Tuple[str, int]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]

#: The first bytes of a version 1 header.
V1_SIGNATURE = b"PROXY "

#: The longest version 1 header, its CRLF included (section 2.1).
V1_MAX_LENGTH = 107

#: The first bytes of a version 2 header.
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"

#: A version 2 header's fixed part: the signature, the version and
#: command, the family and the length of what follows.
_V2_FIXED = len(V2_SIGNATURE) + 4

#: Version 2 commands (the low nibble of byte 13; the high one is 2).
_V2_LOCAL = 0x20
_V2_PROXY = 0x21

#: Version 2 families and transports (byte 14) that name TCP addresses,
#: with the length of the address block and how it packs.
_V2_TCP4 = 0x11
_V2_TCP6 = 0x21
_V2_ADDRESSES = {_V2_TCP4: (12, "!4s4sHH", 4), _V2_TCP6: (36, "!16s16sHH", 6)}

#: Families whose addresses a stream connection cannot use: unspecified,
#: and Unix sockets (stream or datagram).  The header is valid; the
#: connection's own addresses stand.
_V2_UNUSABLE = frozenset([0x00, 0x31, 0x32])


class MalformedProxyHeader(ValueError):
    """
    The bytes are not a PROXY protocol header the specification allows: the
    connection must be closed.
    """


@attr.s(frozen=True, slots=True, auto_attribs=True)
class ProxyHeader:
    """
    What a PROXY protocol header said.

    @ivar version: 1 or 2.
    @ivar source: the client's address, or L{None} when the header names
        none (version 1's C{UNKNOWN}, version 2's C{LOCAL} command or a
        family other than TCP over IPv4 or IPv6): the connection's own
        peer stands then.
    @ivar destination: the address the client connected to, or L{None}
        likewise.
    """

    version: int
    source: Optional[Address] = None
    destination: Optional[Address] = None


def read_proxy_header(data: bytes) -> Optional[Tuple[ProxyHeader, int]]:
    """
    Read the PROXY protocol header at the start of C{data}, the bytes
    received so far on a connection.

    @return: L{None} when C{data} is a valid beginning of a header that is
        not all in yet; otherwise the header and how many bytes of C{data}
        it took (what follows is the connection's own data).
    @raise MalformedProxyHeader: C{data} does not start with a valid
        header, or a version 1 line runs past L{V1_MAX_LENGTH}.
    """
    if data.startswith(V1_SIGNATURE):
        return _read_v1(data)
    if data.startswith(V2_SIGNATURE):
        return _read_v2(data)
    if V1_SIGNATURE.startswith(data[:6]) or V2_SIGNATURE.startswith(data[:12]):
        return None
    raise MalformedProxyHeader("not a PROXY protocol header")


def _read_v1(data: bytes) -> Optional[Tuple[ProxyHeader, int]]:
    end = data.find(b"\r\n", 0, V1_MAX_LENGTH)
    if end < 0:
        if len(data) >= V1_MAX_LENGTH or b"\n" in data:
            raise MalformedProxyHeader("a version 1 line longer than 107 bytes")
        return None
    fields = data[len(V1_SIGNATURE) : end].split(b" ")
    if fields[0] == b"UNKNOWN":
        # Section 2.1: whatever follows UNKNOWN is ignored.
        return ProxyHeader(1), end + 2
    if len(fields) != 5 or fields[0] not in (b"TCP4", b"TCP6"):
        raise MalformedProxyHeader("a version 1 line of an unknown form")
    version = 4 if fields[0] == b"TCP4" else 6
    source = (_v1_address(fields[1], version), _v1_port(fields[3]))
    destination = (_v1_address(fields[2], version), _v1_port(fields[4]))
    return ProxyHeader(1, source, destination), end + 2


def _v1_address(field: bytes, version: int) -> str:
    try:
        text = field.decode("ascii")
        address = ipaddress.ip_address(text)
    except ValueError:
        raise MalformedProxyHeader("not an IP address in a version 1 line")
    if address.version != version or "%" in text:
        raise MalformedProxyHeader("an address of the wrong family in a version 1 line")
    return str(address)


def _v1_port(field: bytes) -> int:
    # Section 2.1: decimal, 0 to 65535, without leading zeroes.
    if (
        not field.isdigit()
        or len(field) > 5
        or (field[:1] == b"0" and field != b"0")
        or int(field) > 65535
    ):
        raise MalformedProxyHeader("not a port in a version 1 line")
    return int(field)


def _read_v2(data: bytes) -> Optional[Tuple[ProxyHeader, int]]:
    if len(data) < _V2_FIXED:
        return None
    command, family, length = struct.unpack_from("!BBH", data, len(V2_SIGNATURE))
    if command not in (_V2_LOCAL, _V2_PROXY):
        raise MalformedProxyHeader("a version 2 header of another version or command")
    end = _V2_FIXED + length
    if len(data) < end:
        return None
    if command == _V2_LOCAL or family in _V2_UNUSABLE:
        # Section 2.2: the receiver uses the connection's own addresses.
        return ProxyHeader(2), end
    if family not in _V2_ADDRESSES:
        raise MalformedProxyHeader("a version 2 header of a family a stream cannot carry")
    size, layout, version = _V2_ADDRESSES[family]
    if length < size:
        raise MalformedProxyHeader("a version 2 header too short for its addresses")
    source, destination, source_port, destination_port = struct.unpack_from(
        layout, data, _V2_FIXED
    )
    address = ipaddress.IPv4Address if version == 4 else ipaddress.IPv6Address
    return (
        ProxyHeader(
            2,
            (str(address(source)), source_port),
            (str(address(destination)), destination_port),
        ),
        end,
    )


def _same_family(source: Address, destination: Address) -> Tuple[IPAddress, IPAddress]:
    """
    Both addresses as one family: an IPv4 one is mapped into IPv6
    (C{::ffff:a.b.c.d}) when the other is IPv6, as HAProxy does.
    """
    first = ipaddress.ip_address(source[0])
    second = ipaddress.ip_address(destination[0])
    if first.version != second.version:
        first, second = (
            ipaddress.IPv6Address("::ffff:%s" % (one,)) if one.version == 4 else one
            for one in (first, second)
        )
    return first, second


def proxy_header_v1(
    source: Optional[Address], destination: Optional[Address]
) -> bytes:
    """
    A version 1 header naming C{source} and C{destination}; C{PROXY
    UNKNOWN} when either is L{None} (a connection with no client behind
    it, such as a health check's, or one over a Unix socket).
    """
    if source is None or destination is None:
        return b"PROXY UNKNOWN\r\n"
    first, second = _same_family(source, destination)
    return b"PROXY TCP%d %s %s %d %d\r\n" % (
        first.version,
        _v1_text(first),
        _v1_text(second),
        source[1],
        destination[1],
    )


def _v1_text(address: IPAddress) -> bytes:
    """
    An address as a version 1 line writes it: an IPv4 address mapped into
    IPv6 in its usual form, C{::ffff:192.0.2.1}, whatever the Python.
    """
    mapped = getattr(address, "ipv4_mapped", None)
    text = "::ffff:%s" % (mapped,) if mapped is not None else address.compressed
    return text.encode("ascii")


def proxy_header_v2(
    source: Optional[Address], destination: Optional[Address]
) -> bytes:
    """
    A version 2 header naming C{source} and C{destination}, without TLVs;
    the C{LOCAL} command with no addresses when either is L{None} (see
    L{proxy_header_v1}).
    """
    if source is None or destination is None:
        return V2_SIGNATURE + struct.pack("!BBH", _V2_LOCAL, 0, 0)
    first, second = _same_family(source, destination)
    family = _V2_TCP4 if first.version == 4 else _V2_TCP6
    size, layout, _ = _V2_ADDRESSES[family]
    return (
        V2_SIGNATURE
        + struct.pack("!BBH", _V2_PROXY, family, size)
        + struct.pack(layout, first.packed, second.packed, source[1], destination[1])
    )


#: The header makers, by the C{proxy_protocol} value of an upstream.
PROXY_HEADERS = {"v1": proxy_header_v1, "v2": proxy_header_v2}
