"""
Who the client is, for filters that decide by address.
"""

from __future__ import annotations

import ipaddress


def client_address(request) -> str:
    """
    The client's address: the connection's peer, unless the peer is one of
    C{[server] trusted_proxies}; then the right-most address of
    X-Forwarded-For that is not a trusted proxy (entries to its left could
    have been written by anyone), or the left-most when all are trusted.

    Worked out once per request, and kept in the request's
    C{client_address} (see L{txrevproxy.server.request.ProxyRequest}).
    """
    known = getattr(request, "client_address", None)
    if known is not None:
        return known
    connection = request.connection
    address = connection.client_ip.decode("ascii")
    if connection.trusted:
        forwarded = request.requestHeaders.getRawHeaders(b"x-forwarded-for")
        if forwarded:
            hops = [
                hop.strip().decode("latin-1")
                for value in forwarded
                for hop in value.split(b",")
                if hop.strip()
            ]
            site = request.site
            for hop in reversed(hops):
                address = hop
                if not _is_address(hop) or not site.is_trusted(hop):
                    break
    request.client_address = address
    return address


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
