"""
L{txrevproxy.observe.process_label}: the label of the process that wrote a
log line, in front of what twistd's text format shows between brackets.
"""

from __future__ import annotations

from twisted.logger import LogLevel, LogPublisher, formatEventAsClassicLogText
from twisted.trial.unittest import TestCase

from txrevproxy.observe.process_label import label_log_events, system_label


class ProcessLabelTests(TestCase):
    def test_label_goes_before_namespace_and_level(self):
        event = {"log_namespace": "txrevproxy.errors", "log_level": LogLevel.error}
        self.assertEqual(system_label(event, "worker 1"), "worker 1 txrevproxy.errors#error")

    def test_label_goes_before_a_legacy_system(self):
        self.assertEqual(system_label({"log_system": "-"}, "supervisor"), "supervisor -")

    def test_observers_added_after_see_labelled_lines(self):
        publisher = LogPublisher()
        label_log_events("worker 0", publisher)
        lines = []
        publisher.addObserver(lambda event: lines.append(formatEventAsClassicLogText(event)))
        publisher(
            {
                "log_format": "502 ({cause})",
                "cause": "refused",
                "log_namespace": "txrevproxy.errors",
                "log_level": LogLevel.error,
                "log_time": 0.0,
            }
        )
        [line] = lines
        self.assertIn(" [worker 0 txrevproxy.errors#error] 502 (refused)\n", line)
