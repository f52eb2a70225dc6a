"""
The C{[tls.NAME]} tables: the certificates of a TLS listener, chosen by
SNI, and its TLS policy and client authentication.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable

from .model import TLS, TLSCertificate
from .schema import MODEL_DEFAULT, Field, Problem, Table, array_of
from .values import (
    file_path,
    header_name,
    one_of,
    server_name,
    server_names,
    tls_version,
)

TLS_CERTIFICATE = Table(
    TLSCertificate,
    {
        "names": Field(server_names, default=MODEL_DEFAULT),
        "cert": Field(file_path),
        "key": Field(file_path),
    },
)


def _some_certificate(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if not arguments.get("certificates") and "directory" not in arguments:
        yield (
            "",
            'no certificate: give certificates = [{ cert = "...", key = "..." }] '
            'or directory = "..."',
        )


def _client_auth_needs_a_ca(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    The client certificate keys mean nothing without C{client_ca}.
    """
    if "client_ca" in arguments:
        return
    needless = [
        key
        for key in ("client_auth", "client_subject_header")
        if key in arguments and arguments[key] != "require"
    ]
    for key in needless:
        yield ("." + key, "needs client_ca, the CAs of the client certificates")


TLS_TABLE = Table(
    TLS,
    {
        "certificates": Field(
            array_of(TLS_CERTIFICATE, what="an array of tables with cert and key"),
            default=MODEL_DEFAULT,
        ),
        "directory": Field(file_path, default=MODEL_DEFAULT),
        "default": Field(server_name, default=MODEL_DEFAULT),
        "min_version": Field(tls_version, default="1.2"),
        "client_ca": Field(file_path, default=MODEL_DEFAULT),
        "client_auth": Field(one_of("require", "optional"), default="require"),
        "client_subject_header": Field(header_name, default=MODEL_DEFAULT),
    },
    checks=(_some_certificate, _client_auth_needs_a_ca),
)
