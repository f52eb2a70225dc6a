"""
The C{[tls.NAME]} tables: the certificates of a TLS listener, chosen by
SNI, and its TLS policy and client authentication.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable
from urllib.parse import urlsplit

import attr

from ..tls.acme.answers import HTTP01
from ..tls.acme.manager import challenge_kind
from ..tls.policy import KNOWN_CURVES, PRESETS, below_floor, cipher_problem
from .model import ACME, TLS, Config, TLSCertificate
from .schema import (
    MODEL_DEFAULT,
    Field,
    Invalid,
    Problem,
    Table,
    array_of,
    expected,
    key_path,
)
from .values import (
    boolean,
    duration,
    file_path,
    header_name,
    http_url,
    one_of,
    server_name,
    server_names,
    tls_version,
)


def _responder_needs_fetching(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    C{ocsp_responder} implies C{ocsp_fetch}; both written, they must agree.
    """
    if arguments.get("ocsp_fetch") is False and "ocsp_responder" in arguments:
        yield (
            ".ocsp_responder",
            "is never asked since ocsp_fetch = false; remove one of the two",
        )


TLS_CERTIFICATE = Table(
    TLSCertificate,
    {
        "names": Field(server_names, default=MODEL_DEFAULT),
        "cert": Field(file_path),
        "key": Field(file_path),
        "ocsp": Field(file_path, default=MODEL_DEFAULT),
        "ocsp_fetch": Field(boolean, default=MODEL_DEFAULT),
        "ocsp_responder": Field(
            http_url("http://ocsp.example.test/"), default=MODEL_DEFAULT
        ),
    },
    checks=(_responder_needs_fetching,),
)


