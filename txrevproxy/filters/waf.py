"""
C{type = "waf"}: deny rules on what a request says (its method, path,
query, header values, user agent), and an opt-in list of the user agents
of well-known attack scanners.

Each rule names a field and a C{regex} (searched) or a C{contains}
substring (case-insensitive); the path and query are matched as the client
sent them and percent-decoded, so an encoded attack does not slip by.
The first rule that fires answers the request (C{403} by default), and
every block is logged with the rule's name, the client and the request.
"""

from __future__ import annotations

import re
from typing import Any, Callable, Optional, Pattern, Tuple
from urllib.parse import unquote_to_bytes

import attr
from twisted.logger import Logger
from zope.interface import implementer

from ..config.schema import MODEL_DEFAULT, Field, Table, array_of, describe, expected
from ..config.values import boolean, integer
from ..interfaces import Answer, IFilter
from .client import client_address

log = Logger()

#: Substrings of the user agents of scanners and attack tools.
SCANNERS = (
    "sqlmap",
    "nikto",
    "nmap",
    "masscan",
    "zgrab",
    "nuclei",
    "dirbuster",
    "gobuster",
    "feroxbuster",
    "ffuf",
    "wfuzz",
    "wpscan",
    "acunetix",
    "netsparker",
    "nessus",
    "openvas",
    "w3af",
    "arachni",
    "havij",
    "commix",
    "skipfish",
    "whatweb",
    "jaeles",
    "zmeu",
)

_FIELD = re.compile(
    r"(method|path|query|uri|user_agent|header:[!#$%&'*+.^_`|~0-9A-Za-z-]+)\Z"
)


@attr.s(frozen=True, auto_attribs=True)
class Rule:
    name: str
    field: str
    pattern: Pattern[bytes]


def _field(value: Any) -> str:
    if not isinstance(value, str) or not _FIELD.match(value):
        raise expected(
            'one of "method", "path", "query", "uri", "user_agent" or "header:NAME"',
            value,
        )
    return value


def _text(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise expected("a non-empty string", value)
    return value


@attr.s(frozen=True, auto_attribs=True)
class _RuleOptions:
    field: str
    regex: Optional[str] = None
    contains: Optional[str] = None
    name: Optional[str] = None
    index: int = 0

    def rule(self) -> Rule:
        if self.regex is not None:
            pattern = re.compile(self.regex.encode("utf-8"))
        else:
            pattern = re.compile(
                re.escape(self.contains.encode("utf-8")), re.IGNORECASE
            )
        return Rule(self.name or "rules[%d]" % (self.index,), self.field, pattern)


def _one_test(arguments):
    if ("regex" in arguments) == ("contains" in arguments):
        yield ("", "needs exactly one of regex and contains")
    elif "regex" in arguments:
        try:
            re.compile(arguments["regex"].encode("utf-8"))
        except re.error as error:
            yield (
                ".regex",
                "invalid regular expression %s: %s"
                % (describe(arguments["regex"]), error),
            )


RULE = Table(
    _RuleOptions,
    {
        "field": Field(_field),
        "regex": Field(_text, default=MODEL_DEFAULT),
        "contains": Field(_text, default=MODEL_DEFAULT),
        "name": Field(_text, default=MODEL_DEFAULT),
    },
    checks=(_one_test,),
)


@attr.s(frozen=True, auto_attribs=True)
class Options:
    rules: Tuple[_RuleOptions, ...] = ()
    block_scanners: bool = False
    status: int = 403


def _something_to_do(arguments):
    if not arguments.get("rules") and not arguments.get("block_scanners"):
        yield ("", "needs rules or block_scanners = true")


OPTIONS = Table(
    Options,
    {
        "rules": Field(
            array_of(RULE, indexed=True, what="an array of rule tables"), default=[]
        ),
        "block_scanners": Field(boolean, default=False),
        "status": Field(integer(400, 499), default=403),
    },
    checks=(_something_to_do,),
)


def _getter(field: str) -> Callable[[Any], Tuple[bytes, ...]]:
    """
    The values of a request that a rule on C{field} is matched against.
    """
    if field == "method":
        return lambda request: (request.method,)
    if field == "path":
        return lambda request: _both(request.path)
    if field == "query":
        return lambda request: _both(request.uri.partition(b"?")[2])
    if field == "uri":
        return lambda request: _both(request.uri)
    name = b"user-agent" if field == "user_agent" else field[7:].lower().encode("ascii")
    return lambda request: tuple(request.requestHeaders.getRawHeaders(name, ()))


def _both(raw: bytes) -> Tuple[bytes, ...]:
    if b"%" not in raw and b"+" not in raw:
        return (raw,)
    return (raw, unquote_to_bytes(raw.replace(b"+", b" ")))


@implementer(IFilter)
class WAF:
    def __init__(self, options: Options) -> None:
        rules = [each.rule() for each in options.rules]
        if options.block_scanners:
            scanners = b"|".join(re.escape(name.encode("ascii")) for name in SCANNERS)
            rules.append(
                Rule("scanner", "user_agent", re.compile(scanners, re.IGNORECASE))
            )
        self._rules = tuple((rule, _getter(rule.field)) for rule in rules)
        self._refusal = Answer(options.status)

    def matching_rule(self, request) -> Optional[Rule]:
        """
        The first rule that fires for C{request}, or L{None}.
        """
        for rule, values in self._rules:
            search = rule.pattern.search
            for value in values(request):
                if search(value):
                    return rule
        return None

    def request(self, request) -> Optional[Answer]:
        rule = self.matching_rule(request)
        if rule is None:
            return None
        log.info(
            "waf: blocked {method} {uri} from {client} (request {request_id}): "
            "rule {rule} on {field}",
            method=request.method.decode("latin-1"),
            uri=request.uri.decode("latin-1"),
            client=client_address(request),
            request_id=request.request_id.decode("latin-1"),
            rule=rule.name,
            field=rule.field,
        )
        return self._refusal

    def response(self, request, status, headers) -> None:
        return None


def configure(options, context) -> WAF:
    return WAF(OPTIONS(options))
