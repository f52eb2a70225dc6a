"""
Tests for L{txrevproxy.config.document}: C{include = ["conf.d/*.toml"]},
the merging of included files, and problems that name their file.
"""

from __future__ import annotations

import os

import pytest

from txrevproxy.config import ConfigError, load_config

MAIN = """
include = [%s]

[listeners.web]
endpoint = "tcp:8080"

[upstreams.app]
servers = [{ url = "http://127.0.0.1:9001" }]

[[routes]]
upstream = "app"
"""

API = """
[upstreams.api]
servers = [{ url = "http://127.0.0.1:9002" }]

[[routes]]
path = "/api"
upstream = "api"
"""


def tree(directory, files):
    """
    Write C{files} (relative path to text) under C{directory}; return the
    main file's path.
    """
    for name, text in files.items():
        path = directory / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(directory / "proxy.toml")


def problems_of(path, environ=None):
    with pytest.raises(ConfigError) as raised:
        load_config(path, environ={} if environ is None else environ)
    return raised.value.problems


def test_named_tables_are_added_and_routes_appended_in_include_order(tmp_path):
    main = tree(
        tmp_path,
        {
            "proxy.toml": MAIN % '"conf.d/*.toml", "extra.toml"',
            "conf.d/20-b.toml": '[[routes]]\npath = "/b"\nupstream = "app"\n',
            "conf.d/10-a.toml": API,
            "extra.toml": '[[routes]]\npath = "/extra"\nupstream = "api"\n',
        },
    )
    config = load_config(main, environ={})
    assert sorted(config.upstreams) == ["api", "app"]
    assert [(route.index, route.path) for route in config.routes] == [
        (0, "/"),
        (1, "/api"),
        (2, "/b"),
        (3, "/extra"),
    ]


def test_nested_includes_come_right_after_their_includer(tmp_path):
    main = tree(
        tmp_path,
        {
            "proxy.toml": MAIN % '"a.toml", "c.toml"',
            "a.toml": 'include = ["sub/b.toml"]\n[[routes]]\npath = "/a"\nupstream = "app"\n',
            "sub/b.toml": '[[routes]]\npath = "/b"\nupstream = "app"\n',
            "c.toml": '[[routes]]\npath = "/c"\nupstream = "app"\n',
        },
    )
    assert [route.path for route in load_config(main, environ={}).routes] == [
        "/",
        "/a",
        "/b",
        "/c",
    ]


def test_single_tables_come_from_any_one_file(tmp_path):
    main = tree(
        tmp_path,
        {
            "proxy.toml": MAIN % '"admin.toml"',
            "admin.toml": '[admin]\ntoken = "${TOKEN}"\n',
        },
    )
    assert load_config(main, environ={"TOKEN": "t0k"}).admin.token == "t0k"


def test_a_name_defined_twice_names_both_files(tmp_path):
    main = tree(
        tmp_path,
        {
            "proxy.toml": MAIN % '"conf.d/*.toml"' + "\n[server]\n",
            "conf.d/a.toml": API + '\n[upstreams.app]\nservers = [{ url = "http://127.0.0.1:1" }]\n',
            "conf.d/b.toml": (
                '[upstreams.api]\nservers = [{ url = "http://127.0.0.1:9004" }]\n'
                "\n[server]\nworkers = 2\n"
            ),
        },
    )
    a, b = os.path.join(str(tmp_path), "conf.d", "a.toml"), os.path.join(
        str(tmp_path), "conf.d", "b.toml"
    )
    assert problems_of(main) == [
        "%s: upstreams.app: already defined in %s" % (a, main),
        "%s: upstreams.api: already defined in %s" % (b, a),
        "%s: server: already defined in %s" % (b, main),
    ]


def test_problems_in_an_included_file_name_it(tmp_path):
    main = tree(
        tmp_path,
        {
            "proxy.toml": MAIN % '"api.toml"',
            "api.toml": API.replace('"api"\n', '"apii"\n')
            + '\n[upstreams.bad]\nservers = []\n\n[admin]\ntoken = "${NOPE}"\n',
        },
    )
    api = os.path.join(str(tmp_path), "api.toml")
    assert problems_of(main) == [
        "%s: admin.token: environment variable NOPE is not set" % (api,),
        "%s: upstreams.bad.servers: must not be empty" % (api,),
        '%s: routes[1].upstream: no upstream named "apii"; did you mean "api"?' % (api,),
    ]


def test_relative_paths_are_taken_from_the_file_that_names_them(tmp_path):
    main = tree(
        tmp_path,
        {
            "proxy.toml": MAIN % '"conf.d/pages.toml"' + '\n[log]\naccess = "logs/access.log"\n',
            "conf.d/pages.toml": (
                '[[routes]]\npath = "/p"\nupstream = "app"\n'
                'error_pages = { 502 = "pages/502.html" }\n'
            ),
            "conf.d/pages/502.html": "<p>down</p>",
        },
    )
    config = load_config(main, environ={})
    page = config.routes[1].error_pages[0]
    assert page.path == str(tmp_path / "conf.d" / "pages" / "502.html")
    assert page.body == b"<p>down</p>"
    assert config.log.access == str(tmp_path / "logs" / "access.log")


