"""
The C{[admin]} table: the admin API's endpoint.
"""

from __future__ import annotations

from .model import AdminSettings
from .schema import MODEL_DEFAULT, Field, Table
from .values import endpoint, token

ADMIN = Table(
    AdminSettings,
    {
        "endpoint": Field(endpoint, default="tcp:9901:interface=127.0.0.1"),
        "token": Field(token, default=MODEL_DEFAULT),
    },
)
