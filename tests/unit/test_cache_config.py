"""
The C{[caches.NAME]} tables and a route's C{cache} key.
"""

from __future__ import annotations

import pytest

from txrevproxy.config import load_config
from txrevproxy.config.model import CacheSettings

from ..support.configs import document, parse, problems


def test_cache_table_and_route_key():
    config = parse(
        document(
            route='upstream = "app"\ncache = "pages"',
            extra='[caches.pages]\nmax_size = "1MiB"\nmax_object_size = "64KiB"\n'
            'default_ttl = "5m"\nstore_set_cookie = true',
        )
    )
    assert config.routes[0].cache == "pages"
    assert config.caches == {
        "pages": CacheSettings(
            "pages",
            max_size=1024 * 1024,
            max_object_size=64 * 1024,
            default_ttl=300.0,
            store_set_cookie=True,
        )
    }


def test_disk_path_is_taken_from_the_configuration_directory(tmp_path):
    source = tmp_path / "proxy.toml"
    source.write_text(document(extra='[caches.big]\nstore = "disk"\npath = "cache/big"'))
    config = load_config(str(source))
    assert config.caches["big"].path == str(tmp_path / "cache" / "big")


def test_cache_defaults_match_the_model():
    config = parse(document(extra="[caches.pages]"))
    assert config.caches["pages"] == CacheSettings("pages")
    assert config.routes[0].cache is None


@pytest.mark.parametrize(
    "route, extra, expected",
    [
        (
            'upstream = "app"\ncache = "page"',
            "[caches.pages]",
            ['routes[0].cache: no cache named "page"; did you mean "pages"?'],
        ),
        ('upstream = "app"\ncache = "pages"', "", ['routes[0].cache: no cache named "pages"']),
        (
            'respond = { status = 200 }\ncache = "pages"',
            "[caches.pages]",
            ["routes[0].cache: only a route with an upstream can use it"],
        ),
        (
            'upstream = "app"',
            '[caches.pages]\nmax_size = "1KiB"\nmax_object_size = "2KiB"',
            ["caches.pages.max_object_size: must not be larger than max_size"],
        ),
        (
            'upstream = "app"',
            '[caches.pages]\nstore = "redis"',
            ['caches.pages.store: unknown value "redis"; expected one of "memory", "disk"'],
        ),
        (
            'upstream = "app"',
            '[caches.pages]\nstore = "disk"',
            ['caches.pages.path: store = "disk" needs the directory of its files'],
        ),
        (
            'upstream = "app"',
            '[caches.pages]\npath = "cache"',
            ['caches.pages.path: only meaningful with store = "disk"'],
        ),
        (
            'upstream = "app"',
            '[caches.pages]\nstore = "redis:nope"\nbroadcast = "redis:nope"',
            [
                'caches.pages.store: no [redis.nope] table; add one with its url',
                'caches.pages.broadcast: no [redis.nope] table; add one with its url',
            ],
        ),
        (
            'upstream = "app"',
            '[caches.pages]\nbroadcast = "shared"',
            [
                'caches.pages.broadcast: expected "local" or "redis:NAME" (a [redis.NAME] '
                'table), got "shared"'
            ],
        ),
        (
            'upstream = "app"',
            '[redis.shared]\nurl = "redis://127.0.0.1"\n\n'
            '[caches.pages]\nstore = "redis:shared"\npath = "cache"',
            ['caches.pages.path: only meaningful with store = "disk"'],
        ),
        (
            'upstream = "app"',
            '[caches.pages]\ndefault_ttl = "0s"',
            ['caches.pages.default_ttl: must be longer than zero, got "0s"'],
        ),
    ],
)
def test_cache_problems(route, extra, expected):
    assert problems(document(route=route, extra=extra)) == expected


def test_redis_store_broadcasts_through_its_table_unless_told_otherwise():
    redis = '[redis.shared]\nurl = "redis://127.0.0.1"\n\n[redis.other]\nurl = "redis://h"\n\n'
    config = parse(
        document(
            extra=redis + '[caches.pages]\nstore = "redis:shared"\nredis_max_object_size = "1MiB"\n\n'
            '[caches.local]\nbroadcast = "redis:other"\n\n'
            '[caches.both]\nstore = "redis:shared"\nbroadcast = "redis:other"'
        )
    )
    pages, local, both = (config.caches[name] for name in ("pages", "local", "both"))
    assert (pages.redis_store, pages.broadcast_store) == ("shared", "shared")
    assert pages.redis_max_object_size == 1024 * 1024
    assert (local.store, local.redis_store, local.broadcast_store) == ("memory", None, "other")
    assert (both.redis_store, both.broadcast_store) == ("shared", "other")
    assert config.caches["pages"].broadcast is None


def test_targets_are_lower_cased_in_priority_order():
    config = parse(
        document(
            extra='[caches.pages]\ntargets = ["TxRevProxy-Cache-Control", "CDN-Cache-Control"]\n'
            'remove_targeted = ["txrevproxy-cache-control"]'
        )
    )
    settings = config.caches["pages"]
    assert settings.targets == ("txrevproxy-cache-control", "cdn-cache-control")
    assert settings.remove_targeted == ("txrevproxy-cache-control",)


def test_no_targets_turns_targeted_cache_control_off():
    assert parse(document(extra="[caches.pages]\ntargets = []")).caches["pages"].targets == ()


@pytest.mark.parametrize(
    "extra, expected",
    [
        (
            'targets = "cdn-cache-control"',
            [
                'caches.pages.targets: expected an array of field names such as '
                '["cdn-cache-control"], got "cdn-cache-control"'
            ],
        ),
        (
            'targets = ["cdn cache control"]',
            [
                'caches.pages.targets[0]: expected a header name such as '
                '"X-Client-Subject", got "cdn cache control"'
            ],
        ),
        ("targets = [1]", ['caches.pages.targets[0]: expected a header name such as "X-Client-Subject", got 1']),
        (
            'targets = ["cdn-cache-control", "CDN-Cache-Control"]',
            ['caches.pages.targets: lists "cdn-cache-control" twice'],
        ),
        (
            'remove_targeted = ["txrevproxy-cache-control"]',
            [
                'caches.pages.remove_targeted[0]: "txrevproxy-cache-control" is not in '
                "targets, so this cache never uses it"
            ],
        ),
    ],
)
def test_target_problems(extra, expected):
    assert problems(document(extra="[caches.pages]\n" + extra)) == expected
