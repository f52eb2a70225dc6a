"""
Tests for the one-pass validation of L{txrevproxy.config.load}: every
table is converted on its own, and the checks of one table against
another, of route conflicts and of files run on every table that
converted, so that one C{txrevproxy check} lists every problem.
"""

from __future__ import annotations

from ..support.configs import document, problems

SEVERAL_STAGES = document(
    server="max_headers = 0",
    route='upstream = "app"\npath = "/a"',
    extra="""
[[routes]]
path = "/a"
upstream = "app"

[[routes]]
path = "/b"
upstream = "nosuch"

[[routes]]
path = "/c"
upstream = "app"
connect_timeout = 5
error_pages = { 502 = "absent.html" }

[listeners.secure]
endpoint = "tcp:8443"
tls = "default"

[tls.default]
certificates = [{ cert = "absent.pem", key = "absent-key.pem" }]

[filters.limit]
type = "rate_limit"
rate = "fast"
""",
)


def test_problems_of_every_stage_are_listed_in_one_pass():
    found = problems(SEVERAL_STAGES)
    stages = {
        "schema": "server.max_headers: must be at least 1, got 0",
        "a route's own key": 'routes[3].connect_timeout: expected a duration such as "5s", got 5',
        "reference": 'routes[2].upstream: no upstream named "nosuch"',
        "route conflict": 'routes[1].path: "/a" is already routed by routes[0]',
        "certificate file": "tls.default.certificates[0].cert: ",
        "filter options": "filters.limit.rate: ",
    }
    for stage, start in stages.items():
        assert any(problem.startswith(start) for problem in found), (stage, found)


def test_a_reference_to_a_table_with_problems_of_its_own_is_not_missing():
    found = problems(
        document(upstream='servers = [{ url = "ftp://x" }]', extra='[listeners.web2]\ntls = "t"\nendpoint = "tcp:1"\n[tls.t]\nmin_version = "9"\n')
    )
    assert not any("no upstream named" in problem for problem in found), found
    assert not any("no tls block named" in problem for problem in found), found
    assert any(problem.startswith("upstreams.app.servers[0].url: ") for problem in found)
    assert any(problem.startswith("tls.t.min_version: ") for problem in found)


def test_files_of_the_tables_that_converted_are_still_checked():
    found = problems(
        document(
            server="workers = 0",
            extra='[listeners.s]\nendpoint = "tcp:1"\ntls = "t"\n'
            '[tls.t]\ncertificates = [{ cert = "none.pem", key = "none-key.pem" }]\n',
        )
    )
    assert found[0] == "server.workers: must be at least 1, got 0"
    assert any(problem.startswith("tls.t.certificates[0].cert: ") for problem in found), found
