"""
The C{{name}} variables of header rules and redirects, and the templates
that use them.

A template is parsed once, when the configuration is loaded; expanding it
for a request joins precomputed byte strings with the few variables it
names, so a template without variables costs nothing per request.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Tuple, Union

import attr

from ..http.target import request_host

#: Every variable, with what it expands to for a request.
VARIABLES: Dict[str, Callable[..., bytes]] = {
    "client_ip": lambda request: request.connection.client_ip,
    "host": request_host,
    "method": lambda request: request.method,
    "path": lambda request: request.path,
    "query": lambda request: request.uri.partition(b"?")[2],
    "request_id": lambda request: request.request_id,
    "scheme": lambda request: request.site.scheme,
    "uri": lambda request: request.uri,
}

_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


@attr.s(frozen=True, auto_attribs=True)
class Template:
    """
    A text with C{{name}} variables; C{{{} and C{}}} stand for braces.

    @ivar text: the template as written in the configuration.
    @ivar parts: literal byte strings and the functions of the variables,
        in order.
    """

    text: str
    parts: Tuple[Union[bytes, Callable[..., bytes]], ...] = attr.ib(
        eq=False, repr=False
    )

    @classmethod
    def parse(cls, text: str) -> "Template":
        """
        @raise ValueError: with a sentence, for an unknown variable, a lone
            brace, or a character no header value may hold.
        """
        if any(c in text for c in "\r\n\x00"):
            raise ValueError("line breaks and NUL characters are not allowed")
        parts = []
        literal = []
        position = 0
        for match in _TOKEN.finditer(text):
            literal.append(text[position : match.start()])
            position = match.end()
            token = match.group(0)
            if token in ("{{", "}}"):
                literal.append(token[0])
            elif match.group(1) is None:
                raise ValueError(
                    'a lone "%s" (write "%s%s" for a brace)' % (token, token, token)
                )
            elif match.group(1) not in VARIABLES:
                raise ValueError(
                    "unknown variable {%s} (known: %s)"
                    % (
                        match.group(1),
                        ", ".join("{%s}" % (n,) for n in sorted(VARIABLES)),
                    )
                )
            else:
                parts.append("".join(literal).encode("utf-8"))
                literal = []
                parts.append(VARIABLES[match.group(1)])
        literal.append(text[position:])
        parts.append("".join(literal).encode("utf-8"))
        return cls(text, tuple(part for part in parts if part))

    def expand(self, request) -> bytes:
        """
        The template's bytes for C{request}.
        """
        return b"".join(
            part if part.__class__ is bytes else part(request) for part in self.parts
        )