def test_a_missing_relative_path_names_the_included_file(tmp_path):
    main = tree(
        tmp_path,
        {
            "proxy.toml": MAIN % '"conf.d/pages.toml"',
            "conf.d/pages.toml": (
                '[[routes]]\npath = "/p"\nupstream = "app"\n'
                'error_pages = { 502 = "pages/502.html" }\n'
            ),
        },
    )
    [problem] = problems_of(main)
    assert problem == (
        "%s: routes[1].error_pages.502: cannot read pages/502.html: No such file or directory"
        % (os.path.join(str(tmp_path), "conf.d", "pages.toml"),)
    )


def test_include_loops_and_repeats_are_problems(tmp_path):
    main = tree(
        tmp_path,
        {
            "proxy.toml": MAIN % '"a.toml", "*.toml"',
            "a.toml": 'include = ["proxy.toml"]\n',
        },
    )
    a = os.path.join(str(tmp_path), "a.toml")
    assert problems_of(main) == [
        "%s: include[0]: %s is included already (an include loop)" % (a, main),
        "include[1]: %s is included already, by another include" % (a,),
        "include[1]: %s is included already (an include loop)" % (main,),
    ]


def test_a_glob_that_matches_nothing_is_allowed_but_a_missing_file_is_not(tmp_path):
    main = tree(tmp_path, {"proxy.toml": MAIN % '"conf.d/*.toml"'})
    assert len(load_config(main, environ={}).routes) == 1
    main = tree(tmp_path, {"proxy.toml": MAIN % '"extra.toml"'})
    assert problems_of(main) == [
        "include[0]: no such file: %s" % (os.path.join(str(tmp_path), "extra.toml"),)
    ]


def test_an_unreadable_included_file_is_one_problem_among_others(tmp_path):
    main = tree(
        tmp_path,
        {
            "proxy.toml": MAIN % '"bad.toml"' + '\n[admin]\nendpoint = 5\n',
            "bad.toml": "[upstreams.x\n",
        },
    )
    bad = os.path.join(str(tmp_path), "bad.toml")
    first, second = problems_of(main)
    assert first.startswith(bad + ":1:") and "invalid TOML" in first
    assert second.startswith("admin.endpoint: ")


def test_include_patterns_may_use_variables_and_must_be_strings(tmp_path):
    main = tree(
        tmp_path,
        {"proxy.toml": MAIN % '"${CONF}/*.toml"', "conf.d/api.toml": API},
    )
    assert sorted(load_config(main, environ={"CONF": "conf.d"}).upstreams) == ["api", "app"]
    assert problems_of(main) == ["include[0]: environment variable CONF is not set"]
    main = tree(tmp_path, {"proxy.toml": MAIN.replace("[%s]", '"conf.d"')})
    assert problems_of(main) == [
        'include: expected an array of file patterns such as ["conf.d/*.toml"], got "conf.d"'
    ]


def test_a_top_level_key_of_the_wrong_type_in_an_included_file(tmp_path):
    main = tree(
        tmp_path,
        {"proxy.toml": MAIN % '"x.toml"', "x.toml": 'upstreams = 3\nroutes = "r"\n'},
    )
    x = os.path.join(str(tmp_path), "x.toml")
    assert problems_of(main) == [
        "%s: upstreams: expected a table of named tables such as [upstreams.app], got 3"
        % (x,),
        '%s: routes: expected an array of [[routes]] tables, got "r"' % (x,),
    ]


def test_reload_rereads_included_files(tmp_path):
    main = tree(tmp_path, {"proxy.toml": MAIN % '"conf.d/*.toml"'})
    assert len(load_config(main, environ={}).routes) == 1
    tree(tmp_path, {"conf.d/api.toml": API})
    assert len(load_config(main, environ={}).routes) == 2


def test_a_filters_files_are_taken_from_the_file_that_defines_it(tmp_path):
    main = tree(
        tmp_path,
        {
            "proxy.toml": MAIN % '"conf.d/auth.toml"',
            "conf.d/auth.toml": '[filters.auth]\ntype = "basic_auth"\nusers_file = "users.txt"\n',
            "conf.d/users.txt": "# nobody yet\n",
        },
    )
    auth = os.path.join(str(tmp_path), "conf.d", "auth.toml")
    assert problems_of(main) == [
        "%s: filters.auth.users_file: %s has no users"
        % (auth, os.path.join(str(tmp_path), "conf.d", "users.txt"))
    ]
