"""
The C{compress} filter: its choices through the L{IFilter} API, its
streaming transforms, its options, and round trips over loopback decoded
by Python's gzip and brotli, zstandard (where it installs) and curl.
"""

from __future__ import annotations

import gzip
import os
import shutil
import zlib

import brotli
import pytest
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.utils import getProcessOutputAndValue
from twisted.plugin import IPlugin
from twisted.trial.unittest import TestCase
from twisted.web import resource, server
from twisted.web.test.requesthelper import DummyRequest
from zope.interface.verify import verifyObject

from txrevproxy.app.service import ProxyService
from txrevproxy.config.schema import Invalid
from txrevproxy.filters import FilterContext
from txrevproxy.filters import compress as compress_module
from txrevproxy.filters.compress import (
    AVAILABLE,
    CompressFilter,
    CompressSettings,
    accepted_encodings,
    choose_encoding,
)
from txrevproxy.interfaces import IBodyTransform, IFilter, IFilterType

from ..support.commands import run
from ..support.loopback import listen, raw_exchange
from ..support.origins import parse_response
from ..support.processes import proxy_modules_imported_by

try:
    import zstandard
except ImportError:
    zstandard = None

#: Why the zstd tests cannot run here: the tests decode with zstandard,
#: which installs on CPython only (the filter itself may use Python
#: 3.14's compression.zstd).
NO_ZSTD = "zstd needs zstandard, which has no wheel for PyPy"
needs_zstd = pytest.mark.skipif(
    zstandard is None or "zstd" not in AVAILABLE, reason=NO_ZSTD
)

#: The order an operator who prefers zstd configures.
ZSTD_FIRST = CompressSettings(encodings=("zstd", "br", "gzip"))

TEXT = b"All work and no play makes Jack a dull boy.\n" * 200


def request_accepting(value=None):
    request = DummyRequest([b""])
    if value is not None:
        request.requestHeaders.setRawHeaders(b"accept-encoding", [value])
    return request


def respond(value, headers, status=200, settings=CompressSettings()):
    headers = list(headers)
    transform = CompressFilter(settings).response(request_accepting(value), status, headers)
    return transform, headers


HTML = [(b"Content-Type", b"text/html; charset=utf-8"), (b"Content-Length", b"8800")]


@pytest.mark.parametrize(
    "value, chosen",
    [
        (b"gzip", "gzip"),
        (b"gzip, br", "br"),
        (b"br;q=0.5, gzip", "gzip"),
        (b"br;q=0, gzip;q=0", None),
        (b"*", "br"),
        (b"*;q=0.1, gzip;q=0.5", "gzip"),
        (b"identity", None),
        (b"deflate, compress", None),
        (b"GZIP;Q=1.0", "gzip"),
        (b"gzip;q=bogus, br;q=0.2", "br"),
    ],
)
def test_choose_encoding(value, chosen):
    assert choose_encoding(accepted_encodings([value]), ("br", "gzip")) == chosen


def test_server_order_breaks_ties():
    assert choose_encoding(accepted_encodings([b"br, gzip"]), ("gzip", "br")) == "gzip"


@pytest.mark.parametrize(
    "value, chosen",
    [
        (b"gzip, deflate, br, zstd", "zstd"),  # what browsers send
        (b"zstd;q=0.5, br", "br"),  # the client's q-values come first
        (b"zstd;q=0, *", "br"),
        (b"gzip, br", "br"),  # a client without zstd
        (b"*", "zstd"),
    ],
)
def test_zstd_in_the_configured_order(value, chosen):
    assert choose_encoding(accepted_encodings([value]), ("zstd", "br", "gzip")) == chosen


def test_zstd_is_not_offered_by_default():
    transform, headers = respond(b"zstd, gzip", HTML)
    assert (b"Content-Encoding", b"gzip") in headers


def test_zstd_is_left_out_where_python_cannot_make_it(monkeypatch):
    monkeypatch.setattr(compress_module, "AVAILABLE", ("br", "gzip"))
    made = CompressFilter(ZSTD_FIRST)
    assert made.offered == ("br", "gzip")
    transform, headers = respond(b"zstd, br, gzip", HTML, settings=ZSTD_FIRST)
    assert (b"Content-Encoding", b"br") in headers


