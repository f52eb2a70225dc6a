"""
The shared HTTP cache (RFC 9111): its rules as pure functions
(L{txrevproxy.cache.policy}), its stores (L{txrevproxy.cache.store}), and
the serving path of a route with a C{cache} (L{txrevproxy.cache.resource},
L{txrevproxy.cache.fetch}, L{txrevproxy.cache.exchange}).  See
C{docs/caching.rst}.
"""
