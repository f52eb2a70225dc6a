"""
Targeted cache control (RFC 9213): which field's directives a cache
obeys, and what the RFC 9111 rules then decide.
"""

from __future__ import annotations

import pytest

from txrevproxy.cache import policy
from txrevproxy.cache.targeted import Targets, targeted_directives
from txrevproxy.config.model import CacheSettings

CDN = Targets((b"cdn-cache-control",))
BOTH = Targets((b"txrevproxy-cache-control", b"cdn-cache-control"))
DATE = b"Sun, 06 Nov 1994 08:49:37 GMT"


def fields(*lines: str):
    return [
        (name.strip().encode(), value.strip().encode())
        for name, _, value in (line.partition(":") for line in lines)
    ]


def lifetime(targets, *lines):
    return policy.freshness_lifetime(200, targets.rule_fields(fields(*lines)), 0.0)


def uncacheable(targets, *lines):
    return policy.uncacheable_reason(
        b"GET", [], 200, targets.rule_fields(fields(*lines)), store_set_cookie=False, heuristic=False
    )


@pytest.mark.parametrize(
    "value, expected",
    [
        (b"max-age=60", b"max-age=60"),
        (b"foobar, max-age=3600", b"max-age=3600"),
        (b"max-age=99999999999", b"max-age=99999999999"),
        (b"no-store, private, must-revalidate", b"no-store, private, must-revalidate"),
        (b'no-cache="set-cookie", private="x"', b"no-cache, private"),
        (b"stale-while-revalidate=30;x=1, stale-if-error=60, s-maxage=5", b"stale-while-revalidate=30, stale-if-error=60, s-maxage=5"),
        (b"none", b""),
        # Not a Dictionary, empty, or a known directive of the wrong type.
        (b"", None),
        (b"max-age =100", None),
        (b"max-age= 100", None),
        (b"MaX-aGe=3600", None),
        (b"max-age=10000, &&&&&", None),
        (b'max-age="10000"', None),
        (b"max-age=1.5", None),
        (b"max-age=-1", None),
        (b"max-age", None),
        (b"no-store=?0", None),
        (b"no-store=1", None),
        (b"public=yes", None),
    ],
)
def test_directives_of_a_targeted_field(value, expected):
    assert targeted_directives(value) == expected


def test_cdn_cache_control_wins_over_cache_control_and_expires():
    headers = ("Cache-Control: max-age=3600", "Expires: Sun, 06 Nov 1994 09:49:37 GMT", "Date: " + DATE.decode(), "CDN-Cache-Control: max-age=1")
    assert lifetime(CDN, *headers) == 1.0
    assert lifetime(Targets(()), *headers) == 3600.0


def test_max_age_from_the_targeted_field_sets_freshness_despite_a_past_expires():
    assert lifetime(CDN, "CDN-Cache-Control: max-age=600", "Expires: 0", "Date: " + DATE.decode()) == 600.0


def test_a_targeted_field_without_max_age_leaves_no_explicit_expiration():
    # Expires is ignored with the Cache-Control it goes with.
    assert lifetime(CDN, "CDN-Cache-Control: none", "Expires: Sun, 06 Nov 1994 09:49:37 GMT", "Date: " + DATE.decode()) == 0.0


def test_no_store_in_the_targeted_field_prevents_storage_while_cache_control_says_public():
    assert uncacheable(CDN, "Cache-Control: public, max-age=600", "CDN-Cache-Control: no-store") == "no-store"


def test_targeted_max_age_allows_storage_while_cache_control_says_no_store():
    assert uncacheable(CDN, "Cache-Control: no-store", "CDN-Cache-Control: max-age=60") is None
    assert uncacheable(Targets(()), "Cache-Control: no-store", "CDN-Cache-Control: max-age=60") == "no-store"


def test_private_in_the_targeted_field_is_not_stored():
    assert uncacheable(CDN, "CDN-Cache-Control: private", "Cache-Control: max-age=10000") == "private"


def test_no_cache_in_the_targeted_field_revalidates():
    rule_fields = CDN.rule_fields(fields("CDN-Cache-Control: no-cache", "Cache-Control: max-age=10000"))
    directives = policy.response_cache_control(rule_fields)
    assert policy.decide({}, directives, 10000.0, 1.0) == policy.REVALIDATE


def test_must_revalidate_in_the_targeted_field_forbids_stale_if_error():
    rule_fields = CDN.rule_fields(fields("CDN-Cache-Control: max-age=1, must-revalidate", "Cache-Control: stale-if-error=600"))
    directives = policy.response_cache_control(rule_fields)
    assert not policy.stale_if_error_allows({}, directives, 1.0, 5.0)


@pytest.mark.parametrize(
    "invalid",
    ["CDN-Cache-Control: max-age=10000, &&&&&", 'CDN-Cache-Control: max-age="10000"', "CDN-Cache-Control:"],
)
def test_an_invalid_targeted_field_falls_back_to_cache_control(invalid):
    assert uncacheable(CDN, invalid, "Cache-Control: no-store") == "no-store"
    assert lifetime(CDN, invalid, "Cache-Control: max-age=30") == 30.0


def test_the_first_valid_target_in_list_order_is_used():
    headers = ("CDN-Cache-Control: max-age=10", "TxRevProxy-Cache-Control: max-age=20")
    assert lifetime(BOTH, *headers) == 20.0
    assert BOTH.used(fields(*headers)) == (b"txrevproxy-cache-control", b"max-age=20")
    # An invalid first target passes the turn to the next one.
    assert lifetime(BOTH, "TxRevProxy-Cache-Control: max-age=x=", "CDN-Cache-Control: max-age=10") == 10.0


def test_fields_not_on_the_target_list_change_nothing():
    assert lifetime(CDN, "Cache-Control: max-age=30", "Other-Cache-Control: max-age=99") == 30.0


def test_several_field_lines_are_one_dictionary():
    assert CDN.used(fields("CDN-Cache-Control: max-age=60", "CDN-Cache-Control: no-store")) == (
        b"cdn-cache-control",
        b"max-age=60, no-store",
    )


def test_rule_fields_are_the_same_list_when_no_target_applies():
    headers = fields("Cache-Control: max-age=30")
    assert CDN.rule_fields(headers) is headers
    assert Targets(()).rule_fields(headers) is headers


def test_downstream_removes_only_the_used_field_and_only_when_configured():
    headers = fields("CDN-Cache-Control: max-age=10", "TxRevProxy-Cache-Control: max-age=20", "Cache-Control: no-store")
    removing = Targets(BOTH.names, frozenset([b"txrevproxy-cache-control"]))
    assert removing.downstream(headers) == fields("CDN-Cache-Control: max-age=10", "Cache-Control: no-store")
    # Not the one used: passed through.
    only_cdn = fields("CDN-Cache-Control: max-age=10", "Cache-Control: no-store")
    assert removing.downstream(only_cdn) is only_cdn
    # The one used, but not configured for removal: passed through.
    assert BOTH.downstream(headers) is headers


def test_targets_of_the_settings():
    assert Targets.of(CacheSettings("pages")) == Targets((b"cdn-cache-control",))
    settings = CacheSettings("pages", targets=("a-cache-control", "cdn-cache-control"), remove_targeted=("a-cache-control",))
    assert Targets.of(settings) == Targets((b"a-cache-control", b"cdn-cache-control"), frozenset([b"a-cache-control"]))
