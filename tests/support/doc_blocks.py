"""
Literal blocks taken from the documentation, for the plugin tests.
"""

from __future__ import annotations

import re
import textwrap

from .processes import SOURCE_ROOT


def literal_block(document: str, *words: str) -> str:
    """
    The one literal block of C{docs/DOCUMENT} that contains every one of
    C{words}, dedented: a configuration the document shows.
    """
    text = (SOURCE_ROOT / "docs" / document).read_text()
    [block] = [
        block
        for block in re.findall(r"::\n\n((?:    .*\n|\n)+)", text)
        if all(word in block for word in words)
    ]
    return textwrap.dedent(block)
