"""
Splitting a raw HTTP response into its parts.
"""

from __future__ import annotations


def split_response(raw: bytes):
    """
    Split one raw HTTP/1.1 response into (status line, header dict, body).
    """
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b": ")
        headers.setdefault(name.lower(), []).append(value)
    return lines[0], headers, body
