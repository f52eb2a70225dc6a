"""
The C{compress} filter: zstd, brotli and gzip response compression,
streamed.

The encoding is chosen per request from Accept-Encoding (q-values, then
the configured order), for responses of the configured media types that
are not encoded already, not partial and not too small.  Each body chunk
is compressed and flushed as it arrives, so memory stays at the
compressor's window whatever the body's size, and a streamed response
reaches the client as it is produced.

zstd needs a module that only some Pythons have: Python 3.14's
C{compression.zstd}, or C{zstandard}, which installs from a wheel on
CPython only.  Where neither is present the filter leaves zstd out of what
it offers, and says so when the configuration is loaded.
"""

from __future__ import annotations

import re
import zlib
from functools import partial
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple

import attr
from twisted.logger import Logger
from zope.interface import implementer

from ..config.schema import Field, Invalid, Problem, Table, array_of, describe, expected
from ..config.values import integer, size
from ..interfaces import IBodyTransform, IFilter

try:
    import brotli
except ImportError:  # pragma: no cover - where only brotlicffi installs
    import brotlicffi as brotli

try:
    from compression import zstd as stdlib_zstd  # Python 3.14 and later
except ImportError:
    stdlib_zstd = None
try:
    import zstandard
except ImportError:  # PyPy: zstandard has no wheel there
    zstandard = None

Header = Tuple[bytes, bytes]

log = Logger()

#: The encodings this filter knows, by their Accept-Encoding names.
ENCODINGS = ("zstd", "br", "gzip")

#: The encodings offered when the table names none: zstd only when a table
#: asks for it, since not every Python can make it.
DEFAULT_ENCODINGS = ("br", "gzip")

#: The encodings this Python can make.
AVAILABLE = tuple(
    name
    for name in ENCODINGS
    if name != "zstd" or stdlib_zstd is not None or zstandard is not None
)

#: The media types compressed by default: text and the usual textual
#: formats; images, video and archives are compressed already.
DEFAULT_TYPES = (
    "text/*",
    "application/javascript",
    "application/json",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/manifest+json",
    "application/wasm",
    "image/svg+xml",
)

#: The brotli window, 512 KiB (nginx's default for on-the-fly brotli):
#: brotli's own 4 MiB default would be held per response being sent.
BROTLI_WINDOW_BITS = 19

#: The zstd window, 512 KiB likewise: far below the 8 MiB that zstd as an
#: HTTP content coding may use at most (RFC 9659).
ZSTD_WINDOW_LOG = 19

#: Statuses whose response has no body to compress, or a partial one.
_SKIPPED_STATUSES = frozenset([204, 206, 304])


@attr.s(frozen=True, auto_attribs=True)
class CompressSettings:
    """
    The options of a C{type = "compress"} filter table.

    @ivar encodings: the encodings offered, preferred first when a client
        accepts several equally; one this Python cannot make (zstd, see
        L{AVAILABLE}) is left out.
    @ivar types: the media types compressed, lower-case; C{"text/*"}
        covers a whole top-level type.
    @ivar min_size: responses whose Content-Length is below this are sent
        as they are (compressing them gains nothing); a response without
        Content-Length is compressed.
    @ivar gzip_level: the zlib compression level, 1 (fast) to 9 (small).
    @ivar brotli_quality: the brotli quality, 0 (fast) to 11 (small).
    @ivar zstd_level: the zstd level, 1 (fast) to 19 (small).
    """

    encodings: Tuple[str, ...] = DEFAULT_ENCODINGS
    types: Tuple[str, ...] = DEFAULT_TYPES
    min_size: int = 256
    gzip_level: int = 6
    brotli_quality: int = 4
    zstd_level: int = 3


def accepted_encodings(values: Iterable[bytes]) -> Dict[str, float]:
    """
    The codings of Accept-Encoding field values and their weights (RFC
    9110 section 12.5.3), lower-case; a malformed weight counts as 0.
    """
    weights: Dict[str, float] = {}
    for value in values:
        for item in value.split(b","):
            coding, *parameters = item.split(b";")
            coding = coding.strip().lower()
            if not coding:
                continue
            weight = 1.0
            for parameter in parameters:
                name, _, argument = parameter.partition(b"=")
                if name.strip().lower() == b"q":
                    try:
                        weight = min(1.0, max(0.0, float(argument.strip())))
                    except ValueError:
                        weight = 0.0
            weights[coding.decode("latin-1")] = weight
    return weights


