"""
Every key that lists request methods goes through one converter
(L{txrevproxy.config.values.method_names}): RFC 9110 tokens, stored
upper-case without duplicates, so that C{["get"]} means C{GET} wherever
it is written.
"""

from __future__ import annotations

import pytest

from ..support.channels import connect
from ..support.configs import document, parse, problems
from ..support.resources import Recorder

#: Each key that takes methods: the document pieces writing C{METHODS}
#: there, and where the parsed configuration keeps them.
KEYS = [
    ({"server": "allowed_methods = METHODS"}, lambda c: c.server.allowed_methods, "server.allowed_methods"),
    ({"route": 'upstream = "app"\nmethods = METHODS'}, lambda c: c.routes[0].methods, "routes[0].methods"),
    (
        {"route": 'upstream = "app"\nmatch = { methods = METHODS }'},
        lambda c: c.routes[0].match[0].settings,
        "routes[0].match.methods",
    ),
]


def pieces_with(pieces, methods: str):
    return {key: text.replace("METHODS", methods) for key, text in pieces.items()}


@pytest.mark.parametrize("pieces, get, where", KEYS)
def test_methods_are_upper_cased_without_duplicates(pieces, get, where):
    config = parse(document(**pieces_with(pieces, '["get", "Head", "GET", "purge"]')))
    assert get(config) == ("GET", "HEAD", "PURGE")


@pytest.mark.parametrize("pieces, get, where", KEYS)
def test_a_method_that_is_no_token_is_refused(pieces, get, where):
    assert problems(document(**pieces_with(pieces, '["GET", "GET /", 5]'))) == [
        '%s[1]: expected a method such as "GET", got "GET /"' % (where,),
        '%s[2]: expected a method such as "GET", got 5' % (where,),
    ]


@pytest.mark.parametrize("pieces, get, where", KEYS)
def test_methods_must_be_an_array(pieces, get, where):
    assert problems(document(**pieces_with(pieces, '"GET"'))) == [
        '%s: expected an array of methods such as ["GET", "HEAD"], got "GET"' % (where,)
    ]


def test_allowed_methods_written_in_lower_case_serve_those_methods():
    """
    C{allowed_methods = ["get"]} used to pass C{check} and then answer
    every GET with 405.
    """
    recorder = Recorder()
    config = parse(document(server='allowed_methods = ["get"]'))
    _, _, channel, transport = connect(config.server, recorder)
    channel.dataReceived(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
    assert len(recorder.requests) == 1
    _, _, channel, transport = connect(config.server, recorder)
    channel.dataReceived(b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
    assert b" 405 " in transport.value()
    assert b"\r\nAllow: GET\r\n" in transport.value()
    assert len(recorder.requests) == 1
