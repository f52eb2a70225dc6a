"""
TLS: termination on the listeners and TLS to the backends.

The parts, each in its own module:

  - L{txrevproxy.tls.files}: reading and checking certificate and key
    files (used by validation and by the store);
  - L{txrevproxy.tls.store}: one OpenSSL context per certificate, the SNI
    lookup and the hot reload of certificates;
  - L{txrevproxy.tls.server}: the connection creator that wraps a
    listener's site;
  - L{txrevproxy.tls.client}: TLS to C{https://} backends;
  - L{txrevproxy.tls.devcerts}: the development CA of C{txrevproxy certs}.

This package's own module imports nothing, so that the configuration
loader can import L{txrevproxy.tls.files} without a cycle.
"""
