"""
Tests for L{txrevproxy.config}: loading the TOML file, every key's
conversion and default, and the problems reported with their key paths.
"""

from __future__ import annotations

import ipaddress
import re
import sys

import attr
import pytest

import txrevproxy.config
from txrevproxy.config import (
    BackendServer,
    Config,
    ConfigError,
    Listener,
    Route,
    ServerSettings,
    Upstream,
    admin,
    listeners,
    load,
    load_config,
    log,
    model,
    parse_config,
    server,
    upstreams,
)
from txrevproxy.config.caches import CACHE
from txrevproxy.config.routes import ROUTE

from ..support.configs import document, parse, problems

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib


APP = (BackendServer("http://127.0.0.1:9001", "http", "127.0.0.1", 9001),)


# The whole configuration


def test_minimal_configuration_has_the_documented_defaults():
    config = parse(document())
    assert config == Config(
        server=ServerSettings(trusted_proxies=(), max_request_body=0, keepalive_timeout=75.0),
        listeners={"web": Listener("web", "tcp:8080")},
        upstreams={
            "app": Upstream(
                "app",
                APP,
                balance="round_robin",
                connect_timeout=5.0,
                response_timeout=60.0,
                idle_timeout=30.0,
                max_idle_connections=1024,
                preserve_host=True,
                tunnel_idle_timeout=3600.0,
            )
        },
        routes=(Route(0, "app", "/", (), None),),
        source=None,
    )


def test_schema_defaults_match_model_defaults():
    """
    The schema writes its defaults as in the file; they must convert to the
    model's own defaults, so code that builds the model directly (tests,
    the runtime) behaves like a loaded file.
    """
    config = parse(document())
    assert config.server == ServerSettings()
    assert config.upstreams["app"] == Upstream("app", APP)
    assert config.routes == (Route(0, "app"),)


@pytest.mark.parametrize(
    "table, model_class, not_keys",
    [
        (server.SERVER, model.ServerSettings, set()),
        (log.LOG, model.LogSettings, set()),
        (admin.ADMIN, model.AdminSettings, set()),
        (listeners.LISTENER, model.Listener, {"name"}),
        (upstreams.UPSTREAM, model.Upstream, {"name"}),
        (upstreams.STICKY, model.Sticky, set()),
        (upstreams.HEALTH, model.HealthCheck, set()),
        (upstreams.OUTLIER, model.OutlierDetection, set()),
        (ROUTE, model.Route, {"index"}),
        (CACHE, model.CacheSettings, {"name"}),
        (load.CONFIG, model.Config, {"source", "document"}),
    ],
)
def test_every_model_attribute_has_a_key(table, model_class, not_keys):
    """
    A field added to the model without a key in the schema could never be
    configured.
    """
    keys = {field.attribute or key for key, field in table.fields.items()}
    assert keys | not_keys == {a.name for a in attr.fields(model_class)}


def test_model_classes_are_re_exported():
    for name in ["Config", "ServerSettings", "Listener", "Upstream", "BackendServer", "Route"]:
        assert getattr(txrevproxy.config, name) is getattr(model, name)


def test_source_is_kept():
    config = parse_config(tomllib.loads(document()), source="proxy.toml")
    assert config.source == "proxy.toml"


