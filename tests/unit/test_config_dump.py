"""
Tests for L{txrevproxy.config.dump} and L{txrevproxy.config.writer}: the
effective configuration of C{txrevproxy check --dump}, written as TOML that
reads back to the same configuration.
"""

from __future__ import annotations

import datetime
import shutil
import sys

import attr
import pytest

from txrevproxy.config import load_config
from txrevproxy.config.dump import REDACTED, dump_config, redacted
from txrevproxy.config.writer import dumps

from ..support.processes import SOURCE_ROOT

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

MAIN = r"""
include = ["conf.d/*.toml"]

[server]
trusted_proxies = ["127.0.0.1", "10.0.0.0/8"]
workers = 1
server_header = "${SERVER_NAME:-txrevproxy}"

[log]
access = "logs/access.log"
format = "json"

[admin]
token = "${ADMIN_TOKEN}"

[listeners.web]
endpoint = "tcp:8080:interface=127.0.0.1"
redirect_to_https = "secure"

[listeners.secure]
endpoint = "tcp:8443"
tls = "default"
hsts = "max-age=31536000"
error_pages = { 503 = "pages/503.html" }

[upstreams.app]
servers = [
  { url = "http://127.0.0.1:9001", weight = 3 },
  { url = "http://[::1]:9002", backup = true },
]
balance = "hash"
hash_key = "header:X-User"
queue_timeout = "1.5s"
[upstreams.app.health]
path = "/healthz"
statuses = ["2xx", 404]

[[routes]]
name = "root"
upstream = "app"
filters = ["limit", "keyed"]
cache = "pages"

[[routes]]
path = "/old/"
redirect = { to = "https://{host}/new{path}", status = 308 }

[[routes]]
host = ["Shop.Example.test", "*.cdn.example.test"]
path = "/u/"
upstream = "app"
methods = ["get", "HEAD"]
headers = { "X-Env" = "beta", "User-Agent" = { regex = "^Mozilla" } }
match = { query = { v = { present = true } } }
priority = 5
rewrite = { pattern = '^/u/(?P<id>\d+)$', replacement = "/users/${id}?a=$$1" }
request_headers = { set = { "X-Quote" = "a \"b\" \\ c\u0001", Authorization = "Bearer abc", "X-Api-Key" = "api-s3cret", "X-Auth-Token" = "auth-s3cret" }, remove = ["Cookie"] }
response_headers = { add = { "X-Frame-Options" = "DENY" } }
cookie_domain = { "backend.internal" = "shop.example.test" }
cookie_path = { "/app/" = "/" }
redirect_rewrite = [{ from = "http://backend.internal:8080/", to = "/" }, "default"]
intercept_errors = [502, 500]
error_pages = { 502 = "pages/503.html" }
read_timeout = "250ms"

[filters.limit]
type = "rate_limit"
rate = "100/s"
burst = 20

[filters.keyed]
type = "api_key"
keys = ["key-one-12345", "key-two-12345"]

[caches.pages]
max_size = "64MiB"
"""

INCLUDED = """
[tls.default]
certificates = [{ names = ["localhost"], cert = "certs/localhost.pem", key = "certs/localhost-key.pem" }]
min_version = "1.2"

[[routes]]
path = "/fixed"
respond = { status = 200, body = "ok\\n", content_type = "text/plain" }
"""

ENVIRON = {"ADMIN_TOKEN": "admin-s3cret"}


@pytest.fixture
def configuration(tmp_path):
    """
    A configuration of most kinds of key, in a main file and a file in
    C{conf.d/} with certificates beside it; the main file's path.
    """
    (tmp_path / "conf.d" / "certs").mkdir(parents=True)
    (tmp_path / "pages").mkdir()
    (tmp_path / "pages" / "503.html").write_text("<p>later</p>")
    for name in ("localhost.pem", "localhost-key.pem"):
        shutil.copy(str(SOURCE_ROOT / "certs" / name), str(tmp_path / "conf.d" / "certs"))
    (tmp_path / "conf.d" / "tls.toml").write_text(INCLUDED)
    main = tmp_path / "proxy.toml"
    main.write_text(MAIN)
    return main


def test_dump_reads_back_to_an_equal_configuration(configuration):
    config, text = dump_config(str(configuration), show_secrets=True, environ=ENVIRON)
    dumped = configuration.parent / "dumped.toml"
    dumped.write_text(text)
    again = load_config(str(dumped), environ={})
    assert attr.evolve(again, source=None) == attr.evolve(config, source=None)
    assert config.admin.token == "admin-s3cret"


