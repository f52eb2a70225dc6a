"""
The C{[log]} table: the access log, and the format of the event log.
"""

from __future__ import annotations

from .model import LogSettings
from .schema import MODEL_DEFAULT, Field, Table
from .values import access_log, one_of

LOG = Table(
    LogSettings,
    {
        "access": Field(access_log, default="-"),
        "format": Field(one_of("combined", "json"), default="combined"),
        "events": Field(one_of("text", "json"), default=MODEL_DEFAULT),
    },
)
