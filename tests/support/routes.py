"""
Building one route from a configuration snippet.
"""

from __future__ import annotations

from .configs import document, parse


def route(text: str):
    return parse(document(route=text)).routes[0]
