"""
The schema of a C{[[routes]]} table: what a route matches (host, path,
methods, headers, query, the matchers of installed plugins, priority), how
it rewrites what it forwards, and the answers it gives without a backend.

Regular expressions are compiled and templates parsed here, when the
configuration is loaded, so that a mistake is reported with its key path
and the hot path never compiles anything.
"""

from __future__ import annotations

import re
from typing import Any, Dict, Iterable, Tuple

from ..plugins import matcher_types
from .filters import filter_names
from .model import (
    HeaderRules,
    MatcherConfig,
    PathRegex,
    Redirect,
    RedirectRewrite,
    RedirectRule,
    Respond,
    Route,
    ValueMatch,
)
from .pages import error_pages, intercepted_statuses, route_name
from .splits import FIELDS as SPLIT_FIELDS
from .splits import MIRROR_KEYS, SPLIT_KEYS, split_problems
from .schema import (
    MODEL_DEFAULT,
    Field,
    Invalid,
    Problem,
    Table,
    array_of,
    converted_pairs,
    describe,
    expected,
    key_path,
)
from .values import (
    boolean,
    duration,
    header_name,
    host_name,
    host_names,
    integer,
    method_names,
    name,
    printable,
    route_path,
)
from .variables import Template

#: A route's C{methods} (also C{match = { methods = [...] }}).
methods = method_names(min_items=1)


