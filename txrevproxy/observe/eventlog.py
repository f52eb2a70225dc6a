"""
The event log as JSON lines: with C{[log] events = "json"} (which
C{format = "json"} implies), everything the proxy and Twisted log through
C{twisted.logger} is written as one flat JSON object a line, for log
shippers, instead of twistd's text lines::

    {"time":"2026-11-23T10:20:30.123Z","level":"error",
     "namespace":"txrevproxy.errors","message":"502 (refused: ...): ...",
     "status":502,"cause":"refused","request_id":"0123456789abcdef",...}

Twisted's own JSON format (C{jsonFileLogObserver}) is a serialisation of
the event, made to be read back by Twisted: its text is a C{log_format}
with the fields apart, and its lines are record-separated.  These lines
are for people and tools that read them as they are: the message
formatted, the fields beside it under their own names.

twistd makes its log observer itself, from C{--logfile}, once the
plugin's C{makeService} has run; it takes instead the observer an
application has as its C{ILogObserver} component, which is how the plugin
hands it this one (see L{twistd_json_observer}).  A worker process begins
its own log (see L{txrevproxy.app.worker}).
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any, Dict, Mapping, Optional

from twisted.logger import FileLogObserver, LogEvent, formatEvent
from twisted.python.logfile import LogFile
from twisted.python.reflect import safe_repr

#: The keys an event of C{twisted.python.log} (or one adapted for its
#: observers) carries besides the C{log_} ones, which repeat what the
#: line already says.
_LEGACY_KEYS = frozenset(
    ["message", "time", "system", "isError", "why", "failure", "printed", "format", "logLevel"]
)

#: The key of a failure's traceback.
TRACEBACK = "traceback"


def iso_time(seconds: Optional[float]) -> Optional[str]:
    """
    C{2026-11-23T10:20:30.123Z}: an event's time in UTC, to the
    millisecond, since several lines often share a second.
    """
    if seconds is None:
        return None
    whole = int(seconds)
    return "%s.%03dZ" % (
        time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)),
        int((seconds - whole) * 1000),
    )


def _plain(value: Any) -> str:
    """
    What a field JSON cannot hold becomes: bytes their text, anything
    else its C{repr}.
    """
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    return safe_repr(value)


def _encode(value: Any) -> str:
    """
    A field's value as JSON; one that cannot be (a circular structure, a
    mapping with keys that are not text, a float that is not a number)
    as its C{repr}.
    """
    try:
        return json.dumps(value, default=_plain, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return json.dumps(safe_repr(value))


def json_line(event: LogEvent, labels: Optional[Mapping[str, Any]] = None) -> str:
    """
    One event as one line of JSON: C{time}, C{level} (Twisted's names:
    C{debug}, C{info}, C{warn}, C{error}, C{critical}), C{namespace}, the
    C{message} formatted, then C{labels}, the legacy C{system} when there
    is one, the event's fields by name, and the C{traceback} of its
    failure, if any.

    A field never replaces one of the keys before it; the C{log_} keys of
    Twisted, and those a legacy event repeats, are left out.  The line is
    ASCII (other characters are escaped), so that it is written whole
    whatever the encoding of the file.

    @param labels: keys every line of this process carries (C{worker}).
    """
    level = event.get("log_level")
    document: Dict[str, Any] = {
        "time": iso_time(event.get("log_time")),
        "level": None if level is None else level.name,
        "namespace": event.get("log_namespace"),
        "message": formatEvent(event),
    }
    document.update(labels or {})
    system = event.get("log_system")
    if system is not None and system != "-":
        document["system"] = system
    legacy = "isError" in event
    for key, value in event.items():
        if (
            not isinstance(key, str)
            or key.startswith("log_")
            or key in document
            or key == TRACEBACK
            or (legacy and key in _LEGACY_KEYS)
        ):
            continue
        document[key] = value
    failure = event.get("log_failure")
    if failure is not None:
        document[TRACEBACK] = failure.getTraceback()
    return "{%s}\n" % (
        ",".join("%s:%s" % (json.dumps(key), _encode(value)) for key, value in document.items()),
    )


def json_file_observer(
    out_file: IO[str], labels: Optional[Mapping[str, Any]] = None
) -> FileLogObserver:
    """
    An observer writing each event to C{out_file} as a L{json_line}.
    """
    return FileLogObserver(out_file, lambda event: json_line(event, labels))


def twistd_log_file(options: Mapping[str, Any]) -> Optional[IO[Any]]:
    """
    The file twistd's own log would go to with these command line
    options, opened as twistd opens it: standard output in the foreground
    without C{--logfile} (or with C{--logfile -}), otherwise the file
    named (C{twistd.log} by default), rotated by size as twistd's is.

    @return: L{None} where twistd's own observer stays: C{--syslog},
        C{--logger} (the operator chose an observer), and a daemon told to
        log to standard output, which twistd refuses with its message.
    """
    if options.get("syslog") or options.get("logger"):
        return None
    name = options.get("logfile") or ""
    foreground = options.get("nodaemon")
    if name in ("", "-") and foreground:
        return sys.stdout
    if name == "-":
        return None
    return LogFile.fromFullPath(name or "twistd.log")


def twistd_json_observer(
    options: Mapping[str, Any], labels: Optional[Mapping[str, Any]] = None
) -> Optional[FileLogObserver]:
    """
    The observer of JSON lines twistd should log with instead of its text
    one, writing where twistd would (L{twistd_log_file}); L{None} where
    twistd's own stays.

    @param options: twistd's options (the plugin's C{options.parent}).
    """
    out_file = twistd_log_file(options)
    return None if out_file is None else json_file_observer(out_file, labels)
