"""
Request framing (RFC 9112 section 6): Content-Length values, field names
with C{_}, and bodies on methods that define none, read by the channel and
set by C{[server] body_without_semantics} and C{underscores_in_headers}.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from txrevproxy.config import ConfigError
from txrevproxy.config.model import ServerSettings
from txrevproxy.http.request_head import (
    MAX_CONTENT_LENGTH,
    UNDERSCORED,
    content_length,
    field_line_status,
)

from ..support.channels import connect
from ..support.configs import document, parse


def status(transport) -> int:
    return int(transport.value().split(b" ", 2)[1])


class ContentLengthTests(TestCase):
    def test_table(self):
        for value, length in [
            (b"0", 0),
            (b"5", 5),
            (b"0005", 5),
            (b"9223372036854775807", MAX_CONTENT_LENGTH),
            (b"0" * 30 + b"1", 1),
            (b"9223372036854775808", None),
            (b"18446744073709551621", None),
            (b"9" * 5000, None),
            (b"", None),
            (b"-1", None),
            (b"+1", None),
            (b"0x5", None),
            (b"5, 5", None),
            (b"5,6", None),
            (b"1 2", None),
            (b"\xd9\xa5", None),
        ]:
            self.assertEqual(content_length(value), length, value)

    def test_field_lines(self):
        self.assertEqual(field_line_status(b"Content-Length: 12", b"HTTP/1.1"), 0)
        self.assertEqual(field_line_status(b"content-length:12 ", b"HTTP/1.0"), 0)
        self.assertEqual(
            field_line_status(b"Content-Length: 99999999999999999999", b"HTTP/1.1"), 400
        )
        self.assertEqual(field_line_status(b"Content-Length: 1, 1", b"HTTP/1.1"), 400)


class UnderscoreTests(TestCase):
    def test_lookalikes_of_framing_and_hop_by_hop_fields_are_refused(self):
        for line in [
            b"Content_Length: 5",
            b"content_length: 5",
            b"Transfer_Encoding: chunked",
            b"Keep_Alive: 5",
            b"Proxy_Connection: close",
            b"X_Forwarded_For: 10.0.0.1",
            b"X-Forwarded_Proto: https",
            b"x_request_id: 1",
        ]:
            self.assertEqual(field_line_status(line, b"HTTP/1.1"), 400, line)

    def test_other_underscore_names_are_flagged(self):
        for line in [b"X_Custom: 1", b"_: 1", b"Content__Length: 5", b"Con_nection: x"]:
            self.assertEqual(field_line_status(line, b"HTTP/1.1"), UNDERSCORED, line)

    def test_an_underscore_in_the_value_only_is_nothing(self):
        self.assertEqual(field_line_status(b"X-A: content_length", b"HTTP/1.1"), 0)
        self.assertEqual(field_line_status(b"Cookie: a_b=c_d", b"HTTP/1.1"), 0)

    def test_forwarded_by_default(self):
        _, site, channel, _ = connect(ServerSettings())
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nX_Custom: 1\r\n\r\n")
        headers = site.resource.requests[0].requestHeaders
        self.assertEqual(headers.getRawHeaders(b"x_custom"), [b"1"])

    def test_dropped(self):
        _, site, channel, _ = connect(ServerSettings(underscores_in_headers="drop"))
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nX_Custom: 1\r\nX-B: 2\r\n\r\n")
        headers = site.resource.requests[0].requestHeaders
        self.assertFalse(headers.hasHeader(b"x_custom"))
        self.assertEqual(headers.getRawHeaders(b"x-b"), [b"2"])

    def test_refused_even_when_dropping(self):
        _, site, channel, transport = connect(ServerSettings(underscores_in_headers="drop"))
        channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\nContent_Length: 5\r\n\r\n")
        self.assertEqual(status(transport), 400)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(site.resource.requests, [])


class BodyWithoutSemanticsTests(TestCase):
    def test_forwarded_and_the_connection_closes(self):
        for method in [b"GET", b"HEAD", b"OPTIONS", b"DELETE"]:
            _, site, channel, _ = connect(ServerSettings())
            channel.dataReceived(
                method + b" / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab"
            )
            self.assertEqual(len(site.resource.requests), 1, method)
            self.assertFalse(channel.persistent, method)

    def test_chunked_counts_as_a_body(self):
        _, site, channel, _ = connect(ServerSettings())
        channel.dataReceived(
            b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"
        )
        self.assertEqual(len(site.resource.requests), 1)
        self.assertFalse(channel.persistent)

    def test_no_body_keeps_the_connection(self):
        for head in [
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
        ]:
            _, site, channel, _ = connect(ServerSettings())
            channel.dataReceived(head)
            self.assertTrue(channel.persistent, head)

    def test_other_methods_keep_the_connection(self):
        _, site, channel, _ = connect(ServerSettings())
        channel.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab")
        self.assertEqual(len(site.resource.requests), 1)
        self.assertTrue(channel.persistent)

    def test_refused(self):
        _, site, channel, transport = connect(
            ServerSettings(body_without_semantics="refuse")
        )
        channel.dataReceived(b"DELETE / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab")
        self.assertEqual(status(transport), 400)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(site.resource.requests, [])

    def test_trace_with_a_body_is_always_refused(self):
        _, site, channel, transport = connect(ServerSettings())
        channel.dataReceived(b"TRACE / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nab")
        self.assertEqual(status(transport), 400)
        self.assertEqual(site.resource.requests, [])


class ConfigTests(TestCase):
    def test_defaults(self):
        server = parse(document()).server
        self.assertEqual(
            (server.body_without_semantics, server.underscores_in_headers),
            ("forward_and_close", "forward"),
        )

    def test_keys(self):
        server = parse(
            document(
                server='body_without_semantics = "refuse"\nunderscores_in_headers = "drop"'
            )
        ).server
        self.assertEqual(
            (server.body_without_semantics, server.underscores_in_headers),
            ("refuse", "drop"),
        )

    def test_problems(self):
        with self.assertRaises(ConfigError) as caught:
            parse(
                document(
                    server='body_without_semantics = "close"\nunderscores_in_headers = "off"'
                )
            )
        problems = "\n".join(caught.exception.problems)
        self.assertIn("server.body_without_semantics", problems)
        self.assertIn("server.underscores_in_headers", problems)
