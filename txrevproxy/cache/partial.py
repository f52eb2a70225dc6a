"""
Partial responses (RFC 9111 sections 3.3 and 3.4): the pieces of one
representation that 206 answers brought, combined into one stored
response, which becomes a complete 200 when they cover it all.

A stored partial response has status 206, no Content-Range among its
fields (each answer computes its own), and a L{Pieces} body: the complete
length and the byte ranges held, each a view of a body a store's writer
made.  Views let pieces be cut where a newer one overlaps them without
copying a file; a memory store's bytes are cut by slicing, so what it
holds is what it counts.
"""

from __future__ import annotations

from typing import IO, Any, List, Optional, Tuple

import attr

from . import policy

Header = Tuple[bytes, bytes]


@attr.s(frozen=True, auto_attribs=True)
class Piece:
    """
    A byte range of a representation, held in a stored body.

    @ivar first: where it starts in the representation.
    @ivar body: the body holding it: L{bytes}, or an object with C{len()}
        and C{open()} (see L{txrevproxy.interfaces.IBodyWriter.close}).
    @ivar offset: where it starts in C{body}.
    @ivar length: how many bytes it has.
    """

    first: int
    body: Any
    offset: int
    length: int

    @property
    def end(self) -> int:
        """
        Where the next byte after it would be in the representation.
        """
        return self.first + self.length

    def cut(self, first: int, end: int) -> Optional[Piece]:
        """
        The part of it within C{[first, end)} of the representation, or
        L{None} when there is none.
        """
        first, end = max(first, self.first), min(end, self.end)
        if first >= end:
            return None
        offset = self.offset + first - self.first
        if isinstance(self.body, bytes):
            return Piece(first, self.body[offset : offset + end - first], 0, end - first)
        return Piece(first, self.body, offset, end - first)


class Pieces:
    """
    The body of a stored partial response, or of a complete one whose
    pieces live in several files: the pieces, in order, never overlapping.

    C{len()} is the bytes covered (the complete length once complete, as
    for any stored body), and L{open} reads them as one file.

    @ivar length: the complete length of the representation.
    @ivar pieces: the L{Piece}s, by position.
    """

    def __init__(self, length: int, pieces: List[Piece]) -> None:
        self.length = length
        self.pieces = sorted(pieces, key=lambda piece: piece.first)

    def __len__(self) -> int:
        return sum(piece.length for piece in self.pieces)

    def bodies(self) -> List[Any]:
        """
        The stored bodies its pieces are views of, each once.
        """
        seen: List[Any] = []
        for piece in self.pieces:
            if not any(body is piece.body for body in seen):
                seen.append(piece.body)
        return seen

    @property
    def held(self) -> int:
        """
        The bytes of the bodies it keeps (more than C{len()} when a file
        is only partly used).
        """
        return sum(len(body) for body in self.bodies())

    def covers(self, first: int, last: int) -> bool:
        """
        Whether it holds every byte of C{first} to C{last}, inclusive.
        """
        position = first
        for piece in self.pieces:
            if piece.first <= position < piece.end:
                position = piece.end
            if position > last:
                return True
        return False

    def complete(self) -> bool:
        return self.length > 0 and self.covers(0, self.length - 1)

    def open(self) -> IO[bytes]:
        return PiecesReader(self.pieces)


class PiecesReader:
    """
    The pieces of a L{Pieces} read as one file, positioned in the
    representation; reading where no piece is gives C{b""} (the reader
    of a truncated file then aborts the answer).  Each file is opened
    when first read.
    """

    def __init__(self, pieces: List[Piece]) -> None:
        self._pieces = pieces
        self._position = 0
        self._opened: List[Tuple[Any, IO[bytes]]] = []

    def seek(self, position: int) -> None:
        self._position = position

    def read(self, size: int) -> bytes:
        position = self._position
        for piece in self._pieces:
            if piece.first <= position < piece.end:
                break
        else:
            return b""
        start = piece.offset + position - piece.first
        size = min(size, piece.end - position)
        if isinstance(piece.body, bytes):
            data = piece.body[start : start + size]
        else:
            source = self._source(piece.body)
            source.seek(start)
            data = source.read(size)
        self._position += len(data)
        return data

    def _source(self, body) -> IO[bytes]:
        for opened, source in self._opened:
            if opened is body:
                return source
        source = body.open()
        self._opened.append((body, source))
        return source

    def close(self) -> None:
        for _, source in self._opened:
            source.close()
        self._opened = []


