"""
Tests for L{txrevproxy.config.units}: durations and sizes.
"""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from txrevproxy.config.units import (
    DURATION_UNITS,
    SIZE_UNITS,
    parse_duration,
    parse_size,
)


@pytest.mark.parametrize(
    "text, seconds",
    [
        ("250ms", 0.25),
        ("5s", 5.0),
        ("1.5s", 1.5),
        (".5s", 0.5),
        ("2m", 120.0),
        ("1h", 3600.0),
        ("7d", 604800.0),
        ("1h30m", 5400.0),
        ("1m30s500ms", 90.5),
        ("0s", 0.0),
        ("0.001ms", 0.000001),
    ],
)
def test_duration(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text",
    ["", "5", "5 s", " 5s", "5s ", "5S", "5sec", "-5s", "1.s", "5us", "s", "1h 30m", "1e3s", "5s5"],
)
def test_duration_refused(text):
    with pytest.raises(ValueError) as raised:
        parse_duration(text)
    assert str(raised.value) == (
        'expected a duration such as "250ms", "5s", "2m", "1h30m" or "7d"'
    )


@pytest.mark.parametrize(
    "text, size",
    [
        ("0", 0),
        ("512", 512),
        ("512B", 512),
        ("64KiB", 65536),
        ("64kib", 65536),
        ("10MB", 10_000_000),
        ("10mb", 10_000_000),
        ("10kB", 10_000),
        ("1GiB", 1 << 30),
        ("2TiB", 2 << 40),
        ("1TB", 10**12),
        ("1.5MiB", 1572864),
        ("1.5KB", 1500),
        ("0.5B", 0),
        ("1.0001KiB", 1024),
    ],
)
def test_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize(
    "text", ["", "KiB", "10m", "10K", "10 MB", "-1", "1e3", "10MiBs", "1,000", "0x10"]
)
def test_size_refused(text):
    with pytest.raises(ValueError) as raised:
        parse_size(text)
    assert str(raised.value) == (
        'expected a size such as "512", "64KiB" or "10MB" '
        "(units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
    )


_numbers = st.decimals(min_value=0, max_value=10**6, places=3, allow_nan=False)


def _written(number: Decimal) -> str:
    return format(number, "f")


@given(_numbers, st.sampled_from(sorted(DURATION_UNITS)))
def test_duration_is_number_times_unit(number, unit):
    assert parse_duration(_written(number) + unit) == pytest.approx(
        float(number * DURATION_UNITS[unit])
    )


@given(st.lists(st.tuples(_numbers, st.sampled_from(sorted(DURATION_UNITS))), min_size=1, max_size=4))
def test_compound_duration_is_the_sum(parts):
    text = "".join(_written(number) + unit for number, unit in parts)
    expected = sum(number * DURATION_UNITS[unit] for number, unit in parts)
    assert parse_duration(text) == pytest.approx(float(expected))


@given(st.integers(min_value=0, max_value=10**15), st.sampled_from(sorted(SIZE_UNITS)))
def test_whole_size_is_exact(number, unit):
    cased = unit.upper() if number % 2 else unit
    assert parse_size("%d%s" % (number, cased)) == number * SIZE_UNITS[unit]


@given(_numbers, st.sampled_from(sorted(SIZE_UNITS)))
def test_fractional_size_rounds_down(number, unit):
    size = parse_size(_written(number) + unit)
    exact = number * SIZE_UNITS[unit]
    assert size <= exact < size + 1


@given(st.text(max_size=12))
def test_parsers_raise_only_value_error(text):
    for parse in (parse_duration, parse_size):
        try:
            result = parse(text)
        except ValueError:
            continue
        assert result >= 0
