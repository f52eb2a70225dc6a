"""
Tests for C{txrevproxy check --diff} (L{txrevproxy.tools.changes}): what a
new configuration changes, word for word: tables added, removed and
changed key by key, routes by name or by position, secrets never shown,
and what needs a restart.
"""

from __future__ import annotations

import os

from txrevproxy.config import load_config
from txrevproxy.config.dump import dumped
from txrevproxy.config.load import CONFIG
from txrevproxy.tools.changes import NAMED_TABLES, POSITION_NOTE, SINGLE_TABLES, changes

from ..support.commands import run

BASE = """
[server]
workers = {workers}
[admin]
endpoint = "{admin}"
token = "{token}"
[listeners.web]
endpoint = "{endpoint}"
[upstreams.app]
servers = [{{ url = "http://127.0.0.1:9001" }}]
{extra}
{routes}
"""

ROUTES = """
[[routes]]
upstream = "app"
"""


def text(
    directory,
    name: str,
    workers: int = 1,
    token: str = "s3cret",
    endpoint: str = "tcp:8080",
    admin: str = "tcp:9901:interface=127.0.0.1",
    extra: str = "",
    routes: str = ROUTES,
) -> str:
    """
    Write a configuration file; return its path.
    """
    path = os.path.join(str(directory), name)
    with open(path, "w") as file:
        file.write(
            BASE.format(
                workers=workers,
                token=token,
                endpoint=endpoint,
                admin=admin,
                extra=extra,
                routes=routes,
            )
        )
    return path


def without_admin(directory) -> str:
    """
    Write a configuration file without an C{[admin]} table; return its
    path.
    """
    path = os.path.join(str(directory), "bare.toml")
    with open(path, "w") as file:
        file.write(
            '[listeners.web]\nendpoint = "tcp:8080"\n'
            '[upstreams.app]\nservers = [{ url = "http://127.0.0.1:9001" }]\n' + ROUTES
        )
    return path


def diff(directory, old: dict, new: dict, show_secrets: bool = True):
    """
    The lines of L{changes} between two configurations written by L{text}.
    """
    before = load_config(text(directory, "old.toml", **old))
    after = load_config(text(directory, "new.toml", **new))
    return changes(dumped(before, show_secrets), dumped(after, show_secrets))


def test_same_configuration_has_no_changes(tmp_path):
    assert diff(tmp_path, {}, {}) == ["no changes"]


def test_tables_added_removed_and_changed_key_by_key(tmp_path):
    old = {
        "extra": '[upstreams.old]\nservers = [{ url = "http://127.0.0.1:9002" }]\n'
        "[upstreams.api]\nservers = [{ url = \"http://127.0.0.1:9003\" }]\n"
        'connect_timeout = "5s"'
    }
    new = {
        "extra": "[upstreams.api]\nservers = [{ url = \"http://127.0.0.1:9003\" }, "
        '{ url = "http://127.0.0.1:9004", weight = 2 }]\nconnect_timeout = "2s"\n'
        '[upstreams.new]\nservers = [{ url = "http://127.0.0.1:9005" }]'
    }
    assert diff(tmp_path, old, new) == [
        "upstreams.old: removed",
        "upstreams.api: changed",
        '    servers[1]: added: { url = "http://127.0.0.1:9004", weight = 2, '
        "max_connections = 0, drain = false, backup = false }",
        '    connect_timeout: "5s" -> "2s"',
        "upstreams.new: added",
        "a reload applies all of it (txrevproxy reload)",
    ]


def test_a_changed_secret_is_said_without_its_value(tmp_path):
    lines = diff(tmp_path, {}, {"token": "other"})
    assert lines[:2] == ["[admin]: changed", "    token: changed (a secret, not shown)"]
    assert not any("s3cret" in line or "other" in line for line in lines)


def test_redacted_secrets_compare_equal(tmp_path):
    """
    The running proxy's secrets are redacted, so a change to one cannot be
    seen against it.
    """
    assert diff(tmp_path, {}, {"token": "other"}, show_secrets=False) == ["no changes"]


def test_named_routes_are_compared_by_name_wherever_they_are(tmp_path):
    old = '[[routes]]\nname = "api"\npath = "/api/"\nupstream = "app"\n' + ROUTES
    new = ROUTES + '[[routes]]\nname = "api"\npath = "/v2/"\nupstream = "app"\n'
    lines = diff(tmp_path, {"routes": old}, {"routes": new})
    assert lines == [
        "routes[0]: changed",
        "    position: routes[1] -> routes[0]",
        'routes[1] (name "api"): changed',
        "    position: routes[0] -> routes[1]",
        '    path: "/api/" -> "/v2/"',
        POSITION_NOTE,
        "a reload applies all of it (txrevproxy reload)",
    ]