def _regex(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        raise expected("a regular expression", value)
    try:
        return re.compile(value)
    except re.error as error:
        raise Invalid("invalid regular expression %s: %s" % (describe(value), error))


_VALUE_MATCH_KEYS = ("regex", "present")


def value_match(value: Any) -> ValueMatch:
    """
    What a header or query parameter must hold: a string (that exact
    value), C{{ regex = "..." }} (a value the expression is found in), or
    C{{ present = true }} / C{{ present = false }}.
    """
    if isinstance(value, str):
        return ValueMatch("exact", value=value)
    if (
        not isinstance(value, dict)
        or len(value) != 1
        or not set(value) <= set(_VALUE_MATCH_KEYS)
    ):
        raise expected(
            'a value such as "beta", { regex = "^Mozilla" } or { present = true }',
            value,
        )
    if "regex" in value:
        try:
            return ValueMatch("regex", pattern=_regex(value["regex"]))
        except Invalid as invalid:
            raise Invalid(problems=[(".regex" + p, m) for p, m in invalid.problems])
    try:
        present = boolean(value["present"])
    except Invalid as invalid:
        raise Invalid(problems=[(".present" + p, m) for p, m in invalid.problems])
    return ValueMatch("present" if present else "absent")


def _matches_table(convert_name, example: str) -> Any:
    """
    A converter of a table from names to L{value_match}es, to sorted
    C{(name, match)} pairs.
    """

    def convert(value: Any) -> Tuple[Tuple[str, ValueMatch], ...]:
        if not isinstance(value, dict) or not value:
            raise expected("a table such as %s" % (example,), value)
        pairs = dict(converted_pairs(value, convert_name, value_match))
        return tuple(sorted(pairs.items()))

    return convert


def _parameter(key: str) -> str:
    if not key:
        raise Invalid("a query parameter needs a name")
    return key


def _header(key: str) -> str:
    return header_name(key).lower()


header_matches = _matches_table(_header, '{ "X-Env" = "beta" }')
query_matches = _matches_table(_parameter, '{ "version" = "2" }')



def match_table(value: Any) -> Tuple[MatcherConfig, ...]:
    """
    A route's C{match}: C{{ TYPE = VALUE, ... }}, each C{TYPE} an installed
    L{txrevproxy.interfaces.IMatcherType} (looked up each time a
    configuration is loaded) whose C{configure} accepts C{VALUE}; sorted by
    type, so that the order written does not tell two routes apart.
    """
    if not isinstance(value, dict) or not value:
        raise expected('a table such as { cookie = { beta = "yes" } }', value)
    types = matcher_types()
    problems = []
    made = []
    for key, raw in value.items():
        path = key_path(key)
        kind = types.get(key)
        if kind is None:
            known = ", ".join('"%s"' % (known,) for known in sorted(types))
            problems.append(
                (
                    path,
                    "unknown matcher type %s; installed types: %s"
                    % (describe(key), known),
                )
            )
            continue
        try:
            made.append(MatcherConfig(key, kind.configure(raw)))
        except Invalid as invalid:
            problems.extend((path + sub, text) for sub, text in invalid.problems)
    if problems:
        raise Invalid(problems=problems)
    return tuple(sorted(made, key=lambda matcher: matcher.type))


_REPLACEMENT = re.compile(r"\$(?:(\$)|(\d)|\{(\w+)\})")


def _expansion(replacement: str) -> bytes:
    """
    A replacement in the form written (C{$1}, C{${name}}, C{$$} for a
    dollar) turned into the form of L{re.Pattern.sub}.
    """
    out = []
    position = 0
    for match in _REPLACEMENT.finditer(replacement):
        out.append(replacement[position : match.start()].replace("\\", "\\\\"))
        position = match.end()
        dollar, number, group = match.groups()
        out.append("$" if dollar else "\\g<%s>" % (number or group,))
    out.append(replacement[position:].replace("\\", "\\\\"))
    return "".join(out).encode("utf-8")


def _path_regex(pattern: Any, replacement: str) -> PathRegex:
    return PathRegex(
        re.compile(pattern.pattern.encode("utf-8")),
        replacement,
        _expansion(replacement),
    )


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise expected("a string", value)
    return value


def _groups_exist(arguments: Dict[str, Any]) -> Iterable[Problem]:
    pattern = arguments["pattern"]
    for match in _REPLACEMENT.finditer(arguments["replacement"]):
        dollar, number, group = match.groups()
        if number is not None and int(number) > pattern.groups:
            yield (
                ".replacement",
                "$%s: the pattern has %d groups" % (number, pattern.groups),
            )
        elif group is not None and not (
            group in pattern.groupindex
            or (group.isdigit() and int(group) <= pattern.groups)
        ):
            yield (".replacement", "${%s}: the pattern has no such group" % (group,))


REWRITE = Table(
    _path_regex,
    {"pattern": Field(_regex), "replacement": Field(_text)},
    checks=(_groups_exist,),
)


def template(value: Any) -> Template:
    """
    A text with C{{name}} variables (see L{txrevproxy.config.variables}).
    """
    if not isinstance(value, str):
        raise expected("a string", value)
    try:
        return Template.parse(value)
    except ValueError as error:
        raise Invalid("%s: %s" % (describe(value), error))


def _header_templates(value: Any) -> Tuple[Tuple[str, Template], ...]:
    if not isinstance(value, dict):
        raise expected('a table such as { "X-Frame-Options" = "DENY" }', value)
    return tuple(converted_pairs(value, header_name, template))


#: Headers that frame a message or describe one connection: the proxy
#: writes them itself, in both directions.
_FRAMING = frozenset(
    [
        "connection",
        "content-length",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
)


def _header_rule_checks(host_settable: bool):
    def check(arguments: Dict[str, Any]) -> Iterable[Problem]:
        for key in ("set", "add", "remove"):
            for entry in arguments.get(key, ()):
                header = entry if key == "remove" else entry[0]
                lower = header.lower()
                if lower in _FRAMING:
                    yield (
                        ".%s%s" % (key, key_path(header)),
                        "the proxy writes %s itself" % (header,),
                    )
                elif lower == "host" and not (host_settable and key == "set"):
                    yield (
                        ".%s%s" % (key, key_path(header)),
                        (
                            "a request has exactly one Host: use set"
                            if host_settable
                            else "Host is not a response header"
                        ),
                    )

    return check


def _header_rules(host_settable: bool) -> Table:
    return Table(
        HeaderRules,
        {
            "set": Field(_header_templates, default=MODEL_DEFAULT),
            "add": Field(_header_templates, default=MODEL_DEFAULT),
            "remove": Field(
                array_of(
                    header_name, what='an array of header names such as ["Server"]'
                ),
                default=MODEL_DEFAULT,
            ),
        },
        checks=(_header_rule_checks(host_settable),),
    )


def _status(low: int, high: int, *allowed: int):
    def convert(value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise expected("a status code", value)
        if allowed and value not in allowed:
            raise Invalid(
                "expected one of %s, got %d"
                % (", ".join(str(code) for code in allowed), value)
            )
        if not low <= value <= high:
            raise Invalid(
                "expected a status from %d to %d, got %d" % (low, high, value)
            )
        return value

    return convert


def _redirect_target(value: Any) -> Template:
    if value == "":
        raise Invalid("must not be empty")
    return template(value)


REDIRECT = Table(
    Redirect,
    {
        "to": Field(_redirect_target),
        "status": Field(_status(300, 399, 301, 302, 303, 307, 308), default=302),
    },
)


def _no_body_for_204_304(arguments: Dict[str, Any]) -> Iterable[Problem]:
    if arguments["status"] in (204, 304) and arguments["body"]:
        yield (".body", "a %d response has no body" % (arguments["status"],))


def _content_type(value: Any) -> str:
    if not isinstance(value, str) or not value or any(c in value for c in "\r\n\x00"):
        raise expected('a media type such as "text/html; charset=utf-8"', value)
    return value


RESPOND = Table(
    Respond,
    {
        "status": Field(_status(200, 599), default=200),
        "body": Field(_text, default=""),
        "content_type": Field(_content_type, default="text/plain; charset=utf-8"),
    },
    checks=(_no_body_for_204_304,),
)

#: The upstream's timeouts that a route may override.
TIMEOUT_KEYS = (
    "connect_timeout",
    "response_timeout",
    "read_timeout",
    "send_timeout",
    "total_timeout",
)

_URL_START = re.compile(r"(?:https?:)?//[^/?#]+", re.IGNORECASE)


def _header_text(value: Any, example: str) -> str:
    if not isinstance(value, str) or not value or not printable(value):
        raise expected("%s (printable ASCII, no spaces)" % (example,), value)
    return value


def _redirect_from(value: Any) -> str:
    """
    The C{from} of a C{redirect_rewrite} rule: a path, or a URL naming a
    host (C{http://backend.internal:8080/app/}).
    """
    text = _header_text(value, 'a URL or a path such as "http://backend.internal:8080/app/"')
    if not (text.startswith("/") and not text.startswith("//")) and not _URL_START.match(text):
        raise Invalid(
            '%s: expected a path starting with "/" or an http:// or https:// URL'
            % (describe(value),)
        )
    return text


REDIRECT_RULE = Table(
    RedirectRule,
    {
        "from": Field(_redirect_from, attribute="source"),
        "to": Field(lambda value: _header_text(value, 'a URL or a path such as "/"')),
    },
)

_DEFAULT_RULES = object()


def _redirect_rule(value: Any) -> Any:
    if value == "default":
        return _DEFAULT_RULES
    if not isinstance(value, dict):
        raise expected('{ from = "...", to = "..." } or "default"', value)
    return REDIRECT_RULE(value)


_redirect_rules = array_of(
    _redirect_rule,
    min_items=1,
    what='false, true, or an array such as [{ from = "http://backend:8080/", to = "/" }]',
)


def redirect_rewrite(value: Any) -> RedirectRewrite:
    """
    A route's C{redirect_rewrite}: C{false}, C{true}, or an array of
    C{{ from, to }} rules, where C{"default"} stands for the default rules.
    """
    if isinstance(value, bool):
        return RedirectRewrite(value)
    items = _redirect_rules(value)
    rules = tuple(item for item in items if item is not _DEFAULT_RULES)
    return RedirectRewrite(len(rules) != len(items), rules)


def _cookie_domain(value: Any) -> str:
    if not isinstance(value, str):
        raise expected('a domain such as "shop.example.test"', value)
    domain = host_name(value.lstrip("."))
    if domain.startswith("*"):
        raise Invalid("%s: a cookie's Domain has no wildcard" % (describe(value),))
    return domain


def _replacement_domain(value: Any) -> str:
    if value == "":
        return ""
    return _cookie_domain(value)


def _rewrite_table(convert_key, convert_value, example: str):
    """
    A converter of a table from what a Set-Cookie attribute holds to its
    replacement, to C{(key, replacement)} pairs.
    """

    def convert(value: Any) -> Tuple[Tuple[str, str], ...]:
        if not isinstance(value, dict) or not value:
            raise expected("a table such as %s" % (example,), value)
        pairs = converted_pairs(value, convert_key, convert_value)
        # Longest first, so that the most specific prefix wins.
        return tuple(sorted(pairs, key=lambda pair: -len(pair[0])))

    return convert


cookie_domain = _rewrite_table(
    _cookie_domain, _replacement_domain, '{ "backend.internal" = "shop.example.test" }'
)
cookie_path = _rewrite_table(route_path, route_path, '{ "/app/" = "/" }')


#: The keys that only mean something for a route that forwards.
FORWARDING_KEYS = (
    "preserve_host",
    "strip_prefix",
    "add_prefix",
    "rewrite",
    "request_headers",
    "error_pages",
    "cache",
    "intercept_errors",
    "maintenance_retry_after",
    "redirect_rewrite",
    "cookie_domain",
    "cookie_path",
    "mirror",
) + TIMEOUT_KEYS + SPLIT_KEYS + MIRROR_KEYS


def _one_answer(arguments: Dict[str, Any]) -> Iterable[Problem]:
    """
    A route is answered by exactly one of its upstream, its upstreams (a
    split), a redirect or a fixed response; the rewriting keys need an
    upstream.
    """
    answers = [
        key for key in ("upstream", "upstreams", "redirect", "respond") if key in arguments
    ]
    if not answers:
        yield ("", "a route needs one of upstream, upstreams, redirect or respond")
    elif len(answers) > 1:
        yield (
            key_path(answers[1]),
            "a route has exactly one of upstream, upstreams, redirect or respond; "
            "this one also has %s" % (answers[0],),
        )
    elif answers[0] not in ("upstream", "upstreams"):
        for key in FORWARDING_KEYS:
            if key in arguments:
                yield (key_path(key), "only a route with an upstream can use it")


ROUTE = Table(
    Route,
    {
        "upstream": Field(name, default=MODEL_DEFAULT),
        "redirect": Field(REDIRECT, default=MODEL_DEFAULT),
        "respond": Field(RESPOND, default=MODEL_DEFAULT),
        "path": Field(route_path, default="/"),
        "host": Field(host_names, default=MODEL_DEFAULT, attribute="hosts"),
        "methods": Field(methods, default=MODEL_DEFAULT),
        "headers": Field(header_matches, default=MODEL_DEFAULT),
        "query": Field(query_matches, default=MODEL_DEFAULT),
        "match": Field(match_table, default=MODEL_DEFAULT),
        "priority": Field(integer(minimum=-1000000), default=0),
        "preserve_host": Field(boolean, default=MODEL_DEFAULT),
        "strip_prefix": Field(boolean, default=MODEL_DEFAULT),
        "add_prefix": Field(route_path, default=MODEL_DEFAULT),
        "rewrite": Field(REWRITE, default=MODEL_DEFAULT),
        "request_headers": Field(_header_rules(True), default=MODEL_DEFAULT),
        "response_headers": Field(_header_rules(False), default=MODEL_DEFAULT),
        "error_pages": Field(error_pages, default=MODEL_DEFAULT),
        "filters": Field(filter_names, default=MODEL_DEFAULT),
        "cache": Field(name, default=MODEL_DEFAULT),
        **{key: Field(duration, default=MODEL_DEFAULT) for key in TIMEOUT_KEYS},
        "redirect_rewrite": Field(redirect_rewrite, default=MODEL_DEFAULT),
        "cookie_domain": Field(cookie_domain, default=MODEL_DEFAULT),
        "cookie_path": Field(cookie_path, default=MODEL_DEFAULT),
        "name": Field(route_name, default=MODEL_DEFAULT),
        "intercept_errors": Field(intercepted_statuses, default=MODEL_DEFAULT),
        "maintenance_retry_after": Field(duration, default=MODEL_DEFAULT),
        "pass_backend_banners": Field(boolean, default=MODEL_DEFAULT),
        **SPLIT_FIELDS,
    },
    checks=(_one_answer, split_problems),
)
