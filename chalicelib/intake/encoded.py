"""A valid row's JSON encoded once: the compact JSON of its parameters gives both its size as
sent (chalicelib.intake.rows.travelling_bytes, the row-size limit) and its line in a chunk file
(chalicelib.intake.chunking), so a row's parameters are serialised once, not three times.

Both are exact: a JSON object is its members joined by commas, so a record's length is the
length of its fixed members plus each variable member's own JSON, and a chunk line is the same
text `json.dumps(ChunkRow.to_json(), separators=(",", ":"))` writes (ensure_ascii, so one
character is one byte). tests/unit/test_encoded_rows.py holds both to the slow forms.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from json.encoder import c_make_encoder, encode_basestring_ascii  # type: ignore[attr-defined]
from typing import Any, Final

from chalicelib.core.records import APIS

_COMPACT: Final = (",", ":")
# What json.dumps(value, separators=_COMPACT) uses, built once: dumps builds an encoder per call
# when given any argument.
_ENCODE: Final = json.JSONEncoder(separators=_COMPACT).encode


def _c_encoder() -> Callable[[Any], str] | None:
    """_ENCODE without what JSONEncoder.encode does on every call (the C encoder built anew and
    a circular-reference check): a row's values are decoded text, never circular. None without
    json's C speedups."""
    if c_make_encoder is None:
        return None
    # The arguments JSONEncoder.iterencode gives it, for separators=_COMPACT and no markers.
    encode = c_make_encoder(
        None, json.JSONEncoder().default, encode_basestring_ascii, None, ":", ",",
        False, False, True,
    )  # fmt: skip
    return lambda value: "".join(encode(value, 0))


_FAST_ENCODE: Final = _c_encoder() or _ENCODE
_CARRIED_KEY: Final = ',"carried":'
# Every row names one of a few APIs: each one's JSON is written once.
_API_JSON: Final[dict[str, str]] = {api: _ENCODE(api) for api in APIS}


def compact(value: Any) -> str:
    """`value` as the pipeline writes it: compact JSON, non-ASCII escaped."""
    return _FAST_ENCODE(value)


def api_json(api: str) -> str:
    """compact(api), looked up for the APIs there are."""
    known = _API_JSON.get(api)
    return compact(api) if known is None else known


def carried_member(carried: Mapping[str, str]) -> str:
    """The `,"carried":{...}` member of a record; "" when there is nothing to carry
    (chalicelib.core.records.carried_json)."""
    return _CARRIED_KEY + compact(dict(carried)) if carried else ""


def sized_from(empty: int, number: int, api_json: str, params_json: str, carried: str) -> int:
    """The length of a record whose length with row 0, api "" and params {} and nothing carried
    is `empty`, for this row's number, api's JSON, parameters' JSON and carried member."""
    return empty + len(str(number)) - 1 + len(api_json) - 2 + len(params_json) - 2 + len(carried)


def chunk_line(number: int, api: str, params_json: str, offset: float, carried: str) -> str:
    """The chunk file's line of a row (ChunkRow.to_json, compact)."""
    # json writes a float as repr() does; an offset is finite (rows / cps).
    return (
        f'{{"row":{number},"api":{api_json(api)},"params":{params_json},'
        f'"offset":{float(offset)!r}{carried}}}'
    )
