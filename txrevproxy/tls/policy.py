"""
The TLS policy of a C{[tls.NAME]} table: its C{preset} (Mozilla's
server-side TLS profiles), C{min_version}, C{ciphers} and C{curves},
turned into what is set on each of its OpenSSL contexts.

The presets follow Mozilla's Server Side TLS guidelines, version 5.7
(U{https://wiki.mozilla.org/Security/Server_Side_TLS}), with one change:
the DHE suites are left out, because no DH parameters are configured and
OpenSSL could never choose them.  TLS 1.3 suites are OpenSSL's defaults
(C{TLS_AES_128_GCM_SHA256}, C{TLS_AES_256_GCM_SHA384},
C{TLS_CHACHA20_POLY1305_SHA256}), which are the three every profile lists.
"""

from __future__ import annotations

from typing import Optional, Tuple

import attr
from OpenSSL import SSL

from .groups import set_groups

#: Mozilla's "intermediate" TLS 1.2 suites, ECDHE only.
INTERMEDIATE_CIPHERS = ":".join(
    [
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    ]
)

#: Mozilla's "old" TLS 1.0-1.2 suites, without DHE.  C{@SECLEVEL=0}:
#: OpenSSL 3 refuses TLS 1.0 and 1.1 (their SHA-1 handshake signatures)
#: and 3DES at its default security level 1, so the "old" clients this
#: preset exists for could not connect without it.
OLD_CIPHERS = ":".join(
    [
        INTERMEDIATE_CIPHERS,
        "ECDHE-ECDSA-AES128-SHA256",
        "ECDHE-RSA-AES128-SHA256",
        "ECDHE-ECDSA-AES128-SHA",
        "ECDHE-RSA-AES128-SHA",
        "ECDHE-ECDSA-AES256-SHA384",
        "ECDHE-RSA-AES256-SHA384",
        "ECDHE-ECDSA-AES256-SHA",
        "ECDHE-RSA-AES256-SHA",
        "AES128-GCM-SHA256",
        "AES256-GCM-SHA384",
        "AES128-SHA256",
        "AES256-SHA256",
        "AES128-SHA",
        "AES256-SHA",
        "DES-CBC3-SHA",
        "@SECLEVEL=0",
    ]
)

#: The key exchange groups of every Mozilla profile, X25519 first.
DEFAULT_CURVES = ("X25519", "prime256v1", "secp384r1")

#: The group names C{curves} accepts (OpenSSL's names, and the NIST
#: aliases OpenSSL also takes).
KNOWN_CURVES = frozenset(
    DEFAULT_CURVES
    + ("X448", "secp521r1", "P-256", "P-384", "P-521", "secp256r1")
    + ("ffdhe2048", "ffdhe3072", "ffdhe4096", "ffdhe6144", "ffdhe8192")
)

#: The values of C{min_version} and the protocol versions they mean.
VERSIONS = {
    "1.0": SSL.TLS1_VERSION,
    "1.1": SSL.TLS1_1_VERSION,
    "1.2": SSL.TLS1_2_VERSION,
    "1.3": SSL.TLS1_3_VERSION,
}


@attr.s(frozen=True, auto_attribs=True)
class Preset:
    """
    One of Mozilla's profiles.

    @ivar floor: the lowest TLS version it accepts, and C{min_version}'s
        default; C{min_version} may raise it, not lower it.
    @ivar ciphers: its TLS 1.2 and older suites (an OpenSSL cipher string).
    @ivar server_order: choose the suite in the server's order rather
        than the client's (Mozilla: only for "old", where weak suites are
        listed).
    """

    floor: str
    ciphers: str
    server_order: bool = False


PRESETS = {
    "intermediate": Preset("1.2", INTERMEDIATE_CIPHERS),
    # TLS 1.3 only: its cipher list is never used.
    "modern": Preset("1.3", INTERMEDIATE_CIPHERS),
    "old": Preset("1.0", OLD_CIPHERS, server_order=True),
}


@attr.s(frozen=True, auto_attribs=True)
class Policy:
    """
    What is set on each context of a table.
    """

    min_version: int
    ciphers: bytes
    curves: Tuple[str, ...]
    server_order: bool


def policy_for(block) -> Policy:
    """
    The policy of a L{txrevproxy.config.model.TLS} table: its preset's,
    with its own C{min_version}, C{ciphers} and C{curves} where it has
    them.
    """
    preset = PRESETS[block.preset]
    version = block.min_version if block.min_version is not None else preset.floor
    ciphers = block.ciphers if block.ciphers is not None else preset.ciphers
    return Policy(
        VERSIONS[version], ciphers.encode("ascii"), block.curves, preset.server_order
    )


def below_floor(preset: str, min_version: str) -> bool:
    """
    Whether C{min_version} would lower C{preset}'s floor.
    """
    return float(min_version) < float(PRESETS[preset].floor)


def cipher_problem(ciphers: str) -> Optional[str]:
    """
    Why OpenSSL refuses a cipher string, or L{None} when it takes it: the
    string is set on a throw-away context, as the listener's would be.
    """
    try:
        SSL.Context(SSL.TLS_SERVER_METHOD).set_cipher_list(ciphers.encode("ascii"))
    except (SSL.Error, UnicodeEncodeError):
        return "OpenSSL selects no cipher suite from %r" % (ciphers,)
    return None


def apply(context: SSL.Context, policy: Policy) -> None:
    """
    Set the versions and groups of C{policy} on C{context}.  The cipher
    list is set by L{apply_ciphers}, last.
    """
    context.set_min_proto_version(policy.min_version)
    options = SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_SINGLE_ECDH_USE
    if policy.server_order:
        options |= SSL.OP_CIPHER_SERVER_PREFERENCE
    context.set_options(options)
    set_groups(context, policy.curves)


def apply_ciphers(context: SSL.Context, policy: Policy) -> None:
    """
    Set the TLS 1.2-and-older suites: last of all the settings, because
    pyOpenSSL 25 checks a cipher list with a throw-away Connection, which
    marks the context as in use.
    """
    context.set_cipher_list(policy.ciphers)
