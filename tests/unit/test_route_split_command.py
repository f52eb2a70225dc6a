"""
C{txrevproxy route} for a split and mirrored route: the shares, the side
an override or the sticky cookie chooses, the side shown for a draw, the
mirror, and the filters that would run.
"""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from ..support.commands import run
from ..support.processes import temporary_directory
from .test_route_command import masked

CONFIG = """\
[listeners.web]
endpoint = "tcp:8080"

[upstreams.old]
servers = [{ url = "http://127.0.0.1:9001" }]
[upstreams.new]
servers = [{ url = "http://127.0.0.1:9002" }]
[upstreams.shadow]
servers = [{ url = "http://127.0.0.1:9003" }]

[[routes]]
path = "/api/"
upstreams = [{ name = "old", weight = 90 }, { name = "new", weight = 10 }]
split_cookie = "txrevproxy_split"
split_override = { header = "X-Canary" }
mirror = "shadow"
mirror_percent = 25
filters = ["cors"]

[filters.cors]
type = "cors"
allow_origins = ["https://app.example.com"]
"""


class SplitRouteCommandTests(TestCase):
    def setUp(self):
        path = temporary_directory(self) / "proxy.toml"
        path.write_text(CONFIG)
        self.path = str(path)

    def route(self, *arguments: str) -> str:
        status, out, err = run(
            ["route", "--config", self.path, "GET", "http://localhost:8080/api/x"]
            + list(arguments)
        )
        self.assertEqual((status, err), (0, ""))
        return masked(out)

    def test_a_draw_by_weight_shows_the_shares_and_the_heaviest_side(self):
        output = self.route()
        self.assertIn(
            'route:    routes[0] (path "/api") -> upstreams "old" (weight 90), '
            '"new" (weight 10), mirror "shadow"\n',
            output,
        )
        self.assertIn(
            "filters:  cors (route) (run in this order; not run here)\n"
            "split:    old 90%, new 10%\n"
            "side:     drawn at random by weight for each request; shown: old, the heaviest\n"
            "          the txrevproxy_split cookie then keeps the client on the side drawn\n"
            "upstream: old (balance round_robin)\n"
            "backends: http://127.0.0.1:9001\n",
            output,
        )
        self.assertIn(
            "mirror:   shadow: a copy of 25% of the requests, with bodies up to 65536 "
            "bytes, within 5 s; its answers are dropped\n",
            output,
        )

    def test_the_sticky_cookie_chooses_its_side(self):
        output = self.route("-H", "Cookie: txrevproxy_split=new")
        self.assertIn("side:     new (by the sticky cookie)\nupstream: new", output)
        self.assertIn("sent to http://127.0.0.1:9002:\n", output)

    def test_the_override_header_wins_over_the_cookie(self):
        output = self.route("-H", "X-Canary: old", "-H", "Cookie: txrevproxy_split=new")
        self.assertIn("side:     old (by the override header)\nupstream: old", output)
