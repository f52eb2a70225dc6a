"""
The shared cache over loopback: a real backend, the proxy, raw clients.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks

from ..support.cache_cases import CacheTestCase, cacheable, get
from ..support.loopback import connect_raw
from ..support.origins import Held, parse_response
from ..support.waiting import until


def connect_clients(port: int, count: int) -> Deferred:
    """
    Connect C{count} raw clients that each send one GET of /page.
    """
    request = b"GET /page HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n\r\n"
    return gatherResults([connect_raw(port, request) for _ in range(count)])


class HitTests(CacheTestCase):
    @inlineCallbacks
    def test_second_request_is_a_hit_with_age_and_cache_status(self):
        yield self.startWith(cacheable())
        status, headers, body = yield get(self.port)
        self.assertEqual((status, body), (200, b"hello"))
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=uri-miss; stored"])
        status, headers, body = yield get(self.port)
        self.assertEqual((status, body), (200, b"hello"))
        self.assertEqual(len(self.backend.requests), 1)
        self.assertEqual(headers[b"content-length"], [b"5"])
        self.assertIn(b"age", headers)
        self.assertTrue(headers[b"cache-status"][0].startswith(b"txrevproxy; hit; ttl="))
        lookups = self.cache.metrics.lookups
        self.assertEqual((lookups[b"hit"], lookups[b"fwd=uri-miss"]), (1, 1))
        self.assertEqual(self.cache.metrics.bytes_stored, 5)

    @inlineCallbacks
    def test_each_request_is_counted_once_by_its_cache_status(self):
        yield self.startWith(cacheable())
        yield get(self.port)
        yield get(self.port)
        yield get(self.port, method=b"HEAD")
        yield get(self.port, method=b"DELETE")
        yield get(self.port, b"/other", extra=b"Cache-Control: only-if-cached\r\n")
        metrics = self.cache.metrics
        self.assertEqual(
            {result: count for result, count in metrics.lookups.items() if count},
            {b"fwd=uri-miss": 1, b"hit": 2, b"fwd=method": 1, b"fwd=miss": 1},
        )
        # The HEAD's answer had no body; the DELETE invalidated the page.
        self.assertEqual(metrics.bytes_served, len(b"hello"))
        self.assertEqual((metrics.stores, metrics.invalidated), (1, 1))
        self.assertEqual((self.cache.store.count, self.cache.store.size), (0, 0))

    @inlineCallbacks
    def test_age_counts_the_age_the_backend_reported(self):
        yield self.startWith(cacheable(cache_control=b"max-age=1000", Age=b"100"))
        yield get(self.port)
        _, headers, _ = yield get(self.port)
        self.assertEqual(len(headers[b"age"]), 1)
        self.assertGreaterEqual(int(headers[b"age"][0]), 100)
        self.assertLessEqual(int(headers[b"age"][0]), 102)

    @inlineCallbacks
    def test_head_is_answered_from_a_stored_get(self):
        yield self.startWith(cacheable())
        yield get(self.port)
        status, headers, body = yield get(self.port, method=b"HEAD")
        self.assertEqual((status, body, headers[b"content-length"]), (200, b"", [b"5"]))
        self.assertEqual(len(self.backend.requests), 1)

    @inlineCallbacks
    def test_private_responses_are_never_shared(self):
        yield self.startWith(cacheable(cache_control=b"private, max-age=60"))
        yield get(self.port)
        yield get(self.port)
        self.assertEqual(len(self.backend.requests), 2)

    @inlineCallbacks
    def test_set_cookie_responses_are_not_stored_by_default(self):
        yield self.startWith(cacheable(Set_Cookie=b"session=alice"))
        yield get(self.port)
        _, headers, _ = yield get(self.port)
        self.assertEqual(len(self.backend.requests), 2)
        self.assertEqual(headers[b"set-cookie"], [b"session=alice"])

    @inlineCallbacks
    def test_stored_set_cookie_is_never_replayed(self):
        yield self.startWith(cacheable(Set_Cookie=b"session=alice"), store_set_cookie=True)
        _, first, _ = yield get(self.port)
        _, second, body = yield get(self.port)
        self.assertEqual(len(self.backend.requests), 1)
        self.assertEqual(first[b"set-cookie"], [b"session=alice"])
        self.assertNotIn(b"set-cookie", second)
        self.assertEqual(body, b"hello")

    @inlineCallbacks
    def test_authorized_requests_are_not_stored_without_permission(self):
        yield self.startWith(cacheable())
        yield get(self.port, extra=b"Authorization: Basic YTpi\r\n")
        yield get(self.port)
        self.assertEqual(len(self.backend.requests), 2)

    @inlineCallbacks
    def test_client_conditional_request_is_answered_304_from_the_store(self):
        yield self.startWith(cacheable(ETag=b'"v1"'))
        yield get(self.port)
        status, headers, body = yield get(self.port, extra=b'If-None-Match: "v1"\r\n')
        self.assertEqual((status, body), (304, b""))
        self.assertEqual(headers[b"etag"], [b'"v1"'])
        self.assertEqual(len(self.backend.requests), 1)

    @inlineCallbacks
    def test_range_is_served_from_the_stored_response(self):
        yield self.startWith(cacheable(body=b"0123456789"))
        yield get(self.port)
        status, headers, body = yield get(self.port, extra=b"Range: bytes=2-4\r\n")
        self.assertEqual((status, body), (206, b"234"))
        self.assertEqual(headers[b"content-range"], [b"bytes 2-4/10"])
        status, headers, _ = yield get(self.port, extra=b"Range: bytes=20-\r\n")
        self.assertEqual((status, headers[b"content-range"]), (416, [b"bytes */10"]))
        self.assertEqual(len(self.backend.requests), 1)

    @inlineCallbacks
    def test_client_no_cache_goes_to_the_backend(self):
        yield self.startWith(cacheable())
        yield get(self.port)
        _, headers, _ = yield get(self.port, extra=b"Cache-Control: no-cache\r\n")
        self.assertEqual(len(self.backend.requests), 2)
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=request; fwd-status=200; stored"])

    @inlineCallbacks
    def test_upgrade_requests_bypass_the_cache(self):
        yield self.startWith(cacheable())
        yield get(self.port)
        upgrade = b"Upgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        status, headers, _ = yield get(self.port, extra=upgrade)
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=request"])
        self.assertEqual(len(self.backend.requests), 2)

    @inlineCallbacks
    def test_only_if_cached_miss_is_504(self):
        yield self.startWith(cacheable())
        status, headers, _ = yield get(self.port, extra=b"Cache-Control: only-if-cached\r\n")
        self.assertEqual(status, 504)
        self.assertEqual(self.backend.requests, [])

    @inlineCallbacks
    def test_unsafe_request_invalidates(self):
        def answer(request):
            if request.method == b"POST":
                request.setHeader(b"Location", b"/other")
                return b"posted"
            request.setHeader(b"Cache-Control", b"max-age=60")
            return b"page"

        yield self.startWith(answer)
        yield get(self.port)
        yield get(self.port, b"/other")
        status, headers, _ = yield get(self.port, method=b"POST", extra=b"Content-Length: 0\r\n")
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=method"])
        self.assertEqual(self.cache.store.keys(), {})
        yield get(self.port)
        self.assertEqual(len(self.backend.requests), 4)

    @inlineCallbacks
    def test_purge_by_url_and_prefix(self):
        yield self.startWith(cacheable())
        yield get(self.port, b"/a/1")
        yield get(self.port, b"/a/2")
        yield get(self.port, b"/b")
        self.assertEqual(self.cache.purge("http://shop.test/b"), 1)
        self.assertEqual(self.cache.purge_prefix("http://shop.test/a/"), 2)
        yield get(self.port, b"/a/1")
        yield get(self.port, b"/b")
        self.assertEqual(len(self.backend.requests), 5)


class VaryTests(CacheTestCase):
    @inlineCallbacks
    def test_each_variant_is_stored_and_matched(self):
        def answer(request):
            request.setHeader(b"Cache-Control", b"max-age=60")
            request.setHeader(b"Vary", b"Accept-Language")
            return request.getHeader(b"accept-language") or b"none"

        yield self.startWith(answer)
        bodies = []
        for language in (b"en", b"fr", b"en", b"fr", None, None):
            extra = b"Accept-Language: " + language + b"\r\n" if language else b""
            _, _, body = yield get(self.port, extra=extra)
            bodies.append(body)
        self.assertEqual(bodies, [b"en", b"fr", b"en", b"fr", b"none", b"none"])
        self.assertEqual(len(self.backend.requests), 3)

    @inlineCallbacks
    def test_vary_star_is_never_stored(self):
        yield self.startWith(cacheable(Vary=b"*"))
        yield get(self.port)
        yield get(self.port)
        self.assertEqual(len(self.backend.requests), 2)


class RevalidationTests(CacheTestCase):
    @inlineCallbacks
    def test_304_refreshes_the_stored_response(self):
        def answer(request):
            if request.getHeader(b"if-none-match") == b'"v1"':
                request.setResponseCode(304)
                request.setHeader(b"Cache-Control", b"max-age=60")
                request.setHeader(b"X-Version", b"2")
                return b""
            request.setHeader(b"Cache-Control", b"max-age=0")
            request.setHeader(b"ETag", b'"v1"')
            request.setHeader(b"X-Version", b"1")
            return b"body one"

        yield self.startWith(answer)
        yield get(self.port)
        status, headers, body = yield get(self.port)
        self.assertEqual((status, body), (200, b"body one"))
        self.assertEqual(headers[b"x-version"], [b"2"])
        self.assertEqual(
            headers[b"cache-status"][0].split(b"; ttl=")[0],
            b"txrevproxy; fwd=stale; fwd-status=304",
        )
        self.assertEqual(self.backend.requests[1].getHeader(b"if-none-match"), b'"v1"')
        # Now fresh for a minute: a hit.
        _, headers, _ = yield get(self.port)
        self.assertEqual(len(self.backend.requests), 2)
        metrics = self.cache.metrics
        self.assertEqual((metrics.revalidations, metrics.revalidated, metrics.stores), (1, 1, 2))
        self.assertEqual(
            (metrics.lookups[b"fwd=uri-miss"], metrics.lookups[b"fwd=stale"], metrics.lookups[b"hit"]),
            (1, 1, 1),
        )
        self.assertEqual(metrics.bytes_served, 2 * len(b"body one"))

    @inlineCallbacks
    def test_revalidation_answers_a_client_condition(self):
        def answer(request):
            if request.getHeader(b"if-none-match") == b'"v1"':
                request.setResponseCode(304)
                return b""
            request.setHeader(b"Cache-Control", b"no-cache")
            request.setHeader(b"ETag", b'"v1"')
            return b"body one"

        yield self.startWith(answer)
        yield get(self.port)
        status, _, _ = yield get(self.port, extra=b'If-None-Match: "v1"\r\n')
        self.assertEqual(status, 304)
        status, _, body = yield get(self.port, extra=b'If-None-Match: "v0"\r\n')
        self.assertEqual((status, body), (200, b"body one"))
        self.assertEqual(len(self.backend.requests), 3)

    @inlineCallbacks
    def test_stale_if_error_with_a_dead_backend(self):
        yield self.startWith(cacheable(cache_control=b"max-age=0, stale-if-error=600"))
        yield get(self.port)
        yield self.backend_listening_stops()
        status, headers, body = yield get(self.port)
        self.assertEqual((status, body), (200, b"hello"))
        self.assertIn(b"detail=stale-if-error", headers[b"cache-status"][0])
        self.assertEqual(self.cache.metrics.stale, 1)

    @inlineCallbacks
    def test_no_stale_if_error_without_permission(self):
        yield self.startWith(cacheable(cache_control=b"max-age=0", ETag=b'"a"'))
        yield get(self.port)
        yield self.backend_listening_stops()
        status, _, _ = yield get(self.port)
        self.assertEqual(status, 502)

    @inlineCallbacks
    def test_stale_while_revalidate_answers_at_once_and_refreshes_behind(self):
        versions = []

        def answer(request):
            versions.append(request.getHeader(b"if-none-match"))
            request.setHeader(b"Cache-Control", b"max-age=0, stale-while-revalidate=600")
            request.setHeader(b"ETag", b'"v%d"' % (len(versions),))
            return b"version %d" % (len(versions),)

        yield self.startWith(answer)
        yield get(self.port)
        _, _, body = yield get(self.port)
        self.assertEqual(body, b"version 1")
        yield until(lambda: len(versions) == 2 and not self.cache.fetches)
        self.assertEqual(versions, [None, b'"v1"'])
        _, _, body = yield get(self.port)
        self.assertEqual(body, b"version 2")


class CoalescingTests(CacheTestCase):
    @inlineCallbacks
    def test_concurrent_misses_make_one_backend_request_and_stream(self):
        held = Held(b"max-age=60", b"10")
        yield self.startWith(held)
        clients = 5
        connected = yield connect_clients(self.port, clients)
        yield held.arrived
        # Every client has its request in: one leads, the others wait.
        yield until(lambda: self.cache.metrics.lookups[b"collapsed"] == clients - 1)
        held.first.write(b"first")
        # The first half of the body reaches every client before the
        # backend sends the rest.
        yield until(lambda: all(client.received.endswith(b"first") for client in connected))
        held.first.write(b"-last")
        held.first.finish()
        responses = yield gatherResults([client.closed for client in connected])
        self.assertEqual(len(self.backend.requests), 1)
        for raw in responses:
            status, headers, body = parse_response(raw)
            self.assertEqual((status, body), (200, b"first-last"))
        statuses = sorted(parse_response(raw)[1][b"cache-status"][0] for raw in responses)
        self.assertEqual(
            statuses,
            [b"txrevproxy; fwd=uri-miss; collapsed"] * (clients - 1)
            + [b"txrevproxy; fwd=uri-miss; stored"],
        )
        _, _, body = yield get(self.port)
        self.assertEqual(body, b"first-last")
        self.assertEqual(len(self.backend.requests), 1)

    @inlineCallbacks
    def test_leader_leaving_does_not_cut_the_others(self):
        held = Held(b"max-age=60", b"10")
        yield self.startWith(held)
        [leader] = yield connect_clients(self.port, 1)
        yield held.arrived
        others = yield connect_clients(self.port, 2)
        yield until(lambda: self.cache.metrics.lookups[b"collapsed"] == 2)
        held.first.write(b"first")
        yield until(lambda: leader.received.endswith(b"first"))
        leader.transport.abortConnection()
        yield leader.closed
        held.first.write(b"-last")
        held.first.finish()
        responses = yield gatherResults([client.closed for client in others])
        for raw in responses:
            self.assertEqual(parse_response(raw)[2], b"first-last")
        _, _, body = yield get(self.port)
        self.assertEqual(body, b"first-last")
        self.assertEqual(len(self.backend.requests), 1)

    @inlineCallbacks
    def test_waiters_go_to_the_backend_when_the_response_is_uncacheable(self):
        held = Held(b"private", later=b"mine")
        yield self.startWith(held)
        connected = yield connect_clients(self.port, 3)
        yield held.arrived
        yield until(lambda: self.cache.metrics.lookups[b"collapsed"] == 2)
        held.first.write(b"mine")
        held.first.finish()
        responses = yield gatherResults([client.closed for client in connected])
        self.assertEqual(len(self.backend.requests), 3)
        for raw in responses:
            self.assertEqual(parse_response(raw)[2], b"mine")


    @inlineCallbacks
    def test_a_slow_waiter_paces_the_backend_read(self):
        """
        A waiter whose connection is full holds the backend read (and so
        the others) instead of having the body pile up in memory for it.
        """
        size = 8 * 1024 * 1024
        held = Held(b"max-age=60", b"%d" % (size,))
        yield self.startWith(held, max_object_size=size)
        [leader] = yield connect_clients(self.port, 1)
        yield held.arrived
        [slow] = yield connect_clients(self.port, 1)
        slow.transport.pauseProducing()
        yield until(lambda: self.cache.metrics.lookups[b"collapsed"] == 1)
        fetch = self.cache.fetches[b"http://shop.test/page"]
        chunk = b"x" * (1024 * 1024)
        for _ in range(size // len(chunk)):
            held.first.write(chunk)
        yield until(lambda: any(hold is not fetch.exchange for hold in fetch.exchange._holds or ()))
        self.assertLess(len(leader.received), size)
        slow.transport.resumeProducing()
        held.first.finish()
        for client in (leader, slow):
            raw = yield client.closed
            self.assertEqual(len(parse_response(raw)[2]), size)


    @inlineCallbacks
    def test_a_response_in_flight_when_its_url_is_purged_is_not_stored(self):
        held = Held(b"max-age=60", later=b"new")
        yield self.startWith(held)
        [first] = yield connect_clients(self.port, 1)
        yield held.arrived
        self.assertEqual(self.cache.purge("http://shop.test/page"), 0)
        held.first.write(b"old")
        held.first.finish()
        raw = yield first.closed
        self.assertEqual(parse_response(raw)[2], b"old")
        _, _, body = yield get(self.port)
        self.assertEqual(body, b"new")


class MidStreamTests(CacheTestCase):
    @inlineCallbacks
    def test_a_request_joining_mid_stream_gets_what_arrived_then_the_rest(self):
        held = Held(b"max-age=60")
        yield self.startWith(held)
        [leader] = yield connect_clients(self.port, 1)
        yield held.arrived
        held.first.write(b"first")
        yield until(lambda: b"first" in leader.received)
        [late] = yield connect_clients(self.port, 1)
        yield until(lambda: self.cache.metrics.lookups[b"collapsed"] == 1)
        held.first.write(b"-last")
        held.first.finish()
        for client in (leader, late):
            raw = yield client.closed
            self.assertEqual(parse_response(raw)[2], b"first-last")
        self.assertEqual(len(self.backend.requests), 1)


class DiskHitTests(HitTests):
    """
    The same, with bodies in files.
    """

    store_options = {"store": "disk"}

    @inlineCallbacks
    def test_large_body_streams_from_its_file(self):
        body = bytes(range(256)) * 4096 * 2
        yield self.startWith(cacheable(body=body))
        yield get(self.port)
        status, headers, served = yield get(self.port)
        self.assertEqual((status, served), (200, body))
        self.assertEqual(headers[b"content-length"], [b"%d" % (len(body),)])
        status, _, part = yield get(self.port, extra=b"Range: bytes=100000-300000\r\n")
        self.assertEqual((status, part), (206, body[100000:300001]))
        self.assertEqual(len(self.backend.requests), 1)


class DiskCoalescingTests(CoalescingTests):
    store_options = {"store": "disk"}


def scripted(status: int = 200, body: bytes = b"hello", fields=()):
    """
    An origin answer with C{status} and the raw C{(name, value)} fields,
    each its own field line (repeated names included).
    """

    def answer(request):
        request.setResponseCode(status)
        for name, value in fields:
            request.responseHeaders.addRawHeader(name, value)
        return body

    return answer


class ConformanceTests(CacheTestCase):
    """
    The RFC 9111 edges that outside conformance suites probe, over a real
    origin.
    """

    @inlineCallbacks
    def assertNotReused(self, answer, path=b"/page", **options):
        yield self.startWith(answer, **options)
        yield get(self.port, path)
        yield get(self.port, path)
        self.assertEqual(len(self.backend.requests), 2)

    def test_invalid_expires_is_stale(self):
        return self.assertNotReused(
            scripted(fields=[(b"Expires", b"Sun, 06 Nov 2094 08:49:37 UTC")])
        )

    def test_two_digit_year_expires_is_stale(self):
        return self.assertNotReused(
            scripted(fields=[(b"Expires", b"Sun, 06 Nov 94 08:49:37 GMT")])
        )

    def test_several_expires_lines_are_stale(self):
        future = b"Sat, 06 Nov 2094 08:49:37 GMT"
        return self.assertNotReused(
            scripted(fields=[(b"Expires", future), (b"Expires", future)])
        )

    @inlineCallbacks
    def test_valid_future_expires_is_fresh(self):
        yield self.startWith(scripted(fields=[(b"Expires", b"Sat, 06 Nov 2094 08:49:37 GMT")]))
        yield get(self.port)
        yield get(self.port)
        self.assertEqual(len(self.backend.requests), 1)

    def test_list_age_is_stale(self):
        return self.assertNotReused(
            scripted(fields=[(b"Cache-Control", b"max-age=3600"), (b"Age", b"old, 0")])
        )

    def test_stale_599_is_revalidated(self):
        return self.assertNotReused(
            scripted(599, fields=[(b"Cache-Control", b"max-age=0"), (b"ETag", b'"a"')])
        )

    @inlineCallbacks
    def test_fresh_299_is_reused(self):
        yield self.startWith(scripted(299, fields=[(b"Cache-Control", b"max-age=60")]))
        yield get(self.port)
        status, _, body = yield get(self.port)
        self.assertEqual((status, body, len(self.backend.requests)), (299, b"hello", 1))

    def test_must_understand_unknown_status_is_not_stored(self):
        return self.assertNotReused(
            scripted(299, fields=[(b"Cache-Control", b"max-age=60, must-understand, no-store")])
        )

    @inlineCallbacks
    def test_must_understand_known_status_is_stored_despite_no_store(self):
        yield self.startWith(
            scripted(fields=[(b"Cache-Control", b"max-age=60, must-understand, no-store")])
        )
        yield get(self.port)
        yield get(self.port)
        self.assertEqual(len(self.backend.requests), 1)

    @inlineCallbacks
    def assertGatewayTimeout(self, cache_control: bytes, method: bytes = b"GET"):
        """
        A stale response whose C{cache_control} forbids stale use is never
        served when the origin is gone: 504, even with stale-if-error.
        """
        yield self.startWith(
            scripted(fields=[(b"Cache-Control", cache_control), (b"ETag", b'"a"')])
        )
        yield get(self.port)
        yield self.backend_listening_stops()
        status, _, body = yield get(self.port, method=method)
        self.assertEqual(status, 504)
        self.assertNotIn(b"hello", body)

    def test_must_revalidate_is_504_when_the_origin_is_gone(self):
        return self.assertGatewayTimeout(b"max-age=0, must-revalidate, stale-if-error=600")

    def test_proxy_revalidate_is_504_when_the_origin_is_gone(self):
        return self.assertGatewayTimeout(b"max-age=0, proxy-revalidate, stale-if-error=600")

    def test_s_maxage_is_504_when_the_origin_is_gone(self):
        return self.assertGatewayTimeout(b"s-maxage=0, stale-if-error=600")

    def test_no_cache_is_504_when_the_origin_is_gone(self):
        return self.assertGatewayTimeout(b"no-cache, stale-if-error=600")

    def test_head_of_must_revalidate_is_504_when_the_origin_is_gone(self):
        return self.assertGatewayTimeout(b"max-age=0, must-revalidate", method=b"HEAD")

    @inlineCallbacks
    def test_immutable_does_not_extend_freshness(self):
        yield self.startWith(
            scripted(fields=[(b"Cache-Control", b"max-age=0, immutable"), (b"ETag", b'"a"')])
        )
        yield get(self.port)
        yield get(self.port)
        self.assertEqual(len(self.backend.requests), 2)
        self.assertEqual(self.backend.requests[1].getHeader(b"if-none-match"), b'"a"')

    @inlineCallbacks
    def test_range_of_a_stored_200(self):
        yield self.startWith(
            scripted(body=b"0123456789", fields=[(b"Cache-Control", b"max-age=60")])
        )
        yield get(self.port)
        status, headers, body = yield get(self.port, extra=b"Range: bytes=2-4\r\n")
        self.assertEqual((status, body), (206, b"234"))
        self.assertEqual(headers[b"content-range"], [b"bytes 2-4/10"])
        self.assertEqual(headers[b"content-length"], [b"3"])
        self.assertEqual(len(self.backend.requests), 1)
