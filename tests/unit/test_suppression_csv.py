"""Suppression lists as CSV: reading an import file (checked whole) and the export."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.sending.suppression import Suppression
from chalicelib.sending.suppression_csv import (
    SHOWN_BAD_LINES,
    BadLines,
    bad_line_messages,
    export_csv,
    read_import,
)

NOW = 1_700_000_000.0
A, B = "+14155550100", "+442079460958"

# Twilio's test block is always valid; the others in the forms people type.
numbers = st.one_of(
    st.integers(0, 9999).map(lambda n: f"+1500555{n:04d}"),
    st.sampled_from(["+14155550100", "+442079460958", "+33142685300", "+61291234567"]),
)
reasons = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1
).filter(lambda r: r == r.strip() and r != "")
bad_values = st.sampled_from(["call me", "+1234567", "4155550100", "+1 415 555 0100 x12", "++1"])


def entries_of(pairs: dict[str, str], source: str = "import") -> list[Suppression]:
    return [Suppression(n, r, None, None, NOW, source) for n, r in pairs.items()]


@given(st.dictionaries(numbers, reasons, max_size=30))
def test_suppression_csv_export_import_export_is_identical(pairs: dict[str, str]) -> None:
    exported = export_csv(entries_of(pairs))
    again = export_csv(entries_of(read_import(exported, None)))
    assert again == exported
    assert set(read_import(exported, None)) == set(pairs)


@given(st.lists(numbers, max_size=20), st.data())
def test_suppression_csv_one_bad_line_imports_nothing(good: list[str], data: st.DataObject) -> None:
    at = data.draw(st.integers(0, len(good)))
    lines = ["number", *good[:at], data.draw(bad_values), *good[at:]]
    with pytest.raises(BadLines) as raised:
        read_import("\n".join(lines), None)
    assert [n for n, _ in raised.value.lines] == [at + 2]


def test_suppression_csv_reads_bom_crlf_blank_lines_and_quoted_cells() -> None:
    text = (
        '\ufeffPhone,Reason\r\n\r\n"+1 415 555 0100","said ""stop"",\r\ntwice"\r\n'
        "  \r\n+44 20 7946 0958,\r\n"
    )
    assert read_import(text, None, reason="list") == {A: 'said "stop",\r\ntwice', B: "list"}


def test_suppression_csv_counts_lines_as_an_editor_does_after_a_multiline_cell() -> None:
    text = 'number,reason\n+14155550100,"two\nlines"\n\nnot a number\n'
    with pytest.raises(BadLines) as raised:
        read_import(text, None)
    assert [n for n, _ in raised.value.lines] == [5]
    assert "not a number" in raised.value.lines[0][1]


@pytest.mark.parametrize("header", ["number", "NUMBER", "To", "phone", "reason,number,extra"])
def test_suppression_csv_finds_the_number_column_by_its_name(header: str) -> None:
    names = header.split(",")
    cells = {"number": A, "reason": "why", "extra": "x"}
    row = ",".join(cells.get(n.lower(), A) for n in names)
    assert read_import(f"{header}\n{row}\n", None) == {
        A: cells["reason"] if "reason" in names else "imported"
    }


def test_suppression_csv_headerless_is_one_number_a_line() -> None:
    assert read_import(f"{A}\n{B},\n", None) == {A: "imported", B: "imported"}
    with pytest.raises(BadLines, match="line 2: 2 cells: give one number a line"):
        read_import(f"{A}\n{B},why\n", None)


def test_suppression_csv_keeps_one_entry_for_a_repeated_number() -> None:
    text = f"number,reason\n{A},first\n+1 (415) 555-0100,second\n"
    assert read_import(text, None) == {A: "first"}


def test_suppression_csv_reads_national_numbers_in_the_default_region_only() -> None:
    assert read_import("(415) 555-0100\n", "US") == {A: "imported"}
    with pytest.raises(BadLines, match=r"line 1: .*no country code"):
        read_import("(415) 555-0100\n", None)


def test_suppression_csv_reports_every_bad_line_with_why() -> None:
    text = f"number,reason\n{A}\n,no number\ncall me\n+1234567\n"
    with pytest.raises(BadLines) as raised:
        read_import(text, None)
    assert [n for n, _ in raised.value.lines] == [3, 4, 5]
    assert raised.value.lines[0][1] == "no number"
    assert "Traceback" not in str(raised.value)


def test_suppression_csv_shows_the_first_bad_lines_and_counts_the_rest() -> None:
    lines = [(n, "bad") for n in range(1, SHOWN_BAD_LINES + 8)]
    shown = bad_line_messages(lines)
    assert shown[:2] == ["line 1: bad", "line 2: bad"]
    assert shown[-2:] == ["... and 7 more bad line(s)", "nothing imported"]
    assert len(shown) == SHOWN_BAD_LINES + 2


def test_suppression_csv_export_is_sorted_dated_and_neutralised() -> None:
    entries = [
        Suppression(B, "=HYPERLINK(1)", 21610, "job-1", 0.0, "send_error"),
        Suppression(A, "@x", None, None, None, None),
    ]
    assert export_csv(entries).splitlines() == [
        "number,reason,source,added_at",
        "'+14155550100,'@x,,",
        "'+442079460958,'=HYPERLINK(1),send_error,1970-01-01T00:00:00Z",
    ]


def test_suppression_csv_of_an_empty_file_or_only_a_header_is_empty() -> None:
    assert read_import("", None) == {}
    assert read_import("\ufeffnumber,reason\r\n", None) == {}