def test_compressed_response_head():
    transform, headers = respond(b"gzip", HTML + [(b"ETag", b'"abc"')])
    assert verifyObject(IBodyTransform, transform)
    assert sorted(headers) == sorted(
        [
            (b"Content-Type", b"text/html; charset=utf-8"),
            (b"Vary", b"Accept-Encoding"),
            (b"Content-Encoding", b"gzip"),
            (b"ETag", b'W/"abc"'),
        ]
    )


def test_weak_etag_stays_as_it_is():
    _, headers = respond(b"br", HTML + [(b"ETag", b'W/"abc"')])
    assert (b"ETag", b'W/"abc"') in headers


@pytest.mark.parametrize(
    "value, extra, status",
    [
        (None, [], 200),  # no Accept-Encoding: identity
        (b"identity", [], 200),
        (b"gzip", [(b"Content-Encoding", b"br")], 200),  # already encoded
        (b"gzip", [(b"Content-Range", b"bytes 0-9/100")], 200),
        (b"gzip", [], 206),
        (b"gzip", [], 304),
        (b"gzip", [], 204),
        (b"gzip", [(b"Cache-Control", b"public, no-transform")], 200),
    ],
)
def test_left_alone(value, extra, status):
    transform, headers = respond(value, HTML + extra, status)
    assert transform is None
    assert (b"Content-Length", b"8800") in headers


def test_vary_is_added_even_when_this_client_gets_identity():
    _, headers = respond(None, HTML)
    assert (b"Vary", b"Accept-Encoding") in headers


@pytest.mark.parametrize(
    "vary, expected",
    [
        ([(b"Vary", b"Cookie")], [b"Cookie", b"Accept-Encoding"]),
        ([(b"Vary", b"cookie, accept-encoding")], [b"cookie, accept-encoding"]),
        ([(b"Vary", b"*")], [b"*"]),
    ],
)
def test_vary_is_merged(vary, expected):
    _, headers = respond(b"gzip", HTML + vary)
    assert [value for name, value in headers if name == b"Vary"] == expected


@pytest.mark.parametrize(
    "headers",
    [
        [(b"Content-Type", b"image/png")],
        [(b"Content-Length", b"8800")],  # no Content-Type
        [(b"Content-Type", b"text/html"), (b"Content-Length", b"100")],  # too small
    ],
)
def test_types_and_size(headers):
    transform, after = respond(b"gzip", headers)
    assert transform is None
    assert (b"Vary", b"Accept-Encoding") not in after


def test_configured_types_with_wildcards():
    settings = CompressSettings(types=("application/*",), min_size=0)
    assert respond(b"gzip", [(b"Content-Type", b"application/x-thing")], settings=settings)[0]
    assert respond(b"gzip", [(b"Content-Type", b"text/plain")], settings=settings)[0] is None


def test_unknown_length_is_compressed():
    transform, _ = respond(b"gzip", [(b"Content-Type", b"text/plain")])
    assert transform is not None


def zstd_decompress(data):
    # Streamed frames carry no content size, which zstandard's one-shot
    # decompress needs; the stream decoder also decodes a frame cut short.
    return zstandard.ZstdDecompressor().decompressobj().decompress(data)


@pytest.mark.parametrize(
    "encoding, decode, partial_decode",
    [
        (b"gzip", gzip.decompress, lambda sent: zlib.decompressobj(31).decompress(sent)),
        (b"br", brotli.decompress, lambda sent: brotli.Decompressor().process(sent)),
        pytest.param(
            b"zstd", zstd_decompress, zstd_decompress, marks=needs_zstd
        ),
    ],
)
def test_streaming_transform_round_trip(encoding, decode, partial_decode):
    """
    Each chunk is compressed and flushed as it comes: every piece sent so
    far decodes to the body so far.
    """
    transform, headers = respond(encoding, HTML, settings=ZSTD_FIRST)
    assert (b"Content-Encoding", encoding) in headers
    sent = b""
    chunks = [TEXT[i : i + 1000] for i in range(0, len(TEXT), 1000)]
    for number, chunk in enumerate(chunks, 1):
        sent += transform.transform(chunk)
        assert partial_decode(sent) == b"".join(chunks[:number])
    sent += transform.finish()
    assert decode(sent) == TEXT
    assert len(sent) < len(TEXT) / 5


