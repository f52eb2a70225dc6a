"""
Claims of an accepted token passed to the backend as request header
fields (C{claims_to_headers = { sub = "X-User" }}).

The client's own fields of those names (and of the spellings a backend
could read as them: C{X_User}, or C{X-User} named in C{Connection}) are
always removed first, whether or not the token has the claim, so a
backend that trusts C{X-User} can only ever see what the identity
provider said.
"""

from __future__ import annotations

import json
from typing import Any, Mapping, Optional, Tuple

from ..config.schema import Invalid, converted_pairs, expected
from ..config.values import header_name
from ..http.headers import HOP_BY_HOP, SET_BY_PROXY, remove_client_copies

#: Fields the proxy writes itself or never forwards: a claim named to one
#: would never reach the backend.
_NOT_SETTABLE = HOP_BY_HOP | SET_BY_PROXY


def _claim_name(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise expected("a claim name", value)
    return value


def claims_to_headers(value: Any) -> Tuple[Tuple[str, str], ...]:
    """
    The converter of a C{claims_to_headers} table: claim name to header
    name.
    """
    if not isinstance(value, dict):
        raise expected('a table such as { sub = "X-User" }', value)
    return tuple(converted_pairs(value, _claim_name, _claim_header))


def _claim_header(value: Any) -> str:
    """
    The name of a field a claim is sent in: one the proxy neither writes
    itself (framing, C{Host}, C{X-Forwarded-*} ...) nor drops (hop-by-hop).
    """
    name = header_name(value)
    if name.lower().encode("ascii") in _NOT_SETTABLE:
        raise Invalid(
            "%s is a field the proxy writes itself or never forwards; "
            "name another, such as X-User" % (name,)
        )
    return name


def header_value(value: Any) -> Optional[bytes]:
    """
    A claim's value as a header field value: a string as it is, a number,
    C{true}/C{false}, an array's items joined with C{", "}, an object as
    JSON; control characters removed, so no claim can end a field.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (int, float)):
        text = json.dumps(value)
    elif isinstance(value, list):
        text = ", ".join(
            item if isinstance(item, str) else json.dumps(item) for item in value
        )
    else:
        text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return "".join(c for c in text if c >= " " and c != "\x7f").encode("utf-8")


class ClaimHeaders:
    """
    The header fields a filter sets from claims.
    """

    def __init__(self, mapping: Tuple[Tuple[str, str], ...]) -> None:
        self.claims = tuple(claim for claim, _ in mapping)
        self._mapping = tuple(
            (claim, name.lower().encode("ascii")) for claim, name in mapping
        )

    def remove(self, request) -> None:
        """
        Remove the client's own fields of the mapped names, under every
        spelling a backend could read as them (see
        L{remove_client_copies}).
        """
        for _, name in self._mapping:
            remove_client_copies(request.requestHeaders, name)

    def apply(self, request, claims: Mapping[str, Any]) -> None:
        """
        Replace the mapped fields with the values of C{claims}.
        """
        self.remove(request)
        for claim, name in self._mapping:
            value = header_value(claims.get(claim))
            if value is not None:
                request.requestHeaders.setRawHeaders(name, [value])