def test_full_configuration():
    config = parse(
        """
        [server]
        trusted_proxies = ["127.0.0.1", "10.0.0.0/8", "::1", "fd00::/8"]
        max_request_body = "10MiB"
        keepalive_timeout = "2m"

        [listeners.web]
        endpoint = "tcp:8080:interface=127.0.0.1"

        [listeners.local]
        endpoint = "unix:/run/txrevproxy.sock"

        [upstreams.app]
        servers = [
          { url = "http://127.0.0.1:9001" },
          { url = "http://[::1]:9002/" },
          { url = "http://App.Example.TEST" },
        ]
        balance = "round_robin"
        connect_timeout = "250ms"
        response_timeout = "1m30s"
        idle_timeout = "10s"
        max_idle_connections = 0
        preserve_host = false
        tunnel_idle_timeout = "1d"

        [upstreams.static]
        servers = [{ url = "http://127.0.0.1:9003" }]

        [[routes]]
        upstream = "app"

        [[routes]]
        path = "/static/"
        host = ["Shop.Example.TEST", "*.cdn.example.test"]
        upstream = "static"
        preserve_host = true
        """
    )
    assert config.server == ServerSettings(
        (
            ipaddress.ip_network("127.0.0.1/32"),
            ipaddress.ip_network("10.0.0.0/8"),
            ipaddress.ip_network("::1/128"),
            ipaddress.ip_network("fd00::/8"),
        ),
        10 * 1024 * 1024,
        120.0,
    )
    assert config.listeners == {
        "web": Listener("web", "tcp:8080:interface=127.0.0.1"),
        "local": Listener("local", "unix:/run/txrevproxy.sock"),
    }
    assert config.upstreams["app"] == Upstream(
        "app",
        (
            BackendServer("http://127.0.0.1:9001", "http", "127.0.0.1", 9001),
            BackendServer("http://[::1]:9002/", "http", "::1", 9002),
            BackendServer("http://App.Example.TEST", "http", "app.example.test", 80),
        ),
        balance="round_robin",
        connect_timeout=0.25,
        response_timeout=90.0,
        idle_timeout=10.0,
        max_idle_connections=0,
        preserve_host=False,
        tunnel_idle_timeout=86400.0,
    )
    assert config.routes == (
        Route(0, "app"),
        Route(1, "static", "/static", ("shop.example.test", "*.cdn.example.test"), True),
    )


# One key at a time: (document pieces, attribute getter, expected value)


@pytest.mark.parametrize(
    "pieces, get, value",
    [
        ({"server": "max_request_body = 0"}, lambda c: c.server.max_request_body, 0),
        ({"server": 'max_request_body = "0"'}, lambda c: c.server.max_request_body, 0),
        ({"server": "max_request_body = 1048576"}, lambda c: c.server.max_request_body, 1048576),
        ({"server": 'max_request_body = "64KiB"'}, lambda c: c.server.max_request_body, 65536),
        ({"server": 'max_request_body = "10MB"'}, lambda c: c.server.max_request_body, 10**7),
        ({"server": 'keepalive_timeout = "1.5s"'}, lambda c: c.server.keepalive_timeout, 1.5),
        ({"server": "trusted_proxies = []"}, lambda c: c.server.trusted_proxies, ()),
        ({"server": ""}, lambda c: c.server.forwarded, "off"),
        ({"server": 'forwarded = "add"'}, lambda c: c.server.forwarded, "add"),
        (
            {"server": 'trusted_proxies = ["192.0.2.7"]'},
            lambda c: c.server.trusted_proxies,
            (ipaddress.ip_network("192.0.2.7/32"),),
        ),
        ({"upstream": 'servers = [{ url = "http://b" }]'}, lambda c: c.upstreams["app"].servers[0].port, 80),
        ({"upstream": 'servers = [{ url = "http://b:80/" }]'}, lambda c: c.upstreams["app"].servers[0].authority, "b"),
        ({"upstream": 'servers = [{ url = "HTTP://[::1]:8080" }]'}, lambda c: c.upstreams["app"].servers[0].authority, "[::1]:8080"),
        ({"route": 'upstream = "app"\npath = "/"'}, lambda c: c.routes[0].path, "/"),
        ({"route": 'upstream = "app"\npath = "/api"'}, lambda c: c.routes[0].path, "/api"),
        ({"route": 'upstream = "app"\npath = "/api/"'}, lambda c: c.routes[0].path, "/api"),
        ({"route": 'upstream = "app"\npath = "//api//v1/"'}, lambda c: c.routes[0].path, "/api/v1"),
        ({"route": 'upstream = "app"\npath = "/caf%C3%A9"'}, lambda c: c.routes[0].path, "/caf%C3%A9"),
        ({"route": 'upstream = "app"\nhost = "Example.TEST."'}, lambda c: c.routes[0].hosts, ("example.test",)),
        ({"route": 'upstream = "app"\nhost = "*.Example.test"'}, lambda c: c.routes[0].hosts, ("*.example.test",)),
        ({"route": 'upstream = "app"\nhost = ["a.test", "A.test", "b.test"]'}, lambda c: c.routes[0].hosts, ("a.test", "b.test")),
        ({"route": 'upstream = "app"\nhost = "bücher.example"'}, lambda c: c.routes[0].hosts, ("xn--bcher-kva.example",)),
        ({"route": 'upstream = "app"\nhost = "192.0.2.1"'}, lambda c: c.routes[0].hosts, ("192.0.2.1",)),
        ({"route": 'upstream = "app"\nhost = "[0:0::1]"'}, lambda c: c.routes[0].hosts, ("[::1]",)),
        ({"route": 'upstream = "app"\nhost = "_acme.example"'}, lambda c: c.routes[0].hosts, ("_acme.example",)),
        ({"route": 'upstream = "app"\npreserve_host = false'}, lambda c: c.routes[0].preserve_host, False),
    ],
)
def test_key(pieces, get, value):
    assert get(parse(document(**pieces))) == value


