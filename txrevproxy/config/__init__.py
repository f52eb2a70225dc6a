"""
The configuration: the model (L{txrevproxy.config.model}), loading and
validation of the TOML file (L{load_config}, L{parse_config}), and the one
error they raise (L{ConfigError}).
"""

from __future__ import annotations

from .load import ConfigError, load_config, parse_config
from .model import BackendServer, Config, Listener, Route, ServerSettings, Upstream

__all__ = [
    "BackendServer",
    "Config",
    "ConfigError",
    "Listener",
    "Route",
    "ServerSettings",
    "Upstream",
    "load_config",
    "parse_config",
]