@needs_zstd
def test_zstd_window_stays_small():
    """
    The frame asks the client for a 512 KiB window, as brotli's does: a
    compressor's memory per response stays small, and every browser
    accepts the frame.
    """
    transform, _ = respond(b"zstd", HTML, settings=ZSTD_FIRST)
    frame = transform.transform(TEXT) + transform.finish()
    assert zstandard.get_frame_parameters(frame).window_size <= 512 * 1024


def test_plugin_is_found_by_name_and_configures():
    from twisted.plugin import getPlugins

    types = {filter_type.name: filter_type for filter_type in getPlugins(IFilterType)}
    compress = types["compress"]
    assert verifyObject(IPlugin, compress)
    assert verifyObject(IFilterType, compress)
    made = compress.configure(
        {"encodings": ["gzip"], "types": ["Text/HTML"], "min_size": "1KiB", "gzip_level": 9},
        FilterContext("compress", reactor, None),
    )
    assert verifyObject(IFilter, made)
    assert made.settings == CompressSettings(
        encodings=("gzip",), types=("text/html",), min_size=1024, gzip_level=9
    )


def test_importing_the_filter_plugins_imports_only_the_interfaces():
    assert proxy_modules_imported_by("twisted.plugins.txrevproxy_filters") == [
        "txrevproxy",
        "txrevproxy.interfaces",
    ]


def test_option_problems_have_key_paths():
    from twisted.plugins.txrevproxy_filters import compress

    with pytest.raises(Invalid) as raised:
        compress.configure(
            {
                "encodings": ["gzip", "deflate", "gzip"],
                "types": ["html"],
                "gzip_level": 10,
                "brotli_quality": -1,
                "zstd_level": 20,
                "gzip_lvl": 3,
            },
            FilterContext("compress", reactor, None),
        )
    assert sorted(raised.value.problems) == sorted(
        [
            (".gzip_lvl", 'unknown key; did you mean "gzip_level"?'),
            (".encodings[1]", 'unknown encoding "deflate"; expected "zstd" or "br" or "gzip"'),
            (".types[0]", 'not a media type such as "text/html" or "text/*", got "html"'),
            (".gzip_level", "must be at most 9, got 10"),
            (".brotli_quality", "must be at least 0, got -1"),
            (".zstd_level", "must be at most 19, got 20"),
        ]
    )


# Over the wire ------------------------------------------------------------


class Text(resource.Resource):
    isLeaf = True

    def render(self, request):
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"etag", b'"t1"')
        request.setHeader(b"cache-control", b"max-age=60")
        return TEXT