def test_unnamed_routes_are_compared_by_position_with_a_note(tmp_path):
    new = '[[routes]]\npath = "/api/"\nupstream = "app"\n' + ROUTES
    assert diff(tmp_path, {}, {"routes": new}) == [
        "routes[0]: changed",
        '    path: "/" -> "/api/"',
        "routes[1]: added",
        POSITION_NOTE,
        "a reload applies all of it (txrevproxy reload)",
    ]


def test_named_route_added_and_removed(tmp_path):
    old = ROUTES + '[[routes]]\nname = "old"\npath = "/old/"\nupstream = "app"\n'
    new = ROUTES + '[[routes]]\nname = "new"\npath = "/new/"\nupstream = "app"\n'
    assert diff(tmp_path, {"routes": old}, {"routes": new}) == [
        'routes[1] (name "new"): added',
        'routes[1] (name "old"): removed',
        "a reload applies all of it (txrevproxy reload)",
    ]


def test_workers_need_a_restart(tmp_path):
    assert diff(tmp_path, {}, {"workers": 2})[-4:] == [
        "    workers: 1 -> 2",
        "needs a restart (a reload would not apply it):",
        "    server.workers: changed; this needs a restart",
        "a reload applies the rest",
    ]


def test_a_moved_listener_needs_a_restart_only_with_workers(tmp_path):
    moved = {"endpoint": "tcp:8081"}
    assert diff(tmp_path, {}, moved)[-1] == "a reload applies all of it (txrevproxy reload)"
    assert diff(tmp_path, {"workers": 2}, dict(moved, workers=2))[-3:] == [
        "needs a restart (a reload would not apply it):",
        "    listeners.web.endpoint: changed; with [server] workers, adding, "
        "removing or moving a listener needs a restart",
        "a reload applies the rest",
    ]


def test_a_moved_admin_endpoint_needs_a_restart(tmp_path):
    """
    A reload would leave the admin API listening where it started, so the
    proxy refuses it.
    """
    moved = {"admin": "tcp:9902:interface=127.0.0.1"}
    # Redacted, as the running proxy's configuration is.
    assert diff(tmp_path, {}, moved, show_secrets=False)[-3:] == [
        "needs a restart (a reload would not apply it):",
        "    admin.endpoint: changed; the admin API listens on "
        "tcp:9901:interface=127.0.0.1 until a restart, which this needs",
        "a reload applies the rest",
    ]


def test_an_admin_table_added_or_removed_needs_a_restart(tmp_path):
    old = load_config(text(tmp_path, "old.toml"))
    bare = load_config(without_admin(tmp_path))
    assert changes(dumped(bare), dumped(old))[-3:-1] == [
        "needs a restart (a reload would not apply it):",
        "    admin: added; the admin API starts only at a restart",
    ]
    assert changes(dumped(old), dumped(bare))[-2] == (
        "    admin: removed; the admin API listens on "
        "tcp:9901:interface=127.0.0.1 until a restart, which this needs"
    )


def test_check_diff_prints_the_changes_and_exits_0(tmp_path):
    old = text(tmp_path, "old.toml")
    new = text(tmp_path, "new.toml", endpoint="tcp:8081")
    status, out, err = run(["check", "--config", new, "--diff", old])
    assert (status, err) == (0, "")
    assert out.splitlines()[1:] == [
        "changes from %s:" % (old,),
        "  listeners.web: changed",
        '      endpoint: "tcp:8080" -> "tcp:8081"',
        "  a reload applies all of it (txrevproxy reload)",
    ]


def test_check_diff_exits_1_when_the_new_file_has_problems(tmp_path):
    old = text(tmp_path, "old.toml")
    new = text(tmp_path, "new.toml", workers=0)
    status, out, err = run(["check", "--config", new, "--diff", old])
    assert (status, out) == (1, "")
    assert err.startswith("server.workers:")


def test_check_diff_exits_1_when_the_old_file_cannot_be_read(tmp_path):
    new = text(tmp_path, "new.toml")
    missing = os.path.join(str(tmp_path), "missing.toml")
    status, _, err = run(["check", "--config", new, "--diff", missing])
    assert status == 1
    assert err.splitlines()[-1] == "%s: cannot compare with this file" % (missing,)


def test_admin_goes_only_with_diff_of_the_running_proxy(tmp_path):
    path = text(tmp_path, "new.toml")
    status, _, err = run(["check", "--config", path, "--admin", "http://127.0.0.1:9"])
    assert (status, err) == (1, "--admin goes with --diff (without OLD)\n")


