"""
Structured Field Values for HTTP (RFC 8941): the Dictionary, its items
and parameters, parsed strictly and serialized canonically.

The targeted cache-control fields of RFC 9213 (C{CDN-Cache-Control}) are
Dictionaries, and RFC 9213 section 2.1 asks for a Structured Fields parser
rather than a Cache-Control one, because the two differ on errors: here any
deviation from the grammar fails the whole field (RFC 8941 section 4.2),
and the caller ignores it.

A parsed Dictionary is a C{dict} from key to C{(value, parameters)}, where
value is a bare item or an inner list (a C{list} of C{(item, parameters)}),
and parameters a C{dict} from key to bare item.  Bare items are C{int}
(Integer), L{decimal.Decimal} (Decimal), C{str} (String), L{Token},
C{bytes} (Byte Sequence) and C{bool} (Boolean).
"""

from __future__ import annotations

import base64
import binascii
import string
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Dict, List, Tuple, Union

import attr


@attr.s(frozen=True, auto_attribs=True)
class Token:
    """
    An sf-token (C{text/html}, C{*foo}), kept apart from an sf-string.
    """

    value: str


BareItem = Union[int, Decimal, str, Token, bytes, bool]
Parameters = Dict[str, BareItem]
Item = Tuple[BareItem, Parameters]
Member = Tuple[Union[BareItem, List[Item]], Parameters]
Dictionary = Dict[str, Member]


class StructuredFieldError(ValueError):
    """
    A field value that is not what RFC 8941 allows.
    """


_LCALPHA = frozenset(string.ascii_lowercase)
_KEY_FIRST = _LCALPHA | {"*"}
_KEY_CHARS = _LCALPHA | frozenset(string.digits + "_-.*")
_ALPHA = frozenset(string.ascii_letters)
_DIGITS = frozenset(string.digits)
_TCHAR = frozenset("!#$%&'*+-.^_`|~" + string.digits + string.ascii_letters)
_TOKEN_CHARS = _TCHAR | {":", "/"}
_BASE64 = frozenset(string.ascii_letters + string.digits + "+/=")


