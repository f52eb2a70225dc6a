"""
Making the filters of a configuration.
"""

from __future__ import annotations

from typing import Dict

from ..config.filters import configure_filter
from ..config.model import Config


def build_filters(config: Config, reactor) -> Dict[str, object]:
    """
    The filter of each C{[filters.NAME]} table, by name, made by its type
    for this runtime (the options were checked when the configuration was
    loaded).
    """
    return {
        name: configure_filter(table, reactor, config.server, table.directory)
        for name, table in config.filters.items()
    }
