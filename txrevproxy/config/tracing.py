"""
The C{[tracing]} table: OpenTelemetry traces exported over OTLP/HTTP.
"""

from __future__ import annotations

from typing import Any, Dict, Iterable, Tuple

from .model import TracingSettings
from .schema import Field, Invalid, Problem, Table, converted_pairs, expected
from .values import duration, header_name, http_url, integer, one_of


def ratio(value: Any) -> float:
    """
    A share from 0 to 1, such as C{0.1}.
    """
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise expected("a number from 0 to 1 such as 0.1", value)
    if not 0 <= value <= 1:
        raise Invalid("must be from 0 to 1, got %r" % (value,))
    return float(value)


def _text(value: Any) -> str:
    """
    A field value: visible ASCII and inner spaces (C{"Bearer abc"}).
    """
    if (
        not isinstance(value, str)
        or not value
        or value != value.strip()
        or not all(" " <= c <= "~" for c in value)
    ):
        raise expected("printable ASCII text", value)
    return value


def export_headers(value: Any) -> Tuple[Tuple[str, str], ...]:
    """
    The fields sent with each export: C{{ Authorization = "Bearer ..." }}.
    """
    if not isinstance(value, dict):
        raise expected('a table such as { Authorization = "Bearer abc" }', value)
    return tuple(converted_pairs(value, header_name, _text))


def _batch_fits_queue(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if arguments["batch_size"] > arguments["queue_size"]:
        yield (
            ".batch_size",
            "must not be more than queue_size (%d), got %d"
            % (arguments["queue_size"], arguments["batch_size"]),
        )


TRACING = Table(
    TracingSettings,
    {
        "endpoint": Field(
            http_url("http://127.0.0.1:4318/v1/traces"),
            default="http://127.0.0.1:4318/v1/traces",
        ),
        "service_name": Field(_text, default="txrevproxy"),
        "sample_ratio": Field(ratio, default=0.1),
        "trust_incoming": Field(
            one_of("trusted_proxies", "always", "never"), default="trusted_proxies"
        ),
        "headers": Field(export_headers, default={}),
        "timeout": Field(duration, default="10s"),
        "batch_delay": Field(duration, default="5s"),
        "batch_size": Field(integer(minimum=1), default=512),
        "queue_size": Field(integer(minimum=1), default=2048),
    },
    checks=(_batch_fits_queue,),
)
