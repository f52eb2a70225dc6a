"""
The private OpenSSL binding names of L{txrevproxy.tls.groups} and what it
does with them, on whichever pyOpenSSL is installed.
"""

from __future__ import annotations

from OpenSSL import SSL
from OpenSSL.SSL import _lib
from twisted.trial.unittest import TestCase

from txrevproxy.tls.groups import OPENSSL_PRIVATE, groups_settable, set_groups
from txrevproxy.tls.policy import DEFAULT_CURVES, KNOWN_CURVES


class GroupsTests(TestCase):
    def test_binding_names_exist_where_groups_are_settable(self):
        self.assertTrue(hasattr(_lib, "ERR_clear_error"))
        self.assertEqual(
            groups_settable(), all(hasattr(_lib, name) for name in OPENSSL_PRIVATE)
        )

    def test_known_groups_are_accepted(self):
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.assertEqual(set_groups(context, DEFAULT_CURVES), groups_settable())
        for name in sorted(KNOWN_CURVES):
            self.assertEqual(set_groups(context, [name]), groups_settable())

    def test_unknown_group_is_refused(self):
        if not groups_settable():
            raise self.skipTest("this pyOpenSSL cannot set groups")
        context = SSL.Context(SSL.TLS_SERVER_METHOD)
        self.assertRaises(ValueError, set_groups, context, ["X25519", "nonsense"])
        # The error queue is left clean for the next OpenSSL call.
        set_groups(context, DEFAULT_CURVES)
