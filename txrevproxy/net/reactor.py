"""
The reactor the proxy runs on when nobody chose one: Twisted's epoll
reactor without the logging context it sets up around every socket event.

For each event, Twisted's reactors call the socket's handler through
C{twisted.python.log.callWithLogger}, which copies the legacy log context,
adds the connection's C{logPrefix()} as its C{system}, and pushes it on a
thread-local stack for the call.  Only messages sent through the legacy
C{twisted.python.log.msg} while handling that event ever read it; the
proxy logs through L{twisted.logger}, whose events do not.  A proxied
request is two socket events (the client's head, the backend's response),
and on PyPy the context cost 4 to 5 us of CPU per request, some 15% of the
proxy's own (user) time, measured with C{benchmarks/cpu_probe.py}.

L{ProxyEPollReactor} dispatches the events directly.  What
C{callWithLogger} also did, it still does: an exception that escapes a
handler is logged, and the loop goes on.  Installed only by the twistd
plugin and the worker processes, only when no reactor was chosen (with
C{twistd --reactor}) or installed before, and only where epoll exists.
"""

from __future__ import annotations

import errno
import sys

from twisted.logger import Logger

try:
    from twisted.internet.epollreactor import EPollReactor
except ImportError:  # No epoll on this platform: nothing here is used.
    EPollReactor = None
    TWISTED_PRIVATE = ()
else:
    TWISTED_PRIVATE = (
        "twisted.internet.epollreactor.EPollReactor._poller",
        "twisted.internet.epollreactor.EPollReactor._selectables",
        "twisted.internet.epollreactor.EPollReactor._doReadOrWrite",
    )


if EPollReactor is not None:

    class ProxyEPollReactor(EPollReactor):
        """
        An epoll reactor that calls socket event handlers without a
        legacy logging context (see the module docstring).
        """

        _log = Logger()

        def doPoll(self, timeout):
            if timeout is None:
                timeout = -1  # Wait until an event.
            try:
                events = self._poller.poll(timeout, len(self._selectables))
            except OSError as error:
                if error.errno == errno.EINTR:
                    return
                raise
            selectables = self._selectables
            handle = self._doReadOrWrite
            for fd, event in events:
                selectable = selectables.get(fd)
                if selectable is None:
                    continue
                try:
                    handle(selectable, fd, event)
                except KeyboardInterrupt:
                    raise
                except BaseException:
                    self._log.failure(
                        "unhandled error handling an event of {selectable}",
                        selectable=selectable,
                    )

        doIteration = doPoll


def install_unless_chosen() -> bool:
    """
    Install L{ProxyEPollReactor} as the global reactor, unless a reactor is
    installed already (chosen with C{twistd --reactor}, or imported) or
    this platform has no epoll.

    @return: whether it was installed.
    """
    if EPollReactor is None or "twisted.internet.reactor" in sys.modules:
        return False
    from twisted.internet.main import installReactor

    installReactor(ProxyEPollReactor())
    return True
