"""
Partial responses over loopback (RFC 9111 sections 3.3 and 3.4): an
origin that answers ranges with 206, the proxy that stores and combines
them, raw clients.
"""

from __future__ import annotations

import re

from twisted.internet.defer import inlineCallbacks

from ..support.cache_cases import CacheTestCase, get

BODY = b"0123456789"
_RANGE = re.compile(rb"bytes=([0-9]*)-([0-9]*)")


class RangeOrigin:
    """
    An origin of one representation (C{body}, C{etag}) that answers a
    single byte range with 206, If-None-Match with 304 and a failed
    If-Range with the whole 200, as RFC 9110 has it; C{requests} records
    what each request asked.
    """

    def __init__(self, body: bytes = BODY, etag: bytes = b'"v1"', cache_control=b"max-age=60"):
        self.body = body
        self.etag = etag
        self.cache_control = cache_control
        self.requests = []

    def __call__(self, request):
        asked = request.getHeader(b"range")
        self.requests.append((asked, request.getHeader(b"if-none-match")))
        request.setHeader(b"ETag", self.etag)
        request.setHeader(b"Cache-Control", self.cache_control)
        if request.getHeader(b"if-none-match") == self.etag:
            request.setResponseCode(304)
            return b""
        if_range = request.getHeader(b"if-range")
        match = _RANGE.fullmatch(asked or b"")
        if match is None or (if_range is not None and if_range != self.etag):
            return self.body
        first, last = match.groups()
        length = len(self.body)
        if not first:
            first, last = length - int(last), length - 1
        else:
            first, last = int(first), min(int(last or length - 1), length - 1)
        request.setResponseCode(206)
        request.setHeader(b"Content-Range", b"bytes %d-%d/%d" % (first, last, length))
        return self.body[first : last + 1]


def ranged(first_last: bytes, *extra: bytes) -> bytes:
    return b"Range: bytes=" + first_last + b"\r\n" + b"".join(line + b"\r\n" for line in extra)


