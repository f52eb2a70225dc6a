"""
Setting the key exchange groups (C{curves}) of a context: one of the two
uses of pyOpenSSL's private OpenSSL binding in txrevproxy (the other is
L{txrevproxy.net.openssl_io}).

pyOpenSSL has no public call for a list of groups (C{Context.set_tmp_ecdh}
takes one elliptic curve, and not X25519), so the list is set with
OpenSSL's C{SSL_CTX_set1_curves_list} through C{OpenSSL.SSL._lib}.  The
binding of pyOpenSSL 26 (cryptography 46 and later) has it; that of
pyOpenSSL 25.1, which PyPy 3.9 runs, does not, and there the contexts keep
OpenSSL's default groups (X25519 first there too) and L{groups_settable}
says so.  C{tests/unit/test_tls_groups.py} checks the names used here.
"""

from __future__ import annotations

from typing import Sequence

from OpenSSL import SSL
from OpenSSL.SSL import _lib

#: The private names of the binding used here, when the binding has them.
OPENSSL_PRIVATE = ("SSL_CTX_set1_curves_list", "ERR_clear_error")

_set1_curves_list = getattr(_lib, "SSL_CTX_set1_curves_list", None)


def groups_settable() -> bool:
    """
    Whether the installed pyOpenSSL can set a list of groups.
    """
    return _set1_curves_list is not None


def set_groups(context: SSL.Context, names: Sequence[str]) -> bool:
    """
    Offer the groups C{names} on C{context}, in that order of preference.

    @return: C{True} when set; C{False} when this pyOpenSSL cannot (the
        context keeps OpenSSL's defaults).
    @raise ValueError: OpenSSL refuses one of the names.
    """
    if _set1_curves_list is None:
        return False
    # The binding's private structure: the context's SSL_CTX pointer.
    if not _set1_curves_list(context._context, ":".join(names).encode("ascii")):
        _lib.ERR_clear_error()
        raise ValueError("OpenSSL knows no group among %s" % (", ".join(names),))
    return True
