"""The split's per-row shortcuts of this round against the plain forms they stand for: a chunk
line written at once, a record without an api column taken for the default API without looking,
and the carried columns' sources kept by the job's settings rather than by its Carry."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.aws.buckets import SpooledFile
from chalicelib.core.records import APIS, ChunkRow
from chalicelib.intake.carry import Carry, _sources
from chalicelib.intake.chunking import ChunkWriter
from chalicelib.intake.validation import InvalidRow
from chalicelib.intake.validation.api_params import COLUMNS, DEFAULT_API
from chalicelib.intake.validation.row_checks import _api, _layout

TEXT = st.text(max_size=12)
PARAMS = st.dictionaries(TEXT, st.one_of(TEXT, st.lists(TEXT, max_size=3)), max_size=4)
ROWS = st.lists(
    st.tuples(
        st.sampled_from([(), ("America/New_York",), ("Europe/Paris", "UTC")]),
        st.sampled_from(APIS),
        PARAMS,
        st.dictionaries(TEXT, TEXT, max_size=2),
    ),
    max_size=12,
)


@given(ROWS, st.integers(1, 4), st.integers(1, 50))
def test_chunks_written_a_line_at_once_are_the_chunk_rows_json_lines(
    rows: list[tuple[tuple[str, ...], str, dict[str, Any], dict[str, str]]], size: int, cps: int
) -> None:
    stored: list[tuple[int, int, bytes, int]] = []

    def put(group: int, number: int, chunk: SpooledFile) -> None:
        stored.append((group, number, chunk.rewind().read(), chunk.lines))

    writer = ChunkWriter(put, size, cps)
    expected: dict[tuple[str, ...], list[str]] = {}
    for number, (zones, api, params, carried) in enumerate(rows):
        writer.add(zones, number, ChunkRow(number, api, params, 0.0, carried))
        lines = expected.setdefault(zones, [])
        row = ChunkRow(number, api, params, len(lines) / cps, carried)
        lines.append(json.dumps(row.to_json(), separators=(",", ":")) + "\n")
    writer.finish()
    writer.close()
    order = list(expected)
    for group, number, data, count in stored:
        lines = expected[order[group]][number * size : (number + 1) * size]
        assert data == "".join(lines).encode()
        assert count == len(lines)
    assert sum(count for *_, count in stored) == len(rows)


_NAMES = st.sampled_from(
    sorted({name for columns in COLUMNS.values() for name in columns} | {"api", " API ", "ref"})
)
_VALUES = st.one_of(st.sampled_from(["", " ", "calls", "Lookup", "fax"]), TEXT, st.none())


@given(st.dictionaries(_NAMES, _VALUES, max_size=6))
def test_a_record_without_an_api_column_is_for_the_default_api(fields: dict[str, Any]) -> None:
    if _layout(tuple(fields)).api_columns:
        return
    assert _api(fields) == DEFAULT_API


CARRIES = st.sampled_from(
    [Carry(), Carry("Ref"), Carry("id", ("note",)), Carry("reference", ("Note", "x"))]
)
CARRY_NAMES = st.lists(
    st.sampled_from(["reference", "Reference", "ref", "REF", "id", "note", "NOTE", "x", "To"]),
    max_size=5,
    unique=True,
)


def _outcome(carry: Carry, fields: dict[str, Any]) -> Any:
    try:
        return carry.carried_of(fields)
    except InvalidRow as error:
        return str(error)


@given(st.lists(st.tuples(CARRIES, CARRY_NAMES, st.sampled_from(["", "v", 7, None])), max_size=8))
def test_carried_columns_kept_by_settings_are_those_found_afresh(
    cases: list[tuple[Carry, list[str], Any]],
) -> None:
    # One after another, so a kept answer for one job's settings meets another job's.
    for carry, names, value in cases:
        fields = dict.fromkeys(names, value)
        kept = _outcome(carry, fields)
        _sources.cache_clear()
        assert kept == _outcome(carry, fields)
