"""
Tests for L{txrevproxy.http.forwarded}: reading and extending the
Forwarded header (RFC 7239).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txrevproxy.http.forwarded import (
    extend_forwarded,
    hop_element,
    parse_forwarded,
    quote,
    serialize_forwarded,
    valid_node,
)


def test_the_examples_of_rfc_7239():
    assert parse_forwarded(b'for="_gazonk"') == [((b"for", b"_gazonk"),)]
    assert parse_forwarded(b'For="[2001:db8:cafe::17]:4711"') == [
        ((b"for", b"[2001:db8:cafe::17]:4711"),)
    ]
    assert parse_forwarded(b"for=192.0.2.60;proto=http;by=203.0.113.43") == [
        ((b"for", b"192.0.2.60"), (b"proto", b"http"), (b"by", b"203.0.113.43"))
    ]
    assert parse_forwarded(b"for=192.0.2.43, for=198.51.100.17") == [
        ((b"for", b"192.0.2.43"),),
        ((b"for", b"198.51.100.17"),),
    ]
    assert parse_forwarded(
        b'for=192.0.2.43,for="[2001:db8:cafe::17]",for=unknown'
    ) == [
        ((b"for", b"192.0.2.43"),),
        ((b"for", b"[2001:db8:cafe::17]"),),
        ((b"for", b"unknown"),),
    ]


def test_quoted_strings_are_unquoted_with_their_escapes():
    assert parse_forwarded(b'ext="a\\"b\\\\c, d;e=f"') == [
        ((b"ext", b'a"b\\c, d;e=f'),)
    ]
    assert parse_forwarded(b'for="\\_hidden"') == [((b"for", b"_hidden"),)]


def test_several_field_lines_joined_and_empty_elements():
    assert parse_forwarded(b" for=_a ,, for=_c ,for=unknown; ") == [
        ((b"for", b"_a"),),
        ((b"for", b"_c"),),
        ((b"for", b"unknown"),),
    ]
    assert parse_forwarded(b"") == []
    assert parse_forwarded(b" , ") == []


def test_obfuscated_and_unknown_nodes_and_ports():
    for good in (
        b"unknown",
        b"UNKNOWN",
        b"_hidden",
        b"_SEVKISEK",
        b"192.0.2.1:8080",
        b"192.0.2.1:_p0rt",
        b"[2001:db8::1]",
        b"[2001:db8::1]:443",
        b"[::ffff:192.0.2.1]",
        b"unknown:_x",
    ):
        assert valid_node(good), good
    for bad in (
        b"",
        b"_",
        b"hidden",
        b"example.com",
        b"2001:db8::1",
        b"[2001:db8::1",
        b"[fe80::1%eth0]",
        b"[192.0.2.1]",
        b"192.0.2.256",
        b"192.0.2.1:",
        b"192.0.2.1:123456",
        b"192.0.2.1:80:80",
        b"[2001:db8::1]80",
        b"_a b",
    ):
        assert not valid_node(bad), bad


@pytest.mark.parametrize(
    "junk",
    [
        b"for",
        b"for=",
        b"=1.2.3.4",
        b"for=1.2.3.4 ;proto=http",
        b"for=1.2.3.4; proto=http",
        b"for = 1.2.3.4",
        b'for="1.2.3.4',
        b'for="1.2.3.4\\"',
        b'for="1.2.3.4"x',
        b"for=1.2.3.4 proto=http",
        b"for=1.2.3.4;for=5.6.7.8",
        b"for=1.2.3.4;FOR=5.6.7.8",
        b"for=2001:db8::1",
        b'for="example.com"',
        b"proto=1http",
        b'host="a b"',
        b"host=",
        b'host=""',
        b"for=_x\x00",
        b"for=_x;ext=\x7f",
        b'ext="\x01"',
        b"<script>",
    ],
)
def test_malformed_values_are_refused(junk):
    assert parse_forwarded(junk) is None


def test_a_parameter_may_repeat_in_another_element():
    assert parse_forwarded(b"for=_a;proto=https, for=_b;proto=http") == [
        ((b"for", b"_a"), (b"proto", b"https")),
        ((b"for", b"_b"), (b"proto", b"http")),
    ]


def test_quote_writes_tokens_bare_and_the_rest_quoted():
    assert quote(b"192.0.2.1") == b"192.0.2.1"
    assert quote(b"[2001:db8::1]") == b'"[2001:db8::1]"'
    assert quote(b"example.com:8080") == b'"example.com:8080"'
    assert quote(b'a"b\\') == b'"a\\"b\\\\"'
    with pytest.raises(ValueError):
        quote(b"a\r\nb")


def test_hop_element():
    assert hop_element(b"192.0.2.7", b"https", b"shop.test") == (
        b"for=192.0.2.7;proto=https;host=shop.test"
    )
    assert hop_element(b"2001:db8::7", b"http", b"shop.test:8080") == (
        b'for="[2001:db8::7]";proto=http;host="shop.test:8080"'
    )
    assert hop_element(b"fe80::1%eth0", b"http", b"[::1]:80") == (
        b'for="[fe80::1]";proto=http;host="[::1]:80"'
    )
    assert hop_element(b"unix", b"http", b"") == b"for=unknown;proto=http"
    assert hop_element(b"192.0.2.7", b"http", b"a b") == b"for=192.0.2.7;proto=http"


def test_extend_keeps_a_valid_chain_and_replaces_a_malformed_one():
    assert extend_forwarded(None, b"for=_me") == b"for=_me"
    assert extend_forwarded(b"", b"for=_me") == b"for=_me"
    assert extend_forwarded(b" , ", b"for=_me") == b"for=_me"
    assert (
        extend_forwarded(b'for=_hidden, for="[2001:db8::1]"', b"for=_me")
        == b'for=_hidden, for="[2001:db8::1]", for=_me'
    )
    # Appended to, the unclosed quote would swallow this hop's element.
    assert extend_forwarded(b'for="_x', b"for=_me") == b"for=_me"


def test_every_element_parsed_from_an_extended_chain_is_there():
    for element in (
        hop_element(b"192.0.2.7", b"https", b"shop.test"),
        hop_element(b"2001:db8::7", b"http", b"[2001:db8::1]:8443"),
    ):
        chain = extend_forwarded(b"for=unknown;by=_proxy", element)
        assert parse_forwarded(chain)[-1] == parse_forwarded(element)[0]


_tchar = st.sampled_from(sorted("!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyz"))
_names = st.text(_tchar, min_size=1, max_size=6).map(str.encode).filter(
    lambda name: name not in (b"for", b"by", b"proto", b"host")
)
_quotable = st.binary(max_size=12).map(
    lambda raw: bytes(b for b in raw if b == 9 or 0x20 <= b <= 0x7E or b >= 0x80)
)
_obfuscated = st.text(
    st.sampled_from(sorted("abcXYZ019._-")), min_size=1, max_size=6
).map(lambda text: ("_" + text).encode())
_ipv4 = st.ip_addresses(v=4).map(lambda address: str(address).encode())
_ipv6 = st.ip_addresses(v=6).map(lambda address: b"[%s]" % (str(address).encode(),))
_ports = st.one_of(st.integers(0, 65535).map(lambda n: b"%d" % (n,)), _obfuscated)
_nodes = st.builds(
    lambda name, port: name if port is None else name + b":" + port,
    st.one_of(_ipv4, _ipv6, _obfuscated, st.just(b"unknown")),
    st.one_of(st.none(), _ports),
)


@st.composite
def _elements(draw):
    pairs = {}
    for name in draw(st.lists(st.sampled_from([b"for", b"by", b"proto"]), unique=True)):
        pairs[name] = draw(_nodes) if name != b"proto" else draw(
            st.sampled_from([b"http", b"https", b"ws", b"coap+tcp"])
        )
    for name in draw(st.lists(_names, max_size=3, unique=True)):
        pairs[name] = draw(_quotable)
    if not pairs:
        pairs[b"for"] = draw(_nodes)
    return tuple(draw(st.permutations(list(pairs.items()))))


@given(st.lists(_elements(), min_size=1, max_size=4))
def test_serialized_elements_parse_back_to_themselves(elements):
    assert parse_forwarded(serialize_forwarded(elements)) == elements


@given(st.lists(_elements(), min_size=1, max_size=4), _nodes)
def test_extending_a_serialized_chain_adds_exactly_one_element(elements, node):
    element = serialize_forwarded([((b"for", node),)])
    chain = extend_forwarded(serialize_forwarded(elements), element)
    assert parse_forwarded(chain) == elements + [((b"for", node),)]


@given(st.binary(max_size=40))
def test_any_bytes_are_parsed_or_refused_never_an_error(value):
    parsed = parse_forwarded(value)
    if parsed is not None:
        # What was accepted says the same thing once written again.
        assert parse_forwarded(serialize_forwarded(parsed)) == parsed


@given(st.binary(max_size=30), _nodes)
def test_this_hops_element_is_never_swallowed(prior, node):
    element = serialize_forwarded([((b"for", node),)])
    parsed = parse_forwarded(extend_forwarded(prior, element))
    assert parsed is not None
    assert parsed[-1] == ((b"for", node),)
