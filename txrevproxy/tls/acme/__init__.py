"""
Certificates from an ACME (RFC 8555) CA: C{[tls.NAME] acme = {...}}.

L{storage} keeps the account key, the certificates and the pending
challenges in one directory; L{certificates} makes the keys, requests and
self-signed certificates; L{schedule} decides when to renew and how long
to back off; L{client} speaks RFC 8555 over treq; L{answers} answers the
HTTP-01 and TLS-ALPN-01 challenges from the storage; L{manager} is the
service that orders and renews.

The protocol objects and their JWS are those of the C{acme} library
(certbot's), driven here over treq so that nothing blocks the reactor:
its own client is synchronous (C{requests}).
"""
