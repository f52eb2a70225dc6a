"""
W3C Trace Context: the traceparent a client sends is read per the
specification (an invalid one starts a new trace), the one a backend gets
is written in version 00, and tracestate passes on as it was.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from txrevproxy.http.trace_context import (
    MAX_TRACESTATE_MEMBERS,
    TraceParent,
    format_traceparent,
    parse_traceparent,
    parse_tracestate,
    with_trace_context,
)

#: The example of the specification (section 3.2.2.1).
EXAMPLE = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_reads_the_example_of_the_specification():
    parent = parse_traceparent([EXAMPLE])
    assert parent == TraceParent(
        0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, 1
    )
    assert parent.sampled


def test_an_unsampled_parent_says_so():
    parent = parse_traceparent([EXAMPLE[:-2] + b"00"])
    assert parent is not None and not parent.sampled


def test_spaces_around_the_value_are_ignored():
    assert parse_traceparent([b" \t" + EXAMPLE + b" "]) is not None


def test_a_later_version_is_read_for_its_first_fields():
    assert parse_traceparent([b"cc" + EXAMPLE[2:] + b"-what-comes-next"]) == (
        parse_traceparent([EXAMPLE])
    )
    assert parse_traceparent([b"cc" + EXAMPLE[2:]]) is not None


def test_invalid_values_start_a_new_trace():
    for value in [
        b"",
        EXAMPLE.upper(),
        b"ff" + EXAMPLE[2:],
        EXAMPLE + b"-extra",
        EXAMPLE + b"0",
        b"cc" + EXAMPLE[2:] + b"0",
        EXAMPLE[:-1],
        b"00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0g",
        b"00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        b"0-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    ]:
        assert parse_traceparent([value]) is None, value


def test_none_or_several_fields_start_a_new_trace():
    assert parse_traceparent(None) is None
    assert parse_traceparent([]) is None
    assert parse_traceparent([EXAMPLE, EXAMPLE]) is None


@given(
    st.integers(min_value=1, max_value=2**128 - 1),
    st.integers(min_value=1, max_value=2**64 - 1),
    st.booleans(),
)
def test_what_is_written_reads_back(trace_id, span_id, sampled):
    value = format_traceparent(trace_id, span_id, sampled)
    assert len(value) == 55
    assert parse_traceparent([value]) == TraceParent(trace_id, span_id, int(sampled))


@given(st.binary(max_size=80))
def test_any_bytes_parse_to_a_valid_parent_or_none(value):
    parent = parse_traceparent([value])
    if parent is not None:
        assert 0 < parent.trace_id < 2**128
        assert 0 < parent.span_id < 2**64
        # What was read is what the value said, in its canonical form.
        canonical = format_traceparent(parent.trace_id, parent.span_id, parent.sampled)
        assert value.strip(b" \t")[3:52] == canonical[3:52]


def test_tracestate_passes_on_as_it_was():
    assert parse_tracestate([b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"]) == (
        b"rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
    )


def test_tracestate_of_several_fields_is_one_list():
    assert parse_tracestate([b"rojo=1", b" congo=2 ,, "]) == b"rojo=1,congo=2"


def test_tracestate_keeps_the_first_members():
    members = [b"k%d=v" % (n,) for n in range(MAX_TRACESTATE_MEMBERS + 5)]
    kept = parse_tracestate([b",".join(members)])
    assert kept == b",".join(members[:MAX_TRACESTATE_MEMBERS])


def test_an_empty_tracestate_is_none():
    assert parse_tracestate(None) is None
    assert parse_tracestate([b" , "]) is None


def test_the_proxys_trace_context_replaces_the_clients():
    headers = [
        (b"Host", b"a"),
        (b"TraceParent", EXAMPLE),
        (b"tracestate", b"rojo=1"),
        (b"Accept", b"*/*"),
    ]
    ours = format_traceparent(5, 6, True)
    assert with_trace_context(headers, ours, None) == [
        (b"Host", b"a"),
        (b"Accept", b"*/*"),
        (b"traceparent", ours),
    ]
    assert with_trace_context(headers, ours, b"rojo=1")[-2:] == [
        (b"traceparent", ours),
        (b"tracestate", b"rojo=1"),
    ]
