"""
The Dictionary of Structured Field Values (RFC 8941), which targeted
cache-control fields (RFC 9213) are.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txrevproxy.http.structured_fields import (
    StructuredFieldError,
    Token,
    parse_dictionary,
    serialize_dictionary,
)


@pytest.mark.parametrize(
    "value, expected",
    [
        # The examples of RFC 8941 sections 3.2, 3.1.1, 3.1.2 and 3.3.
        (b'en="Applepie", da=:w4ZibGV0w6ZydGU=:', {"en": ("Applepie", {}), "da": ("\xc3\x86blet\xc3\xa6rte".encode("latin-1"), {})}),
        (b"a=?0, b, c; foo=bar", {"a": (False, {}), "b": (True, {}), "c": (True, {"foo": Token("bar")})}),
        (b"rating=1.5, feelings=(joy sadness)", {"rating": (Decimal("1.5"), {}), "feelings": ([(Token("joy"), {}), (Token("sadness"), {})], {})}),
        (b"a=(1 2), b=3, c=4;aa=bb, d=(5 6);valid", {"a": ([(1, {}), (2, {})], {}), "b": (3, {}), "c": (4, {"aa": Token("bb")}), "d": ([(5, {}), (6, {})], {"valid": True})}),
        (b"a=(), b=( 1  2 )", {"a": ([], {}), "b": ([(1, {}), (2, {})], {})}),
        (b"a=-42, b=0.001, c=-999999999999.999, d=999999999999999", {"a": (-42, {}), "b": (Decimal("0.001"), {}), "c": (Decimal("-999999999999.999"), {}), "d": (999999999999999, {})}),
        (b'a="", b="\\"\\\\", c=*, d=foo/bar:baz', {"a": ("", {}), "b": ('"\\', {}), "c": (Token("*"), {}), "d": (Token("foo/bar:baz"), {})}),
        (b"a=1, a=2", {"a": (2, {})}),
        (b"  max-age=60 ,\tno-store  ", {"max-age": (60, {}), "no-store": (True, {})}),
        (b"a=::, b=:YWI:", {"a": (b"", {}), "b": (b"ab", {})}),
        (b"", {}),
        (b"   ", {}),
    ],
)
def test_parses_the_rfc_examples(value, expected):
    assert parse_dictionary(value) == expected


@pytest.mark.parametrize(
    "value",
    [
        b"max-age =100",
        b"max-age= 100",
        b"MaX-aGe=3600",
        b"max-age=10000, &&&&&",
        b"a=1,",
        b",a=1",
        b"a=1,,b=2",
        b"a=1 b=2",
        b"a=1;",
        b"a=1;B=2",
        b"1a=1",
        b"a=",
        b"a=-",
        b"a=1.",
        b"a=1.2345",
        b"a=1234567890123.0",
        b"a=1234567890123456",
        b'a="unterminated',
        b'a="\\x"',
        b'a="tab\tinside"',
        b"a=:not base64!:",
        b"a=:YWI",
        b"a=?2",
        b"a=?",
        b"a=(1,2)",
        b"a=(1 2",
        b"a=(1)(2)",
        b"a=@1659578233",
        b'a=%"display"',
        b"a=\xc3\xa9",
        b"\tmax-age=60",
    ],
)
def test_refuses_what_rfc_8941_does_not_allow(value):
    with pytest.raises(StructuredFieldError):
        parse_dictionary(value)


def test_serializes_canonically():
    value = b"b=?1, a=?0;x, c=( 1  foo );p=\"q\", d=2.50, e=:AQI=:"
    assert serialize_dictionary(parse_dictionary(value)) == (
        b'b, a=?0;x, c=(1 foo);p="q", d=2.5, e=:AQI=:'
    )


_keys = st.from_regex(r"[a-z*][a-z0-9_.*-]{0,6}", fullmatch=True)
_bare_items = st.one_of(
    st.integers(-(10**15) + 1, 10**15 - 1),
    st.integers(-(10**15) + 1, 10**15 - 1).map(lambda n: Decimal(n).scaleb(-3)),
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=8),
    st.from_regex(r"[A-Za-z*][-!#$%&'*+.^_`|~0-9A-Za-z:/]{0,6}", fullmatch=True).map(Token),
    st.binary(max_size=8),
    st.booleans(),
)
_parameters = st.dictionaries(_keys, _bare_items, max_size=3)
_items = st.tuples(_bare_items, _parameters)
_members = st.one_of(_items, st.tuples(st.lists(_items, max_size=3), _parameters))
_dictionaries = st.dictionaries(_keys, _members, max_size=5)


def _typed(dictionary):
    """
    The dictionary with each value's type beside it: C{True == 1} in
    Python, not in RFC 8941.
    """

    def item(value):
        if isinstance(value, list):
            return [(item(inner), params(parameters)) for inner, parameters in value]
        return (type(value), value)

    def params(parameters):
        return {key: item(value) for key, value in parameters.items()}

    return {key: (item(value), params(parameters)) for key, (value, parameters) in dictionary.items()}


@given(_dictionaries)
def test_what_is_serialized_parses_back_the_same(dictionary):
    assert _typed(parse_dictionary(serialize_dictionary(dictionary))) == _typed(dictionary)


@given(st.binary(max_size=40))
def test_junk_is_parsed_or_refused_never_crashes(value):
    try:
        parsed = parse_dictionary(value)
    except StructuredFieldError:
        return
    # What parses has one canonical form, which parses to the same.
    assert _typed(parse_dictionary(serialize_dictionary(parsed))) == _typed(parsed)


@given(_dictionaries.filter(bool), st.sampled_from([b"", b" ", b"  "]))
def test_surrounding_spaces_do_not_matter(dictionary, spaces):
    value = spaces + serialize_dictionary(dictionary) + spaces
    assert _typed(parse_dictionary(value)) == _typed(dictionary)