class PartialTests(CacheTestCase):
    @inlineCallbacks
    def startOrigin(self, **options):
        self.origin = RangeOrigin(**options)
        yield self.startWith(self.origin)

    @inlineCallbacks
    def test_a_range_miss_is_stored_and_answers_the_ranges_it_holds(self):
        yield self.startOrigin()
        status, headers, body = yield get(self.port, extra=ranged(b"2-6"))
        self.assertEqual((status, body), (206, b"23456"))
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=uri-miss; stored"])
        for asked, part in ((b"2-6", b"23456"), (b"3-4", b"34")):
            status, headers, body = yield get(self.port, extra=ranged(asked))
            self.assertEqual((status, body), (206, part))
            self.assertTrue(headers[b"cache-status"][0].startswith(b"txrevproxy; hit;"))
            self.assertEqual(headers[b"content-length"], [b"%d" % (len(part),)])
        self.assertEqual(headers[b"content-range"], [b"bytes 3-4/10"])
        self.assertEqual(headers[b"etag"], [b'"v1"'])
        # Unsatisfiable in any representation of ten bytes.
        status, headers, _ = yield get(self.port, extra=ranged(b"20-"))
        self.assertEqual((status, headers[b"content-range"]), (416, [b"bytes */10"]))
        self.assertEqual(len(self.origin.requests), 1)

    @inlineCallbacks
    def test_a_partial_never_answers_a_full_get_nor_a_head(self):
        yield self.startOrigin()
        yield get(self.port, extra=ranged(b"0-4"))
        status, headers, _ = yield get(self.port, method=b"HEAD")
        self.assertEqual((status, headers[b"content-length"]), (200, [b"10"]))
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=partial"])
        status, headers, body = yield get(self.port)
        self.assertEqual((status, body), (200, BODY))
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=partial; stored"])
        # The full 200 replaced the piece: now everything is a hit.
        status, _, body = yield get(self.port)
        self.assertEqual((status, body), (200, BODY))
        status, _, body = yield get(self.port, extra=ranged(b"7-"))
        self.assertEqual((status, body), (206, b"789"))
        self.assertEqual(self.origin.requests, [(b"bytes=0-4", None), (None, None), (None, None)])

    @inlineCallbacks
    def test_a_range_the_pieces_lack_is_asked_and_combined(self):
        yield self.startOrigin()
        yield get(self.port, extra=ranged(b"0-2"))
        status, headers, body = yield get(self.port, extra=ranged(b"6-8"))
        self.assertEqual((status, body), (206, b"678"))
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=partial; stored"])
        # Spanning the gap: asked whole.
        _, headers, body = yield get(self.port, extra=ranged(b"2-6"))
        self.assertEqual((body, headers[b"cache-status"]), (b"23456", [b"txrevproxy; fwd=partial; stored"]))
        # Held now: 0-8, from three pieces.
        status, headers, body = yield get(self.port, extra=ranged(b"1-7"))
        self.assertEqual((status, body, headers[b"content-range"]), (206, b"1234567", [b"bytes 1-7/10"]))
        self.assertTrue(headers[b"cache-status"][0].startswith(b"txrevproxy; hit;"))
        status, _, body = yield get(self.port, extra=ranged(b"7-9"))
        self.assertEqual((status, body), (206, b"789"))
        self.assertEqual(
            [asked for asked, _ in self.origin.requests],
            [b"bytes=0-2", b"bytes=6-8", b"bytes=2-6", b"bytes=7-9"],
        )

    @inlineCallbacks
    def test_pieces_that_cover_the_representation_become_a_complete_response(self):
        yield self.startOrigin()
        yield get(self.port, extra=ranged(b"0-4"))
        yield get(self.port, extra=ranged(b"-5"))
        status, headers, body = yield get(self.port)
        self.assertEqual((status, body, headers[b"content-length"]), (200, BODY, [b"10"]))
        self.assertNotIn(b"content-range", headers)
        self.assertTrue(headers[b"cache-status"][0].startswith(b"txrevproxy; hit;"))
        status, headers, body = yield get(self.port, method=b"HEAD")
        self.assertEqual((status, body, headers[b"content-length"]), (200, b"", [b"10"]))
        status, _, body = yield get(self.port, extra=ranged(b"3-6"))
        self.assertEqual((status, body), (206, b"3456"))
        self.assertEqual(len(self.origin.requests), 2)
        self.assertEqual(self.cache.metrics.bytes_stored, 10)

    @inlineCallbacks
    def test_a_changed_representation_replaces_the_pieces(self):
        yield self.startOrigin()
        yield get(self.port, extra=ranged(b"0-4"))
        self.origin.body, self.origin.etag = b"abcdefghij", b'"v2"'
        status, _, body = yield get(self.port, extra=ranged(b"5-9"))
        self.assertEqual((status, body), (206, b"fghij"))
        # Not combined with the piece of "v1": a full GET still misses,
        # and the range of "v1" is gone.
        _, headers, body = yield get(self.port)
        self.assertEqual((body, headers[b"cache-status"]), (b"abcdefghij", [b"txrevproxy; fwd=partial; stored"]))
        self.assertEqual(len(self.origin.requests), 3)

    @inlineCallbacks
    def test_if_range_is_answered_from_the_combined_response(self):
        yield self.startOrigin()
        yield get(self.port, extra=ranged(b"0-4"))
        yield get(self.port, extra=ranged(b"5-9"))
        status, headers, body = yield get(self.port, extra=ranged(b"2-3", b'If-Range: "v1"'))
        self.assertEqual((status, body), (206, b"23"))
        self.assertTrue(headers[b"cache-status"][0].startswith(b"txrevproxy; hit;"))
        # An If-Range that does not match asks for the whole response,
        # which the cache has.
        status, headers, body = yield get(self.port, extra=ranged(b"2-3", b'If-Range: "v0"'))
        self.assertEqual((status, body), (200, BODY))
        self.assertEqual(len(self.origin.requests), 2)

    @inlineCallbacks
    def test_if_range_that_a_partial_cannot_answer_goes_to_the_origin(self):
        yield self.startOrigin()
        yield get(self.port, extra=ranged(b"0-4"))
        status, headers, body = yield get(self.port, extra=ranged(b"0-2", b'If-Range: "v0"'))
        self.assertEqual((status, body), (200, BODY))
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=partial; stored"])
        status, _, body = yield get(self.port)
        self.assertEqual((status, body), (200, BODY))
        self.assertEqual(len(self.origin.requests), 2)

    @inlineCallbacks
    def test_a_stale_partial_is_revalidated_for_its_range(self):
        yield self.startOrigin(cache_control=b"max-age=0")
        yield get(self.port, extra=ranged(b"2-5"))
        status, headers, body = yield get(self.port, extra=ranged(b"3-4"))
        self.assertEqual((status, body), (206, b"34"))
        self.assertEqual(headers[b"content-range"], [b"bytes 3-4/10"])
        self.assertEqual(
            headers[b"cache-status"][0].split(b"; ttl=")[0],
            b"txrevproxy; fwd=stale; fwd-status=304",
        )
        self.assertEqual(self.origin.requests[1], (b"bytes=3-4", b'"v1"'))
        # Changed meanwhile: the origin's piece is passed on and replaces.
        self.origin.body, self.origin.etag = b"abcdefghij", b'"v2"'
        status, headers, body = yield get(self.port, extra=ranged(b"3-4"))
        self.assertEqual((status, body), (206, b"de"))
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=stale; fwd-status=206; stored"])
        self.assertEqual(self.origin.requests[2], (b"bytes=3-4", b'"v1"'))

    @inlineCallbacks
    def test_pieces_of_a_representation_larger_than_the_bound_are_kept_within_it(self):
        self.origin = RangeOrigin(body=b"x" * 300)
        yield self.startWith(self.origin, max_object_size=200)
        yield get(self.port, extra=ranged(b"0-149"))
        yield get(self.port, extra=ranged(b"150-299"))
        # Together they would exceed max_object_size: the newer is kept.
        status, _, body = yield get(self.port, extra=ranged(b"150-160"))
        self.assertEqual((status, len(body)), (206, 11))
        yield get(self.port, extra=ranged(b"0-10"))
        self.assertEqual(len(self.origin.requests), 3)
        self.assertLessEqual(self.cache.store.size, 200 + 1024)

    @inlineCallbacks
    def test_multipart_ranges_are_passed_on_and_not_stored(self):
        yield self.startOrigin()
        status, headers, body = yield get(self.port, extra=ranged(b"0-1,4-5"))
        # This origin answers several ranges with the whole body, which is
        # stored: a complete 200 serves the range after.
        self.assertEqual((status, body), (200, BODY))
        status, _, body = yield get(self.port, extra=ranged(b"4-5"))
        self.assertEqual((status, body), (206, b"45"))
        self.assertEqual(len(self.origin.requests), 1)


class DiskPartialTests(PartialTests):
    """
    The same, with the pieces in files of a disk store.
    """

    store_options = {"store": "disk"}
