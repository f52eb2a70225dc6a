"""
Tests for L{txrevproxy.http.length_decoder}.
"""

from __future__ import annotations

import pytest

from txrevproxy.http.length_decoder import LengthDecoder


@pytest.mark.parametrize(
    "pieces, body, rest",
    [
        ([b"abc"], [b"abc"], [b""]),
        ([b"a", b"bc"], [b"a", b"bc"], [b""]),
        ([b"abcGET"], [b"abc"], [b"GET"]),
        ([b"ab", b"cGET"], [b"ab", b"c"], [b"GET"]),
    ],
)
def test_the_body_then_what_follows_it(pieces, body, rest):
    data, ends = [], []
    decoder = LengthDecoder(3, data.append, ends.append)
    for piece in pieces:
        decoder.dataReceived(piece)
    assert data == body
    assert ends == rest
