"""
A Redis client of our own on Twisted: the RESP2 protocol (pipelined, one
L{Deferred} per command) and a small pool with a circuit breaker, for the
state that the processes and instances of a proxy share (see
C{docs/scaling.rst}).
"""
