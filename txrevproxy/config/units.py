"""
Durations and sizes as operators write them in the configuration file.

Both parsers are pure functions that raise L{ValueError} with a sentence
saying what was expected; L{txrevproxy.config.values} puts the key path and
the offending value around it.

Durations are one or more C{NUMBER UNIT} pairs without spaces, as in Go and
Caddy: C{"250ms"}, C{"5s"}, C{"1.5s"}, C{"2m"}, C{"1h30m"}, C{"7d"}.  Units
are lower-case: C{ms}, C{s}, C{m}, C{h}, C{d}.  A bare number is refused:
seconds or milliseconds would be a guess.

Sizes are a number with an optional unit: C{"512"} (bytes), C{"64KiB"},
C{"10MB"}, C{"1.5GiB"}.  Decimal units (C{KB}, C{MB}, C{GB}, C{TB}) are
powers of 1000 and binary units (C{KiB}, C{MiB}, C{GiB}, C{TiB}) powers of
1024; the unit's case does not matter (C{kb} is C{KB}).  A bare C{K}, C{M}
or C{G} is refused because it is ambiguous (nginx reads C{10m} as MiB).
Arithmetic is exact (L{Decimal}); a fractional size is rounded down to
whole bytes.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Dict

DURATION_UNITS: Dict[str, Decimal] = {
    "ms": Decimal("0.001"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}

SIZE_UNITS: Dict[str, int] = {
    "b": 1,
    "kb": 1000,
    "mb": 1000**2,
    "gb": 1000**3,
    "tb": 1000**4,
    "kib": 1024,
    "mib": 1024**2,
    "gib": 1024**3,
    "tib": 1024**4,
}

_NUMBER = r"(?:[0-9]+(?:\.[0-9]+)?|\.[0-9]+)"
# "ms" comes before "m" so that "250ms" is not read as 250m followed by "s".
_DURATION_PART = re.compile(r"(%s)(ms|s|m|h|d)" % (_NUMBER,))
_DURATION = re.compile(r"(?:%s(?:ms|s|m|h|d))+\Z" % (_NUMBER,))
_SIZE = re.compile(r"(%s)([A-Za-z]*)\Z" % (_NUMBER,))


def parse_duration(text: str) -> float:
    """
    Parse a duration such as C{"250ms"} or C{"1h30m"}.

    @return: the duration in seconds.
    @raise ValueError: when C{text} is not a duration.
    """
    if not _DURATION.match(text):
        raise ValueError(
            'expected a duration such as "250ms", "5s", "2m", "1h30m" or "7d"'
        )
    total = sum(
        Decimal(number) * DURATION_UNITS[unit]
        for number, unit in _DURATION_PART.findall(text)
    )
    return float(total)


def parse_size(text: str) -> int:
    """
    Parse a size such as C{"512"}, C{"64KiB"} or C{"1.5MB"}.

    @return: the size in bytes, rounded down (C{"1.5KiB"} is 1536, C{"0.5B"}
        is 0).
    @raise ValueError: when C{text} is not a size.
    """
    match = _SIZE.match(text)
    unit = match.group(2).lower() if match else None
    if match is None or (unit and unit not in SIZE_UNITS):
        raise ValueError(
            'expected a size such as "512", "64KiB" or "10MB" '
            "(units: B, KB, MB, GB, TB, KiB, MiB, GiB, TiB)"
        )
    return int(Decimal(match.group(1)) * SIZE_UNITS.get(unit, 1))