def test_dump_writes_defaults_absolute_paths_and_substituted_values(configuration):
    _, text = dump_config(str(configuration), show_secrets=True, environ=ENVIRON)
    document = tomllib.loads(text)
    assert "include" not in document
    assert document["server"]["keepalive_timeout"] == "75s"
    assert document["server"]["server_header"] == "txrevproxy"
    assert document["upstreams"]["app"]["connect_timeout"] == "5s"
    assert document["upstreams"]["app"]["health"]["interval"] == "5s"
    certificate = document["tls"]["default"]["certificates"][0]
    assert certificate["cert"] == str(configuration.parent / "conf.d" / "certs" / "localhost.pem")
    assert document["log"]["access"] == str(configuration.parent / "logs" / "access.log")
    assert document["listeners"]["secure"]["error_pages"] == {
        "503": str(configuration.parent / "pages" / "503.html")
    }
    assert [route.get("path") for route in document["routes"]] == [
        "/",
        "/old/",
        "/u/",
        "/fixed",
    ]
    assert document["routes"][2]["rewrite"]["replacement"] == "/users/${id}?a=$$1"
    assert text.startswith("# The effective configuration of %s" % (configuration,))


def test_secrets_are_redacted_unless_asked_for(configuration):
    _, text = dump_config(str(configuration), environ=ENVIRON)
    document = tomllib.loads(text)
    assert document["admin"]["token"] == REDACTED
    assert document["filters"]["keyed"]["keys"] == [REDACTED, REDACTED]
    assert document["routes"][2]["request_headers"]["set"]["Authorization"] == REDACTED
    assert document["routes"][2]["request_headers"]["set"]["X-Quote"] != REDACTED
    assert document["routes"][2]["request_headers"]["set"]["X-Api-Key"] == REDACTED
    assert document["routes"][2]["request_headers"]["set"]["X-Auth-Token"] == REDACTED
    assert "admin-s3cret" not in text and "key-one-12345" not in text
    assert "Bearer abc" not in text and "s3cret" not in text


@pytest.mark.parametrize(
    "document",
    [
        {"a": "plain", "b": 'quote " backslash \\ tab \t del \x7f nul \x00 é'},
        {"needs quoting": {"x.y": 1, "": -2}},
        {"numbers": [0, -1, 1.5, 1e-05, 2.0, float("inf"), True, False]},
        {"nested": [{"a": [1, {"b": {}}]}, []], "empty": {}},
        {"when": datetime.date(2026, 1, 2), "time": datetime.time(3, 4, 5)},
        {"tables": {"t": {"u": {"v": 1}}, "w": 2}, "items": [{"x": 1}, {"y": {"z": [2]}}]},
    ],
)
def test_writer_output_parses_back_to_the_same_document(document):
    assert tomllib.loads(dumps(document)) == document


def test_writer_uses_headers_for_tables_and_top_level_arrays_of_tables():
    text = dumps({"server": {"workers": 2}, "upstreams": {"app": {"servers": [{"url": "u"}]}}, "routes": [{"path": "/"}]})
    assert text == (
        "[server]\nworkers = 2\n\n"
        '[upstreams.app]\nservers = [{ url = "u" }]\n\n'
        '[[routes]]\npath = "/"\n'
    )


def test_check_dump_of_a_configuration_with_problems_prints_them(tmp_path):
    from ..support.commands import run

    path = tmp_path / "proxy.toml"
    path.write_text('[admin]\ntoken = "${TXREVPROXY_UNSET_FOR_TEST}"\n')
    status, out, err = run(["check", "--dump", "--config", str(path)])
    assert (status, out) == (1, "")
    assert "admin.token: environment variable TXREVPROXY_UNSET_FOR_TEST is not set\n" in err
    assert "at least one [listeners.NAME] table is required" in err


SECRETS = """
[listeners.web]
endpoint = "tcp:8080"
[upstreams.app]
servers = [{ url = "http://127.0.0.1:9001" }]
[[routes]]
upstream = "app"
filters = ["api_key"]
[filters.api_key]
type = "oidc"
issuer = "https://id.example.test"
client_id = "proxy"
client_secret = "client-s3cret"
cookie_secrets = ["cookie-s3cret-0123456789abcdef0123456789abcdef"]
[redis.shared]
url = "redis://bob:redis-s3cret@127.0.0.1:6379/2"
[tracing]
headers = { x-honeycomb-team = "team-s3cret", Authorization = "Bearer trace-s3cret" }
"""


def test_every_kind_of_secret_is_redacted(tmp_path):
    """
    oidc's cookie secrets, a Redis URL's password and every field sent to
    the trace exporter are secrets as much as the admin token is; the
    name of a table (C{[filters.api_key]}) is not.
    """
    path = tmp_path / "proxy.toml"
    path.write_text(SECRETS)
    _, text = dump_config(str(path), environ={})
    assert "s3cret" not in text
    document = tomllib.loads(text)
    login = document["filters"]["api_key"]
    assert (login["type"], login["client_id"]) == ("oidc", "proxy")
    assert login["cookie_secrets"] == [REDACTED]
    assert document["redis"]["shared"]["url"] == "redis://bob:%s@127.0.0.1:6379/2" % (
        REDACTED,
    )
    assert set(document["tracing"]["headers"].values()) == {REDACTED}


def test_a_redis_url_without_a_password_is_kept():
    assert redacted({"url": "redis://127.0.0.1:6379/0"}, ("redis", "shared")) == {
        "url": "redis://127.0.0.1:6379/0"
    }
