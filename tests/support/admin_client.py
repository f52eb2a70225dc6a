"""
A client of the admin API for the tests.
"""

from __future__ import annotations

import json
from pathlib import Path

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from txrevproxy.app.admin import AdminService
from txrevproxy.app.service import ProxyService
from txrevproxy.config import load_config

from .processes import temporary_directory


class AdminClient:
    """
    A proxy and its admin API started from a configuration, and requests
    to both.
    """

    def start_with(self, text: str) -> None:
        self.path = Path(temporary_directory(self)) / "proxy.toml"
        self.path.write_text(text)
        self.proxy = ProxyService(load_config(str(self.path)), reactor)
        self.proxy.startService()
        self.addCleanup(self.proxy.stopService)
        self.admin = AdminService(self.proxy, reactor)
        self.admin.startService()
        self.addCleanup(self.admin.stopService)
        self.port = self.proxy.ports[0].getHost().port
        self.admin_url = "http://127.0.0.1:%d" % (self.admin.port.getHost().port,)

    @inlineCallbacks
    def call(self, method: str, path: str, token: str = ""):
        headers = {"Authorization": ["Bearer " + token]} if token else {}
        response = yield treq.request(
            method, self.admin_url + path, headers=headers, persistent=False
        )
        body = yield treq.content(response)
        return response, body

    @inlineCallbacks
    def json(self, method: str, path: str, token: str = ""):
        response, body = yield self.call(method, path, token)
        self.assertEqual(
            response.headers.getRawHeaders("content-type"), ["application/json"]
        )
        return response.code, json.loads(body)

    @inlineCallbacks
    def proxied(self, path: str = "/"):
        response = yield treq.get(
            "http://127.0.0.1:%d%s" % (self.port, path), persistent=False
        )
        yield treq.content(response)
        return response.code