def bodies_of(body) -> List[Any]:
    """
    The stored bodies a stored response's body is made of: itself, or
    those of its L{Pieces}.
    """
    return body.bodies() if isinstance(body, Pieces) else [body]


def held_size(body) -> int:
    """
    The bytes a stored response's body keeps in its store.
    """
    return body.held if isinstance(body, Pieces) else len(body)


def representation_length(stored) -> int:
    """
    The complete length of a stored response's representation.
    """
    body = stored.body
    return body.length if stored.status == 206 else len(body)


def answers(stored, method: bytes, request_headers: List[Header]) -> bool:
    """
    Whether a stored response may answer a request as far as its body
    goes: a complete one always; a partial one only a GET for one range
    (If-Range matching) that it holds all of, or that no representation
    of its length has (answered 416).  A full GET, a HEAD (whose
    Content-Length would be the complete one) or a range it lacks goes
    to the backend (RFC 9111 section 3.3).
    """
    if stored.status != 206:
        return True
    if method != b"GET":
        return False
    length = stored.body.length
    chosen = policy.byte_range(
        policy.first_value(request_headers, b"range"),
        policy.first_value(request_headers, b"if-range"),
        list(stored.headers),
        length,
    )
    if chosen is None:
        return False
    first, last = chosen
    return first == length or stored.body.covers(first, last)


def _pieces_of(stored) -> Optional[Pieces]:
    """
    What a stored response holds of its representation, for combining
    with a new piece: its L{Pieces}, or the whole body of a 200 (a single
    piece, so that a complete response and a piece of the same
    representation combine too); L{None} for any other status.
    """
    body = stored.body
    if isinstance(body, Pieces):
        return body
    if stored.status == 200:
        return Pieces(len(body), [Piece(0, body, 0, len(body))])
    return None


def combined(old, new, max_size: int):
    """
    The response to store when the piece C{new} arrives while C{old} is
    stored for the same key and Vary values (RFC 9111 section 3.4, RFC
    9110 section 15.3.7.3).

    They combine when both have the same strong validator and the union
    fits C{max_size}: the union of their bytes (the new piece's where they
    overlap), with the fields of a stored 200 when C{old} is one, else
    C{old}'s fields replaced by the new piece's (its Content-Range aside)
    and the new piece's timing.  A union that covers the whole
    representation is a complete 200.  Otherwise (no C{old}, another
    validator, too large) the new piece replaces C{old}: the newest
    response tells what the representation is now.

    @param old: the L{StoredResponse} stored now, or L{None}.
    @param new: the piece: a L{StoredResponse} with status 206, whose
        body is a L{Pieces} of one piece.
    @return: the L{StoredResponse} to store.
    """
    if old is None:
        return new
    held = _pieces_of(old)
    validator = policy.strong_validator(new.headers)
    if (
        held is None
        or held.length != new.body.length
        or validator is None
        or policy.strong_validator(old.headers) != validator
    ):
        return new
    (piece,) = new.body.pieces
    kept = [piece]
    for part in held.pieces:
        for cut in (part.cut(0, piece.first), part.cut(piece.end, held.length)):
            if cut is not None:
                kept.append(cut)
    union = Pieces(held.length, kept)
    if union.held > max_size:
        return new
    if old.status == 200:
        result = attr.evolve(old, body=union)
    else:
        headers = policy.updated_headers(list(old.headers), list(new.headers))
        result = attr.evolve(new, headers=tuple(headers), body=union)
    if not union.complete():
        return result
    reason = old.reason if old.status == 200 else b"OK"
    return attr.evolve(result, status=200, reason=reason, body=_whole(union))


def _whole(union: Pieces):
    """
    The body of a complete union: one L{bytes} when every piece is in
    memory (served as any stored body), else the L{Pieces} themselves.
    """
    if all(isinstance(piece.body, bytes) for piece in union.pieces):
        return b"".join(piece.body for piece in union.pieces)
    return union


def piece(stored, first: int, complete: int):
    """
    A received 206, stored as it came, made a partial response: its
    Content-Range out of its fields, its body the one L{Piece} at
    C{first} of a representation of C{complete} bytes.
    """
    body = stored.body
    return attr.evolve(
        stored,
        headers=tuple(
            pair for pair in stored.headers if pair[0].lower() != b"content-range"
        ),
        body=Pieces(complete, [Piece(first, body, 0, len(body))]),
    )