def _some_certificate(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if (
        not arguments.get("certificates")
        and "directory" not in arguments
        and "acme" not in arguments
    ):
        yield (
            "",
            'no certificate: give certificates = [{ cert = "...", key = "..." }], '
            'directory = "..." or acme = { email = "...", directory = "https://..." }',
        )


def _acme_names(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    An ACME certificate needs names: its own, or those the table's
    C{certificates} list.
    """
    acme = arguments.get("acme")
    if acme is None or acme.names:
        return
    if not any(spec.names for spec in arguments.get("certificates", ())):
        yield (
            ".acme.names",
            'required: the DNS names of the certificate to obtain, such as '
            'names = ["example.com", "www.example.com"] (or list names in '
            "certificates)",
        )


def _directory_url(value: Any) -> str:
    """
    An ACME directory: an https URL (RFC 8555 section 6.1).
    """
    if not isinstance(value, str):
        raise expected(
            'an https URL such as "https://acme-v02.api.letsencrypt.org/directory"', value
        )
    parts = urlsplit(value)
    if parts.scheme != "https" or not parts.hostname:
        raise Invalid(
            "%r is not an https URL; ACME directories are served over https "
            "(RFC 8555 section 6.1)" % (value,)
        )
    return value


def _email(value: Any) -> str:
    if not isinstance(value, str) or value.count("@") != 1 or " " in value:
        raise expected('an email address such as "admin@example.com"', value)
    return value


def _dns_names(value: Any):
    """
    ACME names: DNS names, no wildcard (a wildcard needs DNS-01, which is
    not offered here).
    """
    names = server_names(value)
    for name in names:
        if name.startswith("*."):
            raise Invalid(
                "%s: a wildcard needs the DNS-01 challenge, which is not "
                "supported; list each name" % (name,)
            )
    return names


ACME_TABLE = Table(
    ACME,
    {
        "email": Field(_email),
        "directory": Field(_directory_url),
        "names": Field(_dns_names, default=MODEL_DEFAULT),
        "storage": Field(file_path, default=MODEL_DEFAULT),
        "challenge": Field(one_of("http-01", "tls-alpn-01"), default=MODEL_DEFAULT),
        "ca_bundle": Field(file_path, default=MODEL_DEFAULT),
        "renew_before": Field(duration, default=MODEL_DEFAULT),
    },
)


def _tls(**arguments: Any) -> TLS:
    """
    The table, its ACME certificate taking the names of C{certificates}
    when it lists none of its own.
    """
    acme = arguments.get("acme")
    if acme is not None and not acme.names:
        names = [name for spec in arguments.get("certificates", ()) for name in spec.names]
        arguments["acme"] = attr.evolve(acme, names=tuple(dict.fromkeys(names)))
    return TLS(**arguments)


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


def _ciphers(value: Any) -> str:
    """
    An OpenSSL cipher string that selects at least one suite.
    """
    if not isinstance(value, str) or not value:
        raise expected('an OpenSSL cipher string such as "ECDHE+AESGCM"', value)
    problem = cipher_problem(value)
    if problem is not None:
        raise Invalid(problem)
    return value


def _curve(value: Any) -> str:
    if not isinstance(value, str):
        raise expected('a group name such as "X25519"', value)
    if value not in KNOWN_CURVES:
        raise Invalid(
            "unknown group %r; expected one of %s" % (value, ", ".join(sorted(KNOWN_CURVES)))
        )
    return value


def _version_within_preset(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    C{min_version} may raise the preset's lowest version, not lower it.
    """
    preset = arguments.get("preset", "intermediate")
    version = arguments.get("min_version")
    if version is not None and below_floor(preset, version):
        yield (
            ".min_version",
            'TLS %s is no longer safe and is not supported; use "%s" or higher, '
            'or preset = "old" for old clients' % (version, PRESETS[preset].floor),
        )


def _watch(value: Any):
    """
    C{watch}: a duration, or C{"off"} to read the files on reload only.
    """
    if value == "off":
        return None
    if not isinstance(value, str):
        raise expected('a duration such as "30s", or "off"', value)
    return duration(value)


TLS_TABLE = Table(
    _tls,
    {
        "certificates": Field(
            array_of(TLS_CERTIFICATE, what="an array of tables with cert and key"),
            default=MODEL_DEFAULT,
        ),
        "directory": Field(file_path, default=MODEL_DEFAULT),
        "default": Field(server_name, default=MODEL_DEFAULT),
        "min_version": Field(tls_version, default=MODEL_DEFAULT),
        "client_ca": Field(file_path, default=MODEL_DEFAULT),
        "client_auth": Field(one_of("require", "optional"), default="require"),
        "client_subject_header": Field(header_name, default=MODEL_DEFAULT),
        "preset": Field(one_of(*PRESETS), default="intermediate"),
        "ciphers": Field(_ciphers, default=MODEL_DEFAULT),
        "curves": Field(array_of(_curve, min_items=1), default=MODEL_DEFAULT),
        "watch": Field(_watch, default=MODEL_DEFAULT),
        "acme": Field(ACME_TABLE, default=MODEL_DEFAULT),
    },
    checks=(
        _some_certificate,
        _acme_names,
        _client_auth_needs_a_ca,
        _version_within_preset,
    ),
)


def acme_challenge_problems(config: Config) -> Iterable[Problem]:
    """
    The challenge of each C{acme} needs a listener to be answered on:
    HTTP-01 one without tls, TLS-ALPN-01 one of the table's own.
    """
    for block in config.tls.values():
        if block.acme is None:
            continue
        where = "tls" + key_path(block.name) + ".acme.challenge"
        listeners = config.listeners.values()
        if challenge_kind(config, block) == HTTP01:
            if not any(listener.tls is None for listener in listeners):
                yield (
                    where,
                    "http-01 is answered on a listener without tls (port 80 "
                    'for a public CA), and there is none; add one or use "tls-alpn-01"',
                )
        elif not any(listener.tls == block.name for listener in listeners):
            yield (
                where,
                "tls-alpn-01 is answered on the listeners of this table (port "
                '443 for a public CA), and none has tls = "%s"' % (block.name,),
            )
