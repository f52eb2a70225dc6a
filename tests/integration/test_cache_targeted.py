"""
Targeted cache control (RFC 9213) over loopback: a real origin sends
CDN-Cache-Control beside Cache-Control, raw clients ask the proxy.
"""

from __future__ import annotations

from twisted.internet.defer import inlineCallbacks

from ..support.cache_cases import CacheTestCase, cacheable, get


class TargetedTests(CacheTestCase):
    @inlineCallbacks
    def test_cdn_max_age_stores_what_cache_control_says_not_to(self):
        yield self.startWith(
            cacheable(cache_control=b"no-store", CDN_Cache_Control=b"max-age=60")
        )
        status, headers, body = yield get(self.port)
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=uri-miss; stored"])
        status, headers, body = yield get(self.port)
        self.assertEqual((status, body), (200, b"hello"))
        self.assertEqual(len(self.backend.requests), 1)
        self.assertTrue(headers[b"cache-status"][0].startswith(b"txrevproxy; hit; ttl="))
        # The next hops get the origin's fields: browsers still must not
        # store it, and a CDN in front still gets its own field.
        self.assertEqual(headers[b"cache-control"], [b"no-store"])
        self.assertEqual(headers[b"cdn-cache-control"], [b"max-age=60"])

    @inlineCallbacks
    def test_cdn_no_store_is_not_stored_whatever_cache_control_allows(self):
        yield self.startWith(
            cacheable(cache_control=b"public, max-age=60", CDN_Cache_Control=b"no-store")
        )
        yield get(self.port)
        status, headers, body = yield get(self.port)
        self.assertEqual((status, body), (200, b"hello"))
        self.assertEqual(len(self.backend.requests), 2)
        self.assertEqual(headers[b"cache-status"], [b"txrevproxy; fwd=uri-miss"])
        self.assertEqual(headers[b"cache-control"], [b"public, max-age=60"])

    @inlineCallbacks
    def test_an_invalid_cdn_field_falls_back_to_cache_control(self):
        yield self.startWith(
            cacheable(cache_control=b"no-store", CDN_Cache_Control=b'max-age="60"')
        )
        yield get(self.port)
        yield get(self.port)
        self.assertEqual(len(self.backend.requests), 2)

    @inlineCallbacks
    def test_without_targets_cdn_cache_control_is_not_obeyed(self):
        yield self.startWith(
            cacheable(cache_control=b"no-store", CDN_Cache_Control=b"max-age=60"), targets=()
        )
        yield get(self.port)
        yield get(self.port)
        self.assertEqual(len(self.backend.requests), 2)

    @inlineCallbacks
    def test_the_first_target_wins_and_is_removed_when_configured(self):
        yield self.startWith(
            cacheable(
                cache_control=b"no-store",
                CDN_Cache_Control=b"no-store",
                TxRevProxy_Cache_Control=b"max-age=60",
            ),
            targets=("txrevproxy-cache-control", "cdn-cache-control"),
            remove_targeted=("txrevproxy-cache-control",),
        )
        for expected in (b"txrevproxy; fwd=uri-miss; stored", b"txrevproxy; hit"):
            status, headers, body = yield get(self.port)
            self.assertEqual((status, body), (200, b"hello"))
            self.assertTrue(headers[b"cache-status"][0].startswith(expected))
            self.assertNotIn(b"txrevproxy-cache-control", headers)
            self.assertEqual(headers[b"cdn-cache-control"], [b"no-store"])
        self.assertEqual(len(self.backend.requests), 1)
        # The stored response keeps the field its freshness comes from.
        stored, _ = self.cache.select(b"http://shop.test/page", [])
        self.assertIn(b"max-age=60", dict((k.lower(), v) for k, v in stored.headers)[b"txrevproxy-cache-control"])
