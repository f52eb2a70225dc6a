"""
The extension points of txrevproxy, as C{zope.interface} interfaces.

Built-in implementations are registered through C{twisted.plugin} exactly
as a third party's are (see C{twisted/plugins/txrevproxy_balancing.py} and
C{docs/balancing.rst}), and named in the configuration file.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface


class IBalancingPolicy(Interface):
    """
    A way of choosing a backend, named by an upstream's C{balance} key.

    Provide it together with L{twisted.plugin.IPlugin} on an object in a
    module of the C{twisted.plugins} package, and the configuration accepts
    its L{name}.  Keep that module small: C{twistd} imports every plugin
    module, so heavy imports belong inside L{picker}.
    """

    name = Attribute(
        "The name an upstream's balance key uses, such as 'round_robin' "
        "(letters, digits and _)."
    )

    def picker(upstream, backends, clock, random):
        """
        Make the picker of one upstream; called once per upstream each time
        a configuration is loaded, so its state (a rotation, a hash ring)
        lives as long as that configuration.

        @param upstream: the upstream's configuration
            (L{txrevproxy.config.model.Upstream}), for keys such as
            C{hash_key}.
        @param backends: every backend of the upstream
            (L{txrevproxy.balancer.Backend}), in configuration order.
        @param clock: an L{IReactorTime}, for time-aware policies.
        @param random: a L{random.Random}, the only source of randomness a
            policy should use, so that tests can fix it.
        @return: an L{IBackendPicker}.
        """


class IBackendPicker(Interface):
    """
    The per-upstream state of a L{IBalancingPolicy}.
    """

    def pick(request, candidates):
        """
        Choose the backend for one request.  Called on the hot path: do no
        I/O and keep it cheap.

        @param request: the L{twisted.web.server.Request} to be sent.
        @param candidates: a non-empty sequence of the backends that may
            take it now (healthy, not ejected, not draining, below their
            C{max_connections}, not already tried by this request), in
            configuration order.  The same sequence object is passed again
            as long as the set does not change, so a picker may cache what
            it derives from it by identity.
        @return: one of C{candidates}.
        """
