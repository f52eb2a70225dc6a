"""
Every use of Twisted's private API, in one place.

The proxy's hot path and its client side lean on names Twisted does not
promise to keep: private modules (C{twisted.web._http2}), underscored
attributes of its connections, channels and requests, its reactor's event
dispatch.  They are used only in the modules of this package, each of
which lists the names it relies on in C{TWISTED_PRIVATE}: a tuple of
dotted paths, such as C{"twisted.web.http._MalformedChunkedDataError"} (a
module attribute) or C{"twisted.web.http.HTTPChannel._transferDecoder"}
(an attribute of a class or of its instances).  Where Twisted versions
differ, an entry is a tuple of such paths instead, the alternatives a
module handles, of which at least one must exist: for instance
C{("twisted.protocols.tls.TLSMemoryBIOFactory._applyProtocolNegotiation",
"twisted.protocols.tls.TLSMemoryBIOFactory._creatorCallable")}, the step
Twisted 25.5 takes and the one Twisted 26 takes in its place.
tests/unit/test_net_private.py checks that each still exists in the Twisted
that is installed, so an upgrade that removes one fails a named test
instead of the proxy, and that no module outside this package uses a
private Twisted name.

The other packages call the functions and classes here, and never touch
a private Twisted name themselves.
"""