class _Input:
    """
    The field value being consumed, left to right.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self.at = 0

    def peek(self) -> str:
        return self.text[self.at : self.at + 1]

    def take(self) -> str:
        char = self.peek()
        if not char:
            raise StructuredFieldError("the value ends too early")
        self.at += 1
        return char

    def skip(self, chars: str) -> None:
        while self.peek() and self.peek() in chars:
            self.at += 1


def parse_dictionary(value: bytes) -> Dictionary:
    """
    Parse a Dictionary (RFC 8941 sections 4.2 and 4.2.2) from a field
    value; several field lines are joined with C{b", "} first.

    @raise StructuredFieldError: when the value is not a Dictionary (it
        must then be ignored as a whole).
    """
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        raise StructuredFieldError("not ASCII")
    source = _Input(text)
    source.skip(" ")
    dictionary: Dictionary = {}
    while source.peek():
        key = _key(source)
        if source.peek() == "=":
            source.take()
            dictionary[key] = _item_or_inner_list(source)
        else:
            dictionary[key] = (True, _parameters(source))
        source.skip(" \t")
        if not source.peek():
            break
        if source.take() != ",":
            raise StructuredFieldError("members must be separated by commas")
        source.skip(" \t")
        if not source.peek():
            raise StructuredFieldError("a trailing comma")
    return dictionary


def _key(source: _Input) -> str:
    if source.peek() not in _KEY_FIRST:
        raise StructuredFieldError("a key starts with a lower-case letter or *")
    start = source.at
    while source.peek() and source.peek() in _KEY_CHARS:
        source.at += 1
    return source.text[start : source.at]


def _item_or_inner_list(source: _Input) -> Member:
    if source.peek() != "(":
        return _item(source)
    source.take()
    items: List[Item] = []
    while True:
        source.skip(" ")
        if source.peek() == ")":
            source.take()
            return items, _parameters(source)
        items.append(_item(source))
        if source.peek() not in (" ", ")"):
            raise StructuredFieldError("inner list items are separated by spaces")


def _item(source: _Input) -> Item:
    return _bare_item(source), _parameters(source)


def _parameters(source: _Input) -> Parameters:
    parameters: Parameters = {}
    while source.peek() == ";":
        source.take()
        source.skip(" ")
        key = _key(source)
        value: BareItem = True
        if source.peek() == "=":
            source.take()
            value = _bare_item(source)
        parameters[key] = value
    return parameters


def _bare_item(source: _Input) -> BareItem:
    char = source.peek()
    if char == "-" or (char and char in _DIGITS):
        return _number(source)
    if char == '"':
        return _string(source)
    if char == "*" or (char and char in _ALPHA):
        return _token(source)
    if char == ":":
        return _byte_sequence(source)
    if char == "?":
        return _boolean(source)
    raise StructuredFieldError("not an item: %r" % (char,))


def _number(source: _Input) -> Union[int, Decimal]:
    sign = 1
    if source.peek() == "-":
        source.take()
        sign = -1
    if not source.peek() or source.peek() not in _DIGITS:
        raise StructuredFieldError("a number needs a digit")
    start = source.at
    decimal = False
    while source.peek():
        char = source.peek()
        if char in _DIGITS:
            source.at += 1
        elif char == "." and not decimal:
            if source.at - start > 12:
                raise StructuredFieldError("too many integer digits in a decimal")
            decimal = True
            source.at += 1
        else:
            break
        if not decimal and source.at - start > 15:
            raise StructuredFieldError("an integer has at most 15 digits")
        if decimal and source.at - start > 16:
            raise StructuredFieldError("a decimal has at most 16 characters")
    number = source.text[start : source.at]
    if not decimal:
        return sign * int(number)
    fraction = number.partition(".")[2]
    if not 1 <= len(fraction) <= 3:
        raise StructuredFieldError("a decimal has one to three fractional digits")
    return sign * Decimal(number)


def _string(source: _Input) -> str:
    source.take()
    chars = []
    while True:
        char = source.take()
        if char == "\\":
            escaped = source.take()
            if escaped not in ('"', "\\"):
                raise StructuredFieldError("only \\\" and \\\\ are escapes")
            chars.append(escaped)
        elif char == '"':
            return "".join(chars)
        elif not " " <= char <= "~":
            raise StructuredFieldError("a string holds printable ASCII only")
        else:
            chars.append(char)


def _token(source: _Input) -> Token:
    start = source.at
    source.at += 1
    while source.peek() and source.peek() in _TOKEN_CHARS:
        source.at += 1
    return Token(source.text[start : source.at])


def _byte_sequence(source: _Input) -> bytes:
    source.take()
    end = source.text.find(":", source.at)
    if end == -1:
        raise StructuredFieldError("a byte sequence ends with :")
    content = source.text[source.at : end]
    source.at = end + 1
    if not set(content) <= _BASE64:
        raise StructuredFieldError("a byte sequence is base64")
    try:
        # RFC 8941 section 4.2.7: missing padding is not an error.
        return base64.b64decode(content + "=" * (-len(content) % 4), validate=True)
    except binascii.Error:
        raise StructuredFieldError("a byte sequence is base64")


def _boolean(source: _Input) -> bool:
    source.take()
    char = source.take()
    if char not in ("0", "1"):
        raise StructuredFieldError("a boolean is ?0 or ?1")
    return char == "1"


def serialize_dictionary(dictionary: Dictionary) -> bytes:
    """
    The canonical field value of a Dictionary (RFC 8941 section 4.1.2).
    """
    members = []
    for key, (value, parameters) in dictionary.items():
        if value is True:
            members.append(key + _serialize_parameters(parameters))
        elif isinstance(value, list):
            inner = " ".join(_serialize_item(item) for item in value)
            members.append("%s=(%s)%s" % (key, inner, _serialize_parameters(parameters)))
        else:
            members.append("%s=%s" % (key, _serialize_item((value, parameters))))
    return ", ".join(members).encode("ascii")


def _serialize_item(item: Item) -> str:
    value, parameters = item
    return _serialize_bare_item(value) + _serialize_parameters(parameters)


def _serialize_parameters(parameters: Parameters) -> str:
    return "".join(
        ";" + key if value is True else ";%s=%s" % (key, _serialize_bare_item(value))
        for key, value in parameters.items()
    )


def _serialize_bare_item(value: BareItem) -> str:
    if isinstance(value, bool):
        return "?1" if value else "?0"
    if isinstance(value, int):
        return "%d" % (value,)
    if isinstance(value, Decimal):
        rounded = value.quantize(Decimal("0.001"), rounding=ROUND_HALF_EVEN)
        text = format(rounded, "f").rstrip("0")
        return text + "0" if text.endswith(".") else text
    if isinstance(value, Token):
        return value.value
    if isinstance(value, bytes):
        return ":" + base64.b64encode(value).decode("ascii") + ":"
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