def choose_encoding(
    weights: Dict[str, float], offered: Tuple[str, ...]
) -> Optional[str]:
    """
    The offered encoding a client prefers: the highest weight above zero,
    the earlier in C{offered} on a tie; C{*} stands for every coding the
    client did not name.  L{None}: send the body as it is.
    """
    best = None
    best_weight = 0.0
    for coding in offered:
        weight = weights.get(coding, weights.get("*", 0.0))
        if weight > best_weight:
            best, best_weight = coding, weight
    return best


def media_type_matches(content_type: bytes, types: Tuple[str, ...]) -> bool:
    """
    Whether a Content-Type value (parameters ignored) is one of C{types}.
    """
    media = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
    top = media.split("/", 1)[0]
    return media in types or top + "/*" in types


def weak_etag(etag: bytes) -> bytes:
    """
    An entity tag made weak: the compressed body is not byte for byte the
    one the strong tag names (RFC 9110 section 8.8.1).
    """
    return etag if etag.startswith(b"W/") else b"W/" + etag


@implementer(IBodyTransform)
class GzipTransform:
    """
    A body compressed with gzip, flushed at each chunk.
    """

    def __init__(self, level: int) -> None:
        self._compressor = zlib.compressobj(level, zlib.DEFLATED, 31)

    def transform(self, data: bytes) -> bytes:
        compressor = self._compressor
        return compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._compressor.flush()


@implementer(IBodyTransform)
class BrotliTransform:
    """
    A body compressed with brotli, flushed at each chunk.
    """

    def __init__(self, quality: int) -> None:
        self._compressor = brotli.Compressor(quality=quality, lgwin=BROTLI_WINDOW_BITS)

    def transform(self, data: bytes) -> bytes:
        compressor = self._compressor
        return compressor.process(data) + compressor.flush()

    def finish(self) -> bytes:
        return self._compressor.finish()


def zstd_stream(
    level: int,
) -> Tuple[Callable[[bytes], bytes], Callable[[], bytes], Callable[[], bytes]]:
    """
    A zstd compressor of one body with L{ZSTD_WINDOW_LOG}, from the module
    this Python has: its C{compress}, its flush of a block (what was given
    so far becomes decodable) and its end of the frame.
    """
    if stdlib_zstd is not None:
        parameter = stdlib_zstd.CompressionParameter
        compressor = stdlib_zstd.ZstdCompressor(
            options={parameter.compression_level: level, parameter.window_log: ZSTD_WINDOW_LOG}
        )
        block = stdlib_zstd.ZstdCompressor.FLUSH_BLOCK
    else:
        parameters = zstandard.ZstdCompressionParameters.from_level(
            level, window_log=ZSTD_WINDOW_LOG
        )
        compressor = zstandard.ZstdCompressor(compression_params=parameters).compressobj()
        block = zstandard.COMPRESSOBJ_FLUSH_BLOCK
    return compressor.compress, partial(compressor.flush, block), compressor.flush


@implementer(IBodyTransform)
class ZstdTransform:
    """
    A body compressed with zstd, a block flushed at each chunk.
    """

    def __init__(self, level: int) -> None:
        self._compress, self._flush, self.finish = zstd_stream(level)

    def transform(self, data: bytes) -> bytes:
        return self._compress(data) + self._flush()