# Problems: (document pieces, every problem expected)

PROBLEMS = [
    # [server]
    (
        {"server": "trusted_proxies = \"10.0.0.0/8\""},
        ['server.trusted_proxies: expected an array of networks such as ["10.0.0.0/8"], got "10.0.0.0/8"'],
    ),
    (
        {"server": 'trusted_proxies = ["10.0.0.1/8", "nope", 10]'},
        [
            'server.trusted_proxies[0]: "10.0.0.1/8" has host bits set; did you mean "10.0.0.0/8"?',
            'server.trusted_proxies[1]: expected a network such as "10.0.0.0/8" or "::1", got "nope"',
            'server.trusted_proxies[2]: expected a network such as "10.0.0.0/8" or "::1", got 10',
        ],
    ),
    (
        {"server": 'max_request_body = "10m"'},
        [
            'server.max_request_body: expected a size such as "512", "64KiB" or "10MB" '
            '(units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got "10m"'
        ],
    ),
    ({"server": "max_request_body = -1"}, ["server.max_request_body: must not be negative, got -1"]),
    (
        {"server": 'forwarded = "yes"'},
        ['server.forwarded: unknown value "yes"; expected one of "off", "add"'],
    ),
    ({"server": "forwarded = true"}, ['server.forwarded: expected one of "off", "add", got true']),
    (
        {"server": "max_request_body = 1.5"},
        ['server.max_request_body: expected a size such as "64KiB" or a number of bytes, got 1.5'],
    ),
    (
        {"server": "max_request_body = true"},
        ['server.max_request_body: expected a size such as "64KiB" or a number of bytes, got true'],
    ),
    (
        {"server": "keepalive_timeout = 75"},
        ['server.keepalive_timeout: expected a duration such as "5s", got 75'],
    ),
    (
        {"server": 'keepalive_timeout = "0s"'},
        ['server.keepalive_timeout: must be longer than zero, got "0s"'],
    ),
    (
        {"server": 'keepalive_timeout = "75"'},
        [
            'server.keepalive_timeout: expected a duration such as "250ms", "5s", "2m", '
            '"1h30m" or "7d", got "75"'
        ],
    ),
    # [listeners.NAME]
    ({"listener": ""}, ["listeners.web.endpoint: required key is missing"]),
    (
        {"listener": 'endpoint = "tcp:abc"'},
        [
            'listeners.web.endpoint: invalid server endpoint "tcp:abc": '
            "invalid literal for int() with base 10: 'abc'"
        ],
    ),
    (
        {"listener": 'endpoint = "carrier-pigeon:8080"'},
        [
            'listeners.web.endpoint: invalid server endpoint "carrier-pigeon:8080": '
            "Unknown endpoint type: 'carrier-pigeon'"
        ],
    ),
    (
        {"listener": 'endpoint = "tcp:70000"'},
        ['listeners.web.endpoint: invalid server endpoint "tcp:70000": port 70000 is out of range'],
    ),
    (
        {"listener": "endpoint = 8080"},
        ['listeners.web.endpoint: expected a server endpoint description such as "tcp:8080", got 8080'],
    ),
    (
        {"extra": '[listeners."my web"]\nendpoint = "tcp:8081"'},
        ['listeners."my web": a name may only contain letters, digits, _ and -'],
    ),
    # [upstreams.NAME]
    ({"upstream": ""}, ["upstreams.app.servers: required key is missing"]),
    ({"upstream": "servers = []"}, ["upstreams.app.servers: must not be empty"]),
    (
        {"upstream": 'servers = "http://127.0.0.1:9001"'},
        ['upstreams.app.servers: expected an array of tables with a url, got "http://127.0.0.1:9001"'],
    ),
    (
        {"upstream": 'servers = ["http://127.0.0.1:9001"]'},
        ['upstreams.app.servers[0]: expected a table, got "http://127.0.0.1:9001"'],
    ),
    ({"upstream": "servers = [{}]"}, ["upstreams.app.servers[0].url: required key is missing (or dns, a name whose addresses are the servers, or srv, a name whose SRV records are)"]),
    (
        {"upstream": 'servers = [{ url = "ftp://127.0.0.1:9001" }]'},
        ['upstreams.app.servers[0].url: only http:// and https:// backends are supported, got "ftp://127.0.0.1:9001"'],
    ),
    (
        {"upstream": 'servers = [{ url = "127.0.0.1:9001" }]'},
        ['upstreams.app.servers[0].url: expected a URL such as "http://127.0.0.1:9001", got "127.0.0.1:9001"'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://127.0.0.1:9001/app" }]'},
        [
            'upstreams.app.servers[0].url: "http://127.0.0.1:9001/app": a backend URL has no '
            "path (requests keep their own path)"
        ],
    ),
    (
        {"upstream": 'servers = [{ url = "http://127.0.0.1/?a=b" }]'},
        ['upstreams.app.servers[0].url: "http://127.0.0.1/?a=b": a backend URL has no query or fragment'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://127.0.0.1#top" }]'},
        ['upstreams.app.servers[0].url: "http://127.0.0.1#top": a backend URL has no query or fragment'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://me:secret@127.0.0.1" }]'},
        ['upstreams.app.servers[0].url: "http://me:secret@127.0.0.1": a backend URL has no user or password'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://127.0.0.1:0" }]'},
        ['upstreams.app.servers[0].url: "http://127.0.0.1:0": the port must be a number from 1 to 65535'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://127.0.0.1:http" }]'},
        ['upstreams.app.servers[0].url: "http://127.0.0.1:http": the port must be a number from 1 to 65535'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://::1:9001" }]'},
        [
            'upstreams.app.servers[0].url: "http://::1:9001": an IPv6 address must be in '
            "brackets, as in http://[::1]:9001"
        ],
    ),
    (
        {"upstream": 'servers = [{ url = "http://[::g]:9001" }]'},
        ['upstreams.app.servers[0].url: "::g" is not a valid IPv6 address'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://:9001" }]'},
        ['upstreams.app.servers[0].url: "http://:9001" has no host'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://bad..name" }]'},
        ['upstreams.app.servers[0].url: "bad..name" is not a valid host name'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://127.0.0.1:9001", weigth = 2 }]'},
        ['upstreams.app.servers[0].weigth: unknown key; did you mean "weight"?'],
    ),
    (
        {
            "upstream": 'servers = [{ url = "http://127.0.0.1:9001" }, '
            '{ url = "http://127.0.0.1:9002" }, { url = "HTTP://127.0.0.1:9001/" }]'
        },
        ["upstreams.app.servers[2].url: same backend as servers[0] (HTTP://127.0.0.1:9001/)"],
    ),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\nbalance = "least_connection"'},
        ['upstreams.app.balance: unknown value "least_connection"; expected one of "hash", "least_connections", "random_two_choices", "round_robin", "weighted_round_robin"'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\nconnect_timeout = 5'},
        ['upstreams.app.connect_timeout: expected a duration such as "5s", got 5'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\nresponse_timeout = "0ms"'},
        ['upstreams.app.response_timeout: must be longer than zero, got "0ms"'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\nidle_timeout = "30 s"'},
        [
            'upstreams.app.idle_timeout: expected a duration such as "250ms", "5s", "2m", '
            '"1h30m" or "7d", got "30 s"'
        ],
    ),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\ntunnel_idle_timeout = true'},
        ['upstreams.app.tunnel_idle_timeout: expected a duration such as "5s", got true'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\nmax_idle_connections = -1'},
        ["upstreams.app.max_idle_connections: must be at least 0, got -1"],
    ),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\nmax_idle_connections = "32"'},
        ['upstreams.app.max_idle_connections: expected an integer, got "32"'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\nmax_idle_connections = true'},
        ["upstreams.app.max_idle_connections: expected an integer, got true"],
    ),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\npreserve_host = "yes"'},
        ['upstreams.app.preserve_host: expected true or false, got "yes"'],
    ),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\npreserve_host = 1'},
        ["upstreams.app.preserve_host: expected true or false, got 1"],
    ),
    # [[routes]]
    ({"route": ""}, ["routes[0]: a route needs one of upstream, upstreams, redirect or respond"]),
    ({"route": 'upstream = ""'}, ['routes[0].upstream: expected a name, got ""']),
    ({"route": 'upstream = "nosuch"'}, ['routes[0].upstream: no upstream named "nosuch"']),
    ({"route": 'upstream = "ap"'}, ['routes[0].upstream: no upstream named "ap"; did you mean "app"?']),
    ({"route": 'upstrem = "app"'}, [
        'routes[0].upstrem: unknown key; did you mean "upstream"?',
    ]),
    ({"route": 'upstream = "app"\npath = "api"'}, ['routes[0].path: a path must start with "/", got "api"']),
    ({"route": 'upstream = "app"\npath = ""'}, ['routes[0].path: a path must start with "/", got ""']),
    ({"route": 'upstream = "app"\npath = 1'}, ['routes[0].path: expected a path such as "/api", got 1']),
    (
        {"route": 'upstream = "app"\npath = "/a b"'},
        [
            'routes[0].path: "/a b": a path cannot contain spaces, control or non-ASCII '
            "characters (percent-encode them)"
        ],
    ),
    (
        {"route": 'upstream = "app"\npath = "/café"'},
        [
            'routes[0].path: "/café": a path cannot contain spaces, control or non-ASCII '
            "characters (percent-encode them)"
        ],
    ),
    (
        {"route": 'upstream = "app"\npath = "/api?x=1"'},
        ['routes[0].path: "/api?x=1": a path prefix has no query or fragment'],
    ),
    (
        {"route": 'upstream = "app"\npath = "/api/../admin"'},
        ['routes[0].path: "/api/../admin": "." and ".." segments are not allowed'],
    ),
    ({"route": 'upstream = "app"\nhost = ""'}, ["routes[0].host: empty host name"]),
    ({"route": 'upstream = "app"\nhost = []'}, ["routes[0].host: must not be empty"]),
    (
        {"route": 'upstream = "app"\nhost = 5'},
        ["routes[0].host: expected a host name or an array of host names, got 5"],
    ),
    (
        {"route": 'upstream = "app"\nhost = "example.test:8080"'},
        [
            'routes[0].host: "example.test:8080": a route\'s host has no port (a route '
            "matches its host on every listener)"
        ],
    ),
    (
        {"route": 'upstream = "app"\nhost = ["ok.test", "a b.test", "", 7]'},
        [
            'routes[0].host[1]: "a b.test": a host name cannot contain spaces',
            "routes[0].host[2]: empty host name",
            "routes[0].host[3]: expected a host name, got 7",
        ],
    ),
    (
        {"route": 'upstream = "app"\nhost = "a.*.test"'},
        ['routes[0].host: "a.*.test": a wildcard must be the whole left-most label, as in "*.example.test"'],
    ),
    (
        {"route": 'upstream = "app"\nhost = "*"'},
        ['routes[0].host: "*": a wildcard must be the whole left-most label, as in "*.example.test"'],
    ),
    (
        {"route": 'upstream = "app"\nhost = "*example.test"'},
        [
            'routes[0].host: "*example.test": a wildcard must be the whole left-most label, '
            'as in "*.example.test"'
        ],
    ),
    ({"route": 'upstream = "app"\nhost = "a/b"'}, ['routes[0].host: "a/b" is not a valid host name']),
    (
        {"route": 'upstream = "app"\npreserve_host = "no"'},
        ['routes[0].preserve_host: expected true or false, got "no"'],
    ),
    (
        {"extra": '[[routes]]\nupstream = "app"\npath = "/"'},
        ['routes[1].path: "/" is already routed by routes[0]'],
    ),
    (
        {
            "route": 'upstream = "app"\npath = "/api/"\nhost = ["a.test", "b.test"]',
            "extra": '[[routes]]\nupstream = "app"\npath = "/api"\nhost = "B.test"',
        },
        ['routes[1].path: "/api" for host "b.test" is already routed by routes[0]'],
    ),
    # Hiding the backend
    (
        {"server": 'pass_backend_banners = "yes"'},
        ['server.pass_backend_banners: expected true or false, got "yes"'],
    ),
    (
        {"route": 'upstream = "app"\npass_backend_banners = 1'},
        ["routes[0].pass_backend_banners: expected true or false, got 1"],
    ),
    (
        {"server": "server_header = true"},
        ['server.server_header: expected a Server value such as "txrevproxy", or false, got true'],
    ),
    (
        {"server": 'server_header = "evil\\r\\nX: 1"'},
        [
            'server.server_header: expected a Server value such as "txrevproxy", '
            'or false, got "evil\\r\\nX: 1"'
        ],
    ),
    # Unknown keys and tables
    ({"extra": "[logs]\naccess = \"-\""}, ['logs: unknown key; did you mean "log"?']),
    ({"server": "keepalive = \"5s\""}, ['server.keepalive: unknown key; did you mean "keepalive_timeout"?']),
    ({"listener": 'endpoint = "tcp:8080"\ntsl = "default"'}, ['listeners.web.tsl: unknown key; did you mean "tls"?']),
    (
        {"upstream": 'servers = [{ url = "http://b" }]\nconect_timeout = "1s"'},
        ['upstreams.app.conect_timeout: unknown key; did you mean "connect_timeout"?'],
    ),
    ({"route": 'upstream = "app"\nhosts = "a.test"'}, ['routes[0].hosts: unknown key; did you mean "host"?']),
]


@pytest.mark.parametrize("pieces, expected", PROBLEMS)
def test_problem(pieces, expected):
    assert problems(document(**pieces)) == expected


@pytest.mark.parametrize(
    "data, expected",
    [
        ({}, [
            "listeners: at least one [listeners.NAME] table is required",
            "upstreams: at least one [upstreams.NAME] table is required",
            "routes: at least one [[routes]] table is required",
        ]),
        (
            {"server": 5, "listeners": {}, "upstreams": [], "routes": []},
            [
                "server: expected a table, got 5",
                "listeners: at least one table such as [listeners.web] is required",
                "upstreams: expected a table of named tables such as [upstreams.app], got an array",
                "routes: must not be empty",
            ],
        ),
        (
            {"listeners": {"web": "tcp:8080"}, "upstreams": {"app": {}}, "routes": {"upstream": "app"}},
            [
                'listeners.web: expected a table, got "tcp:8080"',
                "upstreams.app.servers: required key is missing",
                "routes: expected an array of [[routes]] tables, got a table",
            ],
        ),
    ],
)
def test_problems_of_the_whole_document(data, expected):
    with pytest.raises(ConfigError) as raised:
        parse_config(data)
    assert raised.value.problems == expected


def test_every_problem_is_reported_at_once():
    found = problems(
        """
        [server]
        max_request_body = "lots"
        keepalive_timeout = 75

        [listeners.web]
        endpoint = "tcp:abc"

        [upstreams.app]
        servers = [{ url = "ftp://127.0.0.1" }, { url = "http://127.0.0.1:9002" }]
        balance = "fastest"

        [[routes]]
        upstream = "api"
        path = "api"

        [[routes]]
        upstream = "app"
        host = "*.*.test"
        """
    )
    assert found == [
        'server.max_request_body: expected a size such as "512", "64KiB" or "10MB" '
        '(units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB), got "lots"',
        'server.keepalive_timeout: expected a duration such as "5s", got 75',
        'listeners.web.endpoint: invalid server endpoint "tcp:abc": '
        "invalid literal for int() with base 10: 'abc'",
        'upstreams.app.servers[0].url: only http:// and https:// backends are supported, got "ftp://127.0.0.1"',
        'upstreams.app.balance: unknown value "fastest"; expected one of "hash", "least_connections", "random_two_choices", "round_robin", "weighted_round_robin"',
        'routes[0].path: a path must start with "/", got "api"',
        'routes[1].host: "*.*.test": a wildcard must be the whole left-most label, as in "*.example.test"',
        'routes[0].upstream: no upstream named "api"; did you mean "app"?',
    ]


def test_config_error_text_is_the_problems_one_per_line():
    error = ConfigError(["a: one", "b: two"], source="proxy.toml")
    assert str(error) == "a: one\nb: two"
    assert error.problems == ["a: one", "b: two"]
    assert error.source == "proxy.toml"


# Files


def test_load_config(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(document(route='upstream = "app"\nhost = "bücher.example"'), encoding="utf-8")
    config = load_config(str(path))
    assert config.source == str(path)
    assert config.routes[0].hosts == ("xn--bcher-kva.example",)


def test_load_config_problems_carry_the_source(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(document(route='upstream = "nosuch"'))
    with pytest.raises(ConfigError) as raised:
        load_config(str(path))
    assert raised.value.problems == ['routes[0].upstream: no upstream named "nosuch"']
    assert raised.value.source == str(path)


def test_missing_file(tmp_path):
    path = str(tmp_path / "nope.toml")
    with pytest.raises(ConfigError) as raised:
        load_config(path)
    assert raised.value.problems == [
        "%s: cannot read the configuration file: No such file or directory" % (path,)
    ]


def test_directory_instead_of_file(tmp_path):
    with pytest.raises(ConfigError) as raised:
        load_config(str(tmp_path))
    assert raised.value.problems == [
        "%s: cannot read the configuration file: Is a directory" % (tmp_path,)
    ]


@pytest.mark.parametrize(
    "text, line",
    [
        ('[listeners.web]\nendpoint = "tcp:8080\n', 2),
        ("[server]\n\nkeepalive_timeout = 5s\n", 3),
        ("[server]\n[server]\n", 2),
    ],
)


def test_toml_syntax_error(tmp_path, text, line):
    """
    A syntax error is one problem: the file, line and column (as compilers
    write them, so editors can jump there), then the parser's own words.
    The words differ between tomllib and tomli versions, so only their
    presence is checked.
    """
    path = tmp_path / "proxy.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_config(str(path))
    [problem] = raised.value.problems
    assert re.match(r"%s:%d:[0-9]+: invalid TOML: [A-Z]" % (re.escape(str(path)), line), problem)
    assert "(at line" not in problem


def test_not_utf8(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_bytes(b'[server]\n# caf\xe9\n')
    with pytest.raises(ConfigError) as raised:
        load_config(str(path))
    assert raised.value.problems == ["%s: not UTF-8 text (byte 14)" % (path,)]


@pytest.mark.parametrize(
    "server, route, expected",
    [
        ("", "", (False, None, None)),
        ('server_header = "txrevproxy"\npass_backend_banners = true', "", (True, "txrevproxy", None)),
        ('server_header = ""', "pass_backend_banners = false", (False, None, False)),
    ],
)
def test_banner_settings(server, route, expected):
    config = parse(document(server=server, route='upstream = "app"\n' + route))
    assert (
        config.server.pass_backend_banners,
        config.server.server_header,
        config.routes[0].pass_backend_banners,
    ) == expected
