"""
HPACK without the dynamic table for the proxy's HTTP/2 responses: what
L{StaticTableEncoder} sends decodes to the fields given, normalised as
C{h2} would, with nothing added to the client's dynamic table.
"""

from __future__ import annotations

import hpack
from hypothesis import given
from hypothesis import strategies as st

from txrevproxy.http.hpack_static import StaticTableEncoder, encode_field, encode_name

RESPONSE = [
    (b":status", b"200"),
    (b"Server", b"nginx"),
    (b"Content-Type", b"text/plain"),
    (b"content-length", b"14"),
    (b"X-Request-ID", b"a1b2"),
]


def decoded(encoder: StaticTableEncoder, fields, decoder=None):
    decoder = decoder or hpack.Decoder()
    return decoder.decode(encoder.encode(fields), raw=True), decoder


def test_fields_decode_lower_cased_and_leave_the_dynamic_table_empty():
    encoder = StaticTableEncoder()
    decoder = hpack.Decoder()
    for _ in range(2):
        fields, decoder = decoded(encoder, RESPONSE, decoder)
        assert fields == [(name.lower(), value) for name, value in RESPONSE]
    assert len(decoder.header_table.dynamic_entries) == 0


def test_a_field_of_the_static_table_is_its_index():
    assert encode_field(b":status", b"200") == bytes([0x80 | 8])
    assert encode_field(b":status", b"404") == bytes([0x80 | 13])


def test_a_name_of_the_static_table_is_its_index_with_a_literal_value():
    # content-type is entry 31: a 4-bit prefix of 15, then 16.
    encoded = encode_field(b"content-type", b"text/plain")
    assert encoded[:2] == bytes([0x0F, 31 - 15])
    assert encode_field(b"x-a", b"b")[0] == 0x00


def test_a_literal_is_huffman_coded_only_when_that_is_shorter():
    # "~" is 13 bits in Huffman's code: longer than its byte.
    assert encode_field(b"x-a", b"~~~~").endswith(b"\x04~~~~")
    assert encode_field(b"x-a", b"aaaa")[-4] & 0x80


def test_credentials_are_never_indexed_and_not_kept():
    encoder = StaticTableEncoder()
    fields, _ = decoded(encoder, [(b"authorization", b"secret")])
    assert isinstance(fields[0], hpack.NeverIndexedHeaderTuple)
    assert (b"authorization", b"secret") not in encoder._cache


def test_a_never_indexed_tuple_is_not_taken_for_its_plain_twin():
    encoder = StaticTableEncoder()
    encoder.encode([(b"x-a", b"b")])
    fields, _ = decoded(encoder, [hpack.NeverIndexedHeaderTuple(b"x-a", b"b")])
    assert isinstance(fields[0], hpack.NeverIndexedHeaderTuple)


def test_connection_specific_fields_are_dropped_and_values_stripped():
    fields, _ = decoded(
        StaticTableEncoder(),
        [(b":status", b"200"), (b"Connection", b"close"), (b"x-a", b" b \t")],
    )
    assert fields == [(b":status", b"200"), (b"x-a", b"b")]


def test_unique_fields_are_not_kept_nor_huffman_coded():
    encoder = StaticTableEncoder(frozenset([b"x-request-id"]))
    block = encoder.encode([(b"X-Request-ID", b"aaaa"), (b"Server", b"nginx")])
    assert (b"X-Request-ID", b"aaaa") not in encoder._cache
    assert encoder._cache[(b"Server", b"nginx")] == encode_field(b"server", b"nginx")
    assert block.startswith(encode_name(b"x-request-id") + b"\x04aaaa")
    assert hpack.Decoder().decode(block, raw=True) == [
        (b"x-request-id", b"aaaa"),
        (b"server", b"nginx"),
    ]


def test_a_table_size_from_the_clients_settings_is_signalled_first():
    encoder = StaticTableEncoder()
    encoder.header_table_size = 100
    block = encoder.encode(RESPONSE[:1])
    assert block == bytes([0x3F, 100 - 31, 0x80 | 8])
    assert encoder.encode(RESPONSE[:1]) == bytes([0x80 | 8])


@given(
    st.lists(
        st.tuples(
            st.binary(min_size=1, max_size=40).map(
                lambda name: bytes(b for b in name.lower() if 0x21 <= b < 0x7F and b != 0x3A)
                or b"x"
            ),
            st.binary(max_size=300).map(lambda value: value.strip()),
        ),
        max_size=10,
    )
)
def test_any_fields_decode_as_they_were_given(fields):
    fields = [(name, value) for name, value in fields if name not in _CONNECTION]
    encoder = StaticTableEncoder()
    assert decoded(encoder, fields)[0] == fields
    assert decoded(encoder, fields)[0] == fields


_CONNECTION = {b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade"}