@implementer(IFilter)
class CompressFilter:
    """
    A configured C{compress} filter; see the module docstring.

    @ivar offered: the configured encodings this Python can make, in the
        configured order.
    """

    def __init__(self, settings: CompressSettings) -> None:
        self.settings = settings
        self.offered = tuple(name for name in settings.encodings if name in AVAILABLE)

    def request(self, request) -> None:
        return None

    def response(self, request, status: int, headers: List[Header]):
        if status < 200 or status in _SKIPPED_STATUSES:
            return None
        settings = self.settings
        content_type = length = etag = None
        vary: List[bytes] = []
        for name, value in headers:
            lname = name.lower()
            if lname == b"content-type":
                content_type = value
            elif lname == b"content-length":
                length = value
            elif lname == b"etag":
                etag = value
            elif lname == b"vary":
                vary.append(value)
            elif lname == b"content-encoding" and value.strip().lower() != b"identity":
                return None
            elif lname == b"content-range":
                return None
            elif lname == b"cache-control" and b"no-transform" in value.lower():
                return None
        if content_type is None or not media_type_matches(content_type, settings.types):
            return None
        if length is not None and length.isdigit() and int(length) < settings.min_size:
            return None
        # The response depends on Accept-Encoding from here on, whether
        # this client gets it compressed or not.
        listed = {
            item.strip().lower() for value in vary for item in value.split(b",")
        }
        if b"*" not in listed and b"accept-encoding" not in listed:
            headers.append((b"Vary", b"Accept-Encoding"))
        encoding = choose_encoding(
            accepted_encodings(
                request.requestHeaders.getRawHeaders(b"accept-encoding", [])
            ),
            self.offered,
        )
        if encoding is None:
            return None
        headers[:] = [
            pair
            for pair in headers
            if pair[0].lower() not in (b"content-length", b"content-encoding", b"etag")
        ]
        headers.append((b"Content-Encoding", encoding.encode("ascii")))
        if etag is not None:
            headers.append((b"ETag", weak_etag(etag)))
        if encoding == "br":
            return BrotliTransform(settings.brotli_quality)
        if encoding == "zstd":
            return ZstdTransform(settings.zstd_level)
        return GzipTransform(settings.gzip_level)


# Configuration ----------------------------------------------------------------

_MEDIA_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]*/(?:\*|[a-z0-9][a-z0-9!#$&^_.+-]*)\Z")


def _media_type(value: Any) -> str:
    if not isinstance(value, str):
        raise expected('a media type such as "text/html" or "text/*"', value)
    lowered = value.strip().lower()
    if not _MEDIA_TYPE.match(lowered):
        raise Invalid('not a media type such as "text/html" or "text/*", got %s' % (describe(value),))
    return lowered


def _encoding(value: Any) -> str:
    if value not in ENCODINGS:
        raise Invalid(
            "unknown encoding %s; expected %s"
            % (describe(value), " or ".join('"%s"' % (name,) for name in ENCODINGS))
        )
    return value


def _distinct_encodings(arguments: Dict[str, Any]) -> Iterable[Problem]:
    encodings = arguments["encodings"]
    if len(set(encodings)) != len(encodings):
        yield (".encodings", "lists an encoding twice")


OPTIONS = Table(
    lambda **options: CompressFilter(CompressSettings(**options)),
    {
        "encodings": Field(array_of(_encoding, min_items=1), default=list(DEFAULT_ENCODINGS)),
        "types": Field(array_of(_media_type, min_items=1), default=list(DEFAULT_TYPES)),
        "min_size": Field(size, default=256),
        "gzip_level": Field(integer(minimum=1, maximum=9), default=6),
        "brotli_quality": Field(integer(minimum=0, maximum=11), default=4),
        "zstd_level": Field(integer(minimum=1, maximum=19), default=3),
    },
    checks=(_distinct_encodings,),
)


def configure(options: Dict[str, Any], context) -> CompressFilter:
    """
    The C{configure} of the C{compress} filter type: validate the table's
    options and make the filter.

    While the configuration is loaded (C{context.reactor} is L{None}: at
    start, at each reload and in C{txrevproxy check}), an encoding this
    Python cannot make is logged as a warning, once.

    @raise Invalid: with every problem, each under its key.
    """
    made = OPTIONS(options)
    missing = [name for name in made.settings.encodings if name not in AVAILABLE]
    if missing and context.reactor is None:
        log.warn(
            "filters.{name}.encodings: {missing} cannot be offered: this Python "
            "has no zstd module (zstandard installs on CPython; Python 3.14 has "
            "compression.zstd); the filter offers {offered}",
            name=context.name,
            missing=", ".join(missing),
            offered=", ".join(made.offered) or "no encoding, and sends bodies as they are",
        )
    return made
