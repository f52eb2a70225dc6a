"""
Which process wrote a log line, with C{[server] workers = N}: the lines of
each worker (the error log's included) say C{worker N}, those of the
supervisor (the twistd process) C{supervisor}.  A single process's lines
are left as they are.

twistd's text format puts an event's C{log_system} between brackets, or,
when it has none, its namespace and level (C{[txrevproxy.errors#error]}).
The label goes in front of that: C{[worker 1 txrevproxy.errors#error]}.
The supervisor's observer of the lines is twistd's own, which the plugin
cannot wrap, so the label is put on each event by an observer that sees
it first: one added to the global publisher before twistd begins logging,
as the observers twistd adds come after it.
"""

from __future__ import annotations

from typing import Callable

from twisted.logger import LogPublisher, globalLogPublisher

Observer = Callable[[dict], None]


def system_label(event: dict, label: str) -> str:
    """
    The C{log_system} of C{event} once labelled with its process's
    C{label}: the label, then the system twistd would have shown.
    """
    system = event.get("log_system")
    if system is None:
        level = event.get("log_level")
        system = "%s#%s" % (
            event.get("log_namespace") or "-",
            "-" if level is None else level.name,
        )
    return "%s %s" % (label, system)


def label_log_events(label: str, publisher: LogPublisher = globalLogPublisher) -> Observer:
    """
    Label every event C{publisher} sees from now on with C{label} (see the
    module docstring), for the observers added to it after this call.

    @return: the observer added, which C{publisher.removeObserver} takes.
    """

    def labelled(event: dict) -> None:
        event["log_system"] = system_label(event, label)

    publisher.addObserver(labelled)
    return labelled
