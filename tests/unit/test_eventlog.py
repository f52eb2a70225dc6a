"""
L{txrevproxy.observe.eventlog}: the event log as one flat JSON object a
line, where twistd would write its text lines, and the C{[log] events}
key that asks for it.
"""

from __future__ import annotations

import io
import json
import os
import sys
from types import SimpleNamespace

from twisted.application.service import Application
from twisted.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    globalLogPublisher,
)
from twisted.python.logfile import LogFile
from twisted.trial.unittest import TestCase

from txrevproxy.observe.accesslog import AccessLog
from txrevproxy.observe.eventlog import (
    iso_time,
    json_file_observer,
    json_line,
    twistd_json_observer,
    twistd_log_file,
)
from txrevproxy.observe.metrics import Metrics
from txrevproxy.observe.requests import RequestObserver

from ..support.configs import document, parse, problems
from ..support.processes import temporary_directory


def logged(emit, labels=None):
    """
    The objects of the lines C{emit(log)} writes through a L{Logger} of
    namespace C{test} observed by a L{json_file_observer}.
    """
    out = io.StringIO()
    emit(Logger(namespace="test", observer=json_file_observer(out, labels)))
    text = out.getvalue()
    assert text.endswith("\n") and text.isascii(), text
    return [json.loads(line) for line in text.splitlines()]


class JSONLineTests(TestCase):
    def test_a_line_has_time_level_namespace_message_and_fields(self):
        [line] = logged(lambda log: log.warn("backend {url} down", url="http://b:1", n=3))
        self.assertEqual(
            list(line), ["time", "level", "namespace", "message", "url", "n"]
        )
        self.assertEqual(
            [line["level"], line["namespace"], line["message"], line["url"], line["n"]],
            ["warn", "test", "backend http://b:1 down", "http://b:1", 3],
        )
        self.assertRegex(line["time"], r"\A\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z\Z")

    def test_time_is_iso_8601_utc_to_the_millisecond(self):
        self.assertEqual(iso_time(1795429230.1239), "2026-11-23T10:20:30.123Z")
        self.assertIsNone(iso_time(None))

    def test_one_object_per_line_however_many_lines_the_message_has(self):
        lines = logged(lambda log: [log.info("one\ntwo"), log.error("three")])
        self.assertEqual([line["message"] for line in lines], ["one\ntwo", "three"])

    def test_a_field_never_replaces_a_key_of_the_line(self):
        [line] = logged(
            lambda log: log.critical("{message}", message="cannot listen", namespace="x", time=1)
        )
        self.assertEqual(
            [line["message"], line["namespace"], line["time"] == 1],
            ["cannot listen", "test", False],
        )

    def test_labels_follow_the_message(self):
        [line] = logged(lambda log: log.info("started"), {"worker": 1})
        self.assertEqual(list(line)[4:], ["worker"])
        self.assertEqual(line["worker"], 1)

    def test_a_failure_gives_its_traceback_as_a_string(self):
        def emit(log):
            try:
                raise ValueError("bad value")
            except ValueError:
                log.failure("admin request failed")

        [line] = logged(emit)
        self.assertEqual([line["level"], line["message"]], ["critical", "admin request failed"])
        self.assertIn("Traceback", line["traceback"])
        self.assertIn("ValueError: bad value", line["traceback"])

    def test_text_beyond_ascii_is_escaped_and_reads_back(self):
        text = "caf\u00e9 \u2603 \U0001f600 \udcff"
        [line] = logged(lambda log: log.info("{name}", name=text))
        self.assertEqual([line["message"], line["name"]], [text, text])

    def test_values_json_cannot_hold_are_their_repr_and_bytes_their_text(self):
        class Thing:
            def __repr__(self):
                return "<thing>"

        class Broken:
            def __repr__(self):
                raise RuntimeError("no repr")

        circular: list = []
        circular.append(circular)
        [line] = logged(
            lambda log: log.info(
                "x",
                thing=Thing(),
                nested={"a": [Thing(), b"\xc3\xa9\xff"]},
                raw=b"GET /",
                keys={(1, 2): "tuple key"},
                nan=float("nan"),
                circular=circular,
                broken=Broken(),
            )
        )
        self.assertEqual(line["thing"], "<thing>")
        self.assertEqual(line["nested"], {"a": ["<thing>", "\u00e9\\xff"]})
        self.assertEqual(line["raw"], "GET /")
        self.assertEqual(line["keys"], "{(1, 2): 'tuple key'}")
        self.assertEqual(line["nan"], "nan")
        self.assertEqual(line["circular"], "[[...]]")
        self.assertIn("RuntimeError", line["broken"])

    def test_a_key_that_is_not_text_is_left_out(self):
        line = json.loads(json_line({"log_format": "x", 1: "one", "two": 2}))
        self.assertEqual(
            line, {"time": None, "level": None, "namespace": None, "message": "x", "two": 2}
        )

    def test_a_legacy_event_keeps_its_system_but_not_its_repeated_keys(self):
        line = json.loads(
            json_line(
                {
                    "message": ("Starting factory",),
                    "isError": 0,
                    "system": "HTTPChannel,0,127.0.0.1",
                    "time": 0.5,
                    "log_time": 0.5,
                    "log_text": "Starting factory",
                    "log_format": "{log_text}",
                    "log_system": "HTTPChannel,0,127.0.0.1",
                    "log_namespace": "log_legacy",
                    "log_level": LogLevel.info,
                }
            )
        )
        self.assertEqual(
            line,
            {
                "time": "1970-01-01T00:00:00.500Z",
                "level": "info",
                "namespace": "log_legacy",
                "message": "Starting factory",
                "system": "HTTPChannel,0,127.0.0.1",
            },
        )


