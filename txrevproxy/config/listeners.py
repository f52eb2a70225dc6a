"""
The C{[listeners.NAME]} tables: an endpoint each, with its TLS block,
filters, redirect to HTTPS, PROXY protocol and error pages.
"""

from __future__ import annotations

from .filters import filter_names
from .model import Listener
from .pages import error_pages
from .schema import MODEL_DEFAULT, Field, Table
from .values import boolean, endpoint, hsts_policy, name

LISTENER = Table(
    Listener,
    {
        "endpoint": Field(endpoint),
        "tls": Field(name, default=MODEL_DEFAULT),
        "http2": Field(boolean, default=True),
        "h2c": Field(boolean, default=False),
        "h2c_upgrade": Field(boolean, default=False),
        "redirect_to_https": Field(name, default=MODEL_DEFAULT),
        "hsts": Field(hsts_policy, default=MODEL_DEFAULT),
        "filters": Field(filter_names, default=MODEL_DEFAULT),
        "proxy_protocol": Field(boolean, default=False),
        "error_pages": Field(error_pages, default=MODEL_DEFAULT),
    },
)
