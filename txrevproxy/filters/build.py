"""
Making the filters of a configuration.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping

from ..config.filters import configure_filter
from ..config.model import Config


def build_filters(
    config: Config,
    reactor,
    redis: Mapping[str, object] = {},
    metrics: Any = None,
    workers: int = 1,
) -> Dict[str, object]:
    """
    The filter of each C{[filters.NAME]} table, by name, made by its type
    for this runtime (the options were checked when the configuration was
    loaded).

    @param redis: the client of each C{[redis.NAME]} table, by name.
    @param metrics: the process's metrics.
    @param workers: the processes serving this machine's listeners.
    """
    return {
        name: configure_filter(
            table, reactor, config.server, table.directory, redis, metrics, workers
        )
        for name, table in config.filters.items()
    }
