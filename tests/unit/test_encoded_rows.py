"""A row's JSON encoded once (chalicelib.intake.encoded): its size as sent and its chunk line are
exactly what serialising the whole record gives, for any parameters and carried columns."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.records import APIS, CallRequest, ChunkRow
from chalicelib.intake.encoded import carried_member, chunk_line, compact
from chalicelib.intake.rows import encoded_bytes, travelling_bytes

# Any text: non-ASCII, escapes, surrogates' neighbours, quotes and backslashes.
TEXT = st.text(max_size=30)
PARAMS = st.dictionaries(TEXT, st.one_of(TEXT, st.lists(TEXT, max_size=3)), max_size=6)
CARRIED = st.dictionaries(TEXT, TEXT, max_size=3)
NUMBERS = st.integers(min_value=0, max_value=10**12)


@given(NUMBERS, st.sampled_from(APIS), PARAMS, CARRIED)
def test_encoded_bytes_is_travelling_bytes(
    number: int, api: str, params: dict[str, str | list[str]], carried: dict[str, str]
) -> None:
    request = CallRequest(api, params, carried=carried)  # type: ignore[arg-type]
    assert encoded_bytes(number, request, compact(params)) == travelling_bytes(number, request)


@given(
    NUMBERS,
    st.sampled_from(APIS),
    PARAMS,
    CARRIED,
    st.integers(min_value=0, max_value=10**8),
    st.integers(min_value=1, max_value=100_000),
)
def test_chunk_line_is_the_chunk_rows_json(
    number: int,
    api: str,
    params: dict[str, str | list[str]],
    carried: dict[str, str],
    rows: int,
    cps: int,
) -> None:
    offset = rows / cps
    row = ChunkRow(number, api, params, offset, carried)  # type: ignore[arg-type]
    expected = json.dumps(row.to_json(), separators=(",", ":"))
    assert chunk_line(number, api, compact(params), offset, carried_member(carried)) == expected
    assert ChunkRow.from_json(json.loads(expected)) == row