class OverTheWireTests(TestCase):
    """
    The compress filter from the configuration file, on a plain route and
    on a cached one (where hits are compressed per client too).
    """

    timeout = 15

    @inlineCallbacks
    def setUp(self):
        from ..support.configs import parse

        backend_port = yield listen(server.Site(Text()), self)
        config = parse(
            """
[listeners.web]
endpoint = "tcp:0:interface=127.0.0.1"

[upstreams.app]
servers = [{ url = "http://127.0.0.1:%d" }]

[[routes]]
path = "/cached/"
upstream = "app"
cache = "pages"
filters = ["gzip"]

[[routes]]
upstream = "app"
filters = ["gzip"]

[caches.pages]

[filters.gzip]
type = "compress"
encodings = ["zstd", "br", "gzip"]
"""
            % (backend_port,)
        )
        service = ProxyService(config, reactor)
        service.startService()
        self.addCleanup(service.stopService)
        self.port = service.ports[0].getHost().port

    @inlineCallbacks
    def fetch(self, accept, path=b"/"):
        raw = yield raw_exchange(
            self.port,
            b"GET " + path + b" HTTP/1.1\r\nHost: shop.test\r\nAccept-Encoding: " + accept
            + b"\r\nConnection: close\r\n\r\n",
        )
        return parse_response(raw)

    @inlineCallbacks
    def test_cache_hits_are_compressed_per_client(self):
        for accept, decode in [(b"gzip", gzip.decompress), (b"br", brotli.decompress)]:
            status, headers, body = yield self.fetch(accept, b"/cached/page")
            self.assertEqual(headers[b"content-encoding"], [accept])
            self.assertEqual(decode(body), TEXT)
        status, headers, body = yield self.fetch(b"identity", b"/cached/page")
        self.assertIn(b"hit", headers[b"cache-status"][0])
        self.assertNotIn(b"content-encoding", headers)
        self.assertEqual(body, TEXT)

    @inlineCallbacks
    def test_gzip_round_trip(self):
        status, headers, body = yield self.fetch(b"gzip")
        self.assertEqual(headers[b"content-encoding"], [b"gzip"])
        self.assertEqual(headers[b"transfer-encoding"], [b"chunked"])
        self.assertEqual(headers[b"etag"], [b'W/"t1"'])
        self.assertNotIn(b"content-length", headers)
        self.assertEqual(gzip.decompress(body), TEXT)

    @inlineCallbacks
    def test_brotli_round_trip(self):
        status, headers, body = yield self.fetch(b"gzip;q=0.8, br")
        self.assertEqual(headers[b"content-encoding"], [b"br"])
        self.assertEqual(brotli.decompress(body), TEXT)

    @inlineCallbacks
    def test_zstd_round_trip(self):
        if zstandard is None or "zstd" not in AVAILABLE:
            raise self.skipTest(NO_ZSTD)
        status, headers, body = yield self.fetch(b"gzip, deflate, br, zstd")
        self.assertEqual(headers[b"content-encoding"], [b"zstd"])
        self.assertEqual(zstd_decompress(body), TEXT)

    @inlineCallbacks
    def test_identity_when_not_accepted(self):
        status, headers, body = yield self.fetch(b"identity")
        self.assertNotIn(b"content-encoding", headers)
        self.assertEqual(headers[b"vary"], [b"Accept-Encoding"])
        self.assertEqual(body, TEXT)

    @inlineCallbacks
    def test_curl_decodes_it(self):
        curl = shutil.which("curl")
        if curl is None:
            raise self.skipTest("curl is not installed")
        for encoding in [name for name in ("gzip", "br", "zstd") if name in AVAILABLE]:
            out, err, code = yield getProcessOutputAndValue(
                curl,
                [
                    "-sS",
                    "--compressed",
                    "-H",
                    "Accept-Encoding: " + encoding,
                    "-H",
                    "Host: shop.test",
                    "-D",
                    "-",
                    "http://127.0.0.1:%d/" % (self.port,),
                ],
                env=os.environ,
            )
            if code != 0 and b"Unrecognized content encoding" in err:
                continue  # a curl built without brotli or zstd
            self.assertEqual(code, 0, err)
            head, _, body = out.partition(b"\r\n\r\n")
            self.assertIn(b"content-encoding: " + encoding.encode(), head.lower())
            self.assertEqual(body, TEXT)


#: A configuration whose compress filter asks for zstd.
ASKS_FOR_ZSTD = """
[listeners.web]
endpoint = "tcp:8080"

[upstreams.app]
servers = [{ url = "http://127.0.0.1:9001" }]

[[routes]]
upstream = "app"
filters = ["squeeze"]

[filters.squeeze]
type = "compress"
encodings = ["zstd", "gzip"]
"""


def test_check_warns_of_zstd_this_python_cannot_make(monkeypatch, tmp_path):
    monkeypatch.setattr(compress_module, "AVAILABLE", ("br", "gzip"))
    path = tmp_path / "proxy.toml"
    path.write_text(ASKS_FOR_ZSTD)
    status, out, err = run(["check", "--config", str(path)])
    assert status == 0, err
    assert out.splitlines()[1:] == [
        "warning: filters.squeeze.encodings: zstd cannot be offered: this Python "
        "has no zstd module (zstandard installs on CPython; Python 3.14 has "
        "compression.zstd); the filter offers gzip"
    ]


@needs_zstd
def test_check_is_silent_where_zstd_is_available(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(ASKS_FOR_ZSTD)
    status, out, err = run(["check", "--config", str(path)])
    assert (status, err) == (0, "")