def test_diff_of_the_running_proxy_needs_an_admin_endpoint(tmp_path):
    path = without_admin(tmp_path)
    status, _, err = run(["check", "--config", path, "--diff"])
    assert (status, err) == (
        1,
        "%s: no [admin] table; give --diff OLD.toml or --admin URL\n" % (path,),
    )


def test_every_table_of_the_configuration_is_compared():
    """
    A table left out of L{SINGLE_TABLES} and L{NAMED_TABLES} would read as
    "no changes" whatever changed in it.
    """
    compared = set(SINGLE_TABLES) | set(NAMED_TABLES) | {"routes"}
    assert compared == set(CONFIG.fields)


def test_tracing_and_redis_changes_are_said(tmp_path):
    old = {"extra": '[redis.shared]\nurl = "redis://127.0.0.1:6379/0"\n[tracing]\n'}
    new = {
        "extra": '[redis.shared]\nurl = "redis://127.0.0.1:6379/1"\n'
        "[tracing]\nsample_ratio = 0.5\n"
    }
    assert diff(tmp_path, old, new) == [
        "[tracing]: changed",
        "    sample_ratio: 0.1 -> 0.5",
        "redis.shared: changed",
        '    url: "redis://127.0.0.1:6379/0" -> "redis://127.0.0.1:6379/1"',
        "a reload applies all of it (txrevproxy reload)",
    ]


def test_secrets_inside_what_is_added_or_changed_are_not_shown(tmp_path):
    """
    Secrets are found at any depth of an added value, in a Redis URL and
    under any key that ends like a secret's (oidc's C{cookie_secret}).
    """
    old = {
        "extra": '[redis.shared]\nurl = "redis://:old-s3cret@127.0.0.1:6379/0"\n'
        '[filters.login]\ntype = "oidc"\nissuer = "https://id.example.test"\n'
        'client_id = "proxy"\nclient_secret = "client-s3cret"\n'
        'cookie_secret = "cookie-s3cret-0123456789abcdef0123456789abcdef"\n'
    }
    new = {
        "extra": '[redis.shared]\nurl = "redis://:new-s3cret@127.0.0.1:6380/0"\n'
        '[filters.login]\ntype = "oidc"\nissuer = "https://id.example.test"\n'
        'client_id = "proxy"\nclient_secret = "client-s3cret"\n'
        'cookie_secret = "cookie-s3cret-fedcba9876543210fedcba9876543210"\n'
        '[tracing]\nheaders = { x-honeycomb-team = "team-s3cret" }\n',
        "routes": ROUTES + 'request_headers = { set = { Authorization = "Basic s3cret" } }\n',
    }
    lines = diff(tmp_path, old, new)
    assert not [line for line in lines if "s3cret" in line]
    assert lines[:6] == [
        "[tracing]: added",
        "filters.login: changed",
        "    cookie_secret: changed (a secret, not shown)",
        "redis.shared: changed",
        '    url: "redis://:<redacted>@127.0.0.1:6379/0" -> '
        '"redis://:<redacted>@127.0.0.1:6380/0"',
        "routes[0]: changed",
    ]
    assert lines[6] == '    request_headers: added: { set = { Authorization = "<redacted>" } }'


def test_a_secret_in_a_table_added_to_a_table_is_not_shown(tmp_path):
    old = {"extra": "[tracing]\n"}
    new = {"extra": '[tracing]\nheaders = { x-honeycomb-team = "team-s3cret" }\n'}
    assert diff(tmp_path, old, new)[:2] == [
        "[tracing]: changed",
        '    headers.x-honeycomb-team: added: "<redacted>"',
    ]


def test_keys_and_items_removed_say_what_they_were(tmp_path):
    old = {
        "extra": "[upstreams.api]\nservers = [{ url = \"http://127.0.0.1:9003\" }, "
        '{ url = "http://127.0.0.1:9004" }]\n'
        '[filters.keyed]\ntype = "api_key"\nkeys = ["key-one-12345"]\nforward = true\n'
    }
    new = {
        "extra": '[upstreams.api]\nservers = [{ url = "http://127.0.0.1:9003" }]\n'
        '[filters.keyed]\ntype = "api_key"\nkeys = ["key-one-12345"]\n'
    }
    assert diff(tmp_path, old, new)[:5] == [
        "upstreams.api: changed",
        '    servers[1]: removed (was { url = "http://127.0.0.1:9004", weight = 1, '
        "max_connections = 0, drain = false, backup = false })",
        "filters.keyed: changed",
        "    forward: removed (was true)",
        "a reload applies all of it (txrevproxy reload)",
    ]
