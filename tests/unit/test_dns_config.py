"""
Tests for the configuration of backends found in the DNS: the C{dns} and
C{srv} forms of a server entry, C{resolvers} (an upstream's and
C{[server]}'s) and C{dns_min_ttl} / C{dns_max_ttl}, each problem with its
key path.
"""

from __future__ import annotations

import pytest

from txrevproxy.config.dump import dump_config
from txrevproxy.config.model import BackendServer

from ..support.configs import document, parse, problems


def test_dns_and_srv_entries_beside_a_url():
    config = parse(
        document(
            server='resolvers = ["10.0.0.53", "[2001:db8::53]:5353"]',
            upstream="""
            servers = [
              { url = "http://127.0.0.1:9001" },
              { dns = "App.Internal.", port = 8080, weight = 2, backup = true },
              { srv = "_https._tcp.app.internal", scheme = "https", verify = false },
            ]
            resolvers = ["127.0.0.1:5353"]
            dns_min_ttl = "1s"
            dns_max_ttl = "1m"
            """,
        )
    )
    upstream = config.upstreams["app"]
    assert upstream.servers[1:] == (
        BackendServer(
            "http://app.internal:8080",
            "http",
            "app.internal",
            8080,
            weight=2,
            backup=True,
            lookup="dns",
        ),
        BackendServer(
            "https://_https._tcp.app.internal",
            "https",
            "_https._tcp.app.internal",
            0,
            verify=False,
            lookup="srv",
        ),
    )
    assert upstream.lookups == upstream.servers[1:]
    assert upstream.resolvers == (("127.0.0.1", 5353),)
    assert (upstream.dns_min_ttl, upstream.dns_max_ttl) == (1.0, 60.0)
    assert config.server.resolvers == (("10.0.0.53", 53), ("2001:db8::53", 5353))


def test_defaults_use_the_system_resolver_and_clamp_from_5s_to_5m():
    upstream = parse(
        document(upstream='servers = [{ dns = "app.internal", port = 80 }]')
    ).upstreams["app"]
    assert upstream.resolvers is None
    assert (upstream.dns_min_ttl, upstream.dns_max_ttl) == (5.0, 300.0)
    assert upstream.servers[0].scheme == "http"


@pytest.mark.parametrize(
    "servers, expected",
    [
        (
            '{ url = "http://a:1", dns = "a" }',
            ["upstreams.app.servers[0].dns: only one of url, dns, srv, not url and dns together"],
        ),
        (
            '{ dns = "app.internal" }',
            [
                "upstreams.app.servers[0].port: required with dns (the A and "
                "AAAA records give no port)"
            ],
        ),
        (
            '{ srv = "_http._tcp.app", weight = 2 }',
            [
                "upstreams.app.servers[0].weight: unknown key (known keys: ca, "
                "drain, max_connections, scheme, srv, tls_server_name, verify)"
            ],
        ),
        (
            '{ dns = "app", port = 80, verify = false }',
            ['upstreams.app.servers[0].verify: only meaningful for an https:// backend, got "http"'],
        ),
        (
            '{ dns = "not a name", port = 80 }',
            ['upstreams.app.servers[0].dns: "not a name": a host name cannot contain spaces'],
        ),
        (
            '{ dns = "app", port = 80, scheme = "ftp" }',
            ['upstreams.app.servers[0].scheme: unknown value "ftp"; expected one of "http", "https"'],
        ),
        (
            '{ dns = "app", port = 80 }, { dns = "app", port = 80 }',
            ["upstreams.app.servers[1].dns: same backend as servers[0] (http://app:80)"],
        ),
    ],
)
def test_server_entry_problems(servers, expected):
    assert problems(document(upstream="servers = [%s]" % (servers,))) == expected


@pytest.mark.parametrize(
    "resolvers, expected",
    [
        (
            '["dns.internal:53"]',
            'expected an address such as "127.0.0.1:5353" or "[::1]:53", got '
            '"dns.internal:53" (not an IP address)',
        ),
        ('["::1"]', '"::1": an IPv6 address must be in brackets, as in "[::1]:53"'),
        ('["127.0.0.1:0"]', '"127.0.0.1:0": the port must be a number from 1 to 65535'),
        ("[53]", 'expected an address such as "127.0.0.1:5353" or "[::1]:53", got 53'),
    ],
)
def test_resolver_problems_in_an_upstream_and_in_server(resolvers, expected):
    servers = 'servers = [{ dns = "app", port = 80 }]\n'
    assert problems(document(upstream=servers + "resolvers = %s" % (resolvers,))) == [
        "upstreams.app.resolvers[0]: " + expected
    ]
    assert problems(document(server="resolvers = %s" % (resolvers,))) == [
        "server.resolvers[0]: " + expected
    ]


def test_the_ceiling_is_not_below_the_floor():
    assert problems(
        document(
            upstream='servers = [{ dns = "app", port = 80 }]\n'
            'dns_min_ttl = "1m"\ndns_max_ttl = "30s"'
        )
    ) == ["upstreams.app.dns_max_ttl: must not be shorter than dns_min_ttl"]


def test_the_effective_configuration_fills_in_each_form_s_defaults(tmp_path):
    path = tmp_path / "proxy.toml"
    path.write_text(
        document(
            upstream='servers = [{ dns = "app", port = 80 }, { srv = "_http._tcp.app" }]'
        )
    )
    assert (
        'servers = [{ dns = "app", port = 80, scheme = "http", weight = 1, '
        'max_connections = 0, drain = false, backup = false }, { srv = "_http._tcp.app", '
        'scheme = "http", max_connections = 0, drain = false }]'
    ) in dump_config(str(path))[1]
