"""Lexical scans of JSON text, shared by the JSON and JSON Lines readers and by validation: where
a value ends and how deep it nests, found without decoding it.

json's decoder (and json.dumps) recurses once per level, so a record's depth is measured here,
iteratively, before it is decoded; and the JSON reader, which decodes from a window of the file,
asks here whether a value that failed to decode was cut off by the window's end or is wrong.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Final

from chalicelib.intake.parsing.base import MAX_JSON_DEPTH

_JSON_STRING: Final = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_JSON_BRACKET_OR_QUOTE: Final = re.compile(r'["{}\[\]]')
_JSON_SCALAR_END: Final = re.compile(r"[\s,\]}]")


def _depths(text: str, pos: int) -> Iterator[tuple[int, int]]:
    """(index after it, depth after it) for each bracket of JSON text from `pos`, skipping
    strings; it stops at the text's end or at a string left open. Lexical and iterative: text
    too deep for json's decoder, which recurses once per level, is measured without recursing."""
    depth = 0
    index = pos
    while (match := _JSON_BRACKET_OR_QUOTE.search(text, index)) is not None:
        if match.group() == '"':
            string = _JSON_STRING.match(text, match.start())
            if string is None:
                return
            index = string.end()
            continue
        depth += 1 if match.group() in "{[" else -1
        index = match.end()
        yield index, depth


def scan_nesting(text: str, pos: int, limit: int) -> tuple[int | None, bool]:
    """Where the array or object starting at text[pos] ends (None: not within `text`), and
    whether it nests more than `limit` levels deep."""
    deep = False
    for index, depth in _depths(text, pos):
        deep = deep or depth > limit
        if depth <= 0:
            return index, deep
    return None, deep


def nesting_depth(text: str) -> int:
    """How deep the arrays and objects of JSON text nest (0 for a scalar), found lexically so
    that text too deep for json.loads can be refused before it recurses. Brackets inside
    strings do not count; text that is not JSON gives a number that means nothing."""
    return max((depth for _, depth in _depths(text, 0)), default=0)


def value_is_complete(text: str, pos: int) -> bool:
    """Whether text[pos:] holds a whole JSON value lexically (strings closed, brackets balanced).

    Only consulted when raw_decode fails before the end of the file, to tell a value cut off by
    the end of the window (read more) from a value that is wrong (report it).
    """
    first = text[pos : pos + 1]
    if not first:
        return False
    if first == '"':
        return _JSON_STRING.match(text, pos) is not None
    if first not in "{[":
        return _JSON_SCALAR_END.search(text, pos) is not None
    end, _ = scan_nesting(text, pos, MAX_JSON_DEPTH)
    return end is not None


def ends_within(text: str, end: int, value: object) -> bool:
    """Whether a value raw_decode found is really all there is of it.

    Strings, arrays, objects and literals end with their own last character, but a number cut
    by the end of the window ("12" of "125", "1" of "1.5") also decodes: only a delimiter after
    it in the window proves it whole.
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _JSON_SCALAR_END.search(text, end) is not None
    return end < len(text)