class ErrorLogTests(TestCase):
    def test_an_error_log_line_carries_the_request_id_and_its_fields(self):
        """
        A request the proxy failed, seen by L{RequestObserver} as in a
        running proxy: its error log event is one JSON line with the
        request ID and the error log's fields.
        """
        out = io.StringIO()
        observer = json_file_observer(out)
        globalLogPublisher.addObserver(observer)
        self.addCleanup(globalLogPublisher.removeObserver, observer)
        route = SimpleNamespace(upstream="app", label="shop")
        router = SimpleNamespace(routes=[route])
        clock = SimpleNamespace(seconds=lambda: 2.0)
        request = SimpleNamespace(
            ended=2.0,
            started=1.5,
            route_index=0,
            router=router,
            code=502,
            bodyBytes=0,
            sentLength=45,
            upstream_time=None,
            timed_out=None,
            error_cause="refused",
            error_detail="Connection refused.",
            backend=SimpleNamespace(server=SimpleNamespace(host="127.0.0.1", port=9001)),
            request_id=b"0123456789abcdef",
            method=b"GET",
            uri=b"/products/1",
            trace=None,
            split_side=None,
        )
        RequestObserver("web", router, Metrics(), AccessLog(clock), clock)(request)
        [line] = [json.loads(text) for text in out.getvalue().splitlines()]
        self.assertEqual(
            line["message"],
            "502 (refused: Connection refused.): request_id=0123456789abcdef "
            "listener=web route=shop upstream=app backend=127.0.0.1:9001 GET /products/1",
        )
        self.assertEqual(
            {key: line[key] for key in (
                "level", "namespace", "request_id", "status", "cause", "detail",
                "listener", "route", "upstream", "backend", "method", "uri",
            )},
            {
                "level": "error",
                "namespace": "txrevproxy.errors",
                "request_id": "0123456789abcdef",
                "status": 502,
                "cause": "refused",
                "detail": "Connection refused.",
                "listener": "web",
                "route": "shop",
                "upstream": "app",
                "backend": "127.0.0.1:9001",
                "method": "GET",
                "uri": "/products/1",
            },
        )


class TwistdLogFileTests(TestCase):
    """
    The JSON lines go where twistd's text lines would have gone.
    """

    def test_foreground_logs_to_standard_output(self):
        self.assertIs(twistd_log_file({"nodaemon": True, "logfile": None}), sys.stdout)
        self.assertIs(twistd_log_file({"nodaemon": True, "logfile": "-"}), sys.stdout)

    def test_a_logfile_is_opened_as_twistd_opens_it(self):
        path = str(temporary_directory(self) / "twistd.log")
        for nodaemon in (True, False):
            out = twistd_log_file({"nodaemon": nodaemon, "logfile": path})
            self.addCleanup(out.close)
            self.assertIsInstance(out, LogFile)
            self.assertEqual(out.path, path)

    def test_a_daemon_without_logfile_logs_to_twistd_log(self):
        directory = str(temporary_directory(self))
        self.addCleanup(os.chdir, os.getcwd())
        os.chdir(directory)
        out = twistd_log_file({"nodaemon": False, "logfile": None})
        self.addCleanup(out.close)
        self.assertEqual(out.path, os.path.join(directory, "twistd.log"))

    def test_twistds_own_observer_stays_where_it_chooses(self):
        """
        C{--syslog}, an observer named with C{--logger}, and a daemon told
        to log to standard output (twistd refuses it in its own words).
        """
        for options in (
            {"nodaemon": True, "syslog": True},
            {"nodaemon": True, "logger": "some.observer"},
            {"nodaemon": False, "logfile": "-"},
        ):
            self.assertIsNone(twistd_log_file(options), options)
            self.assertIsNone(twistd_json_observer(options), options)

    def test_the_plugins_service_hands_twistd_the_observer(self):
        """
        twistd begins logging to the application's L{ILogObserver} once
        the plugin's service is added to it.
        """
        from twisted.plugins.txrevproxy_plugin import _TwistdService

        observer = twistd_json_observer({"nodaemon": True})
        application = Application("txrevproxy")
        _TwistdService(None, None, observer).setServiceParent(application)
        self.assertIs(application.getComponent(ILogObserver), observer)
        plain = Application("txrevproxy")
        _TwistdService(None, None).setServiceParent(plain)
        self.assertIsNone(plain.getComponent(ILogObserver, None))


class EventsKeyTests(TestCase):
    def test_events_follow_the_access_log_format_unless_set(self):
        cases = [
            ("", "text"),
            ('[log]\nformat = "combined"\n', "text"),
            ('[log]\nformat = "json"\n', "json"),
            ('[log]\nformat = "json"\nevents = "text"\n', "text"),
            ('[log]\nevents = "json"\n', "json"),
        ]
        for table, events in cases:
            self.assertEqual(parse(document(extra=table)).log.events, events, table)

    def test_an_unknown_events_value_names_its_key(self):
        self.assertEqual(
            problems(document(extra='[log]\nevents = "xml"\n')),
            ['log.events: unknown value "xml"; expected one of "text", "json"'],
        )
