"""The reconciler's pure part: settling, merging outcomes, the outcome CSV, stalls, rejects.csv."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.aws.buckets import SpooledFile
from downstream.reconcile import (
    RowOutcome,
    is_stalled,
    job_settled,
    merge_outcomes,
    read_rejects_csv,
    write_outcomes_csv,
)

NUMBER = "+14155550100"
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


def sent(row: int, to: str = NUMBER) -> RowOutcome:
    return RowOutcome(
        row=row, to=to, api="messages", outcome="sent", error_code=None, sid=f"SM{row}", reason=None
    )


def failed(row: int, code: int) -> RowOutcome:
    return RowOutcome(
        row=row, to=NUMBER, api="messages", outcome="failed", error_code=code, sid=None, reason=None
    )


def rejected(row: int, reason: str) -> RowOutcome:
    return RowOutcome(
        row=row, to=None, api=None, outcome="rejected", error_code=None, sid=None, reason=reason
    )


def csv_rows(outcomes: list[RowOutcome]) -> list[list[str]]:
    out = io.StringIO(newline="")
    write_outcomes_csv(out, outcomes)
    return list(csv.reader(io.StringIO(out.getvalue(), newline="")))


def restore(cell: str) -> str:
    """A cell as it was before it was neutralised."""
    return cell[1:] if cell[:1] == "'" and cell[1:2] in FORMULA_PREFIXES else cell


# -- job_settled --------------------------------------------------------------------------------


def test_job_settled_when_every_row_has_a_final_outcome() -> None:
    counts = {"sent": 5, "failed": 1, "suppressed": 1, "unknown": 1, "dead_lettered": 1}

    assert job_settled(10, 1, counts) is True
    assert job_settled(11, 1, counts) is False


def test_job_settled_ignores_rows_still_retrying() -> None:
    assert job_settled(3, 0, {"sent": 2, "retrying": 1}) is False


def test_job_settled_takes_rejected_rows_from_the_split_only() -> None:
    # The results table never holds rejected rows; a stray count must not settle a job early.
    assert job_settled(4, 1, {"sent": 2, "rejected": 1}) is False


def test_job_settled_when_every_row_was_rejected() -> None:
    assert job_settled(3, 3, {}) is True


def test_job_settled_of_an_empty_file() -> None:
    assert job_settled(0, 0, {}) is True


# -- merge_outcomes -----------------------------------------------------------------------------


def test_merge_outcomes_interleaves_rejections_by_row() -> None:
    merged = list(merge_outcomes([(2, "missing To"), (5, "bad")], [sent(1), sent(3), sent(4)]))

    assert merged == [sent(1), rejected(2, "missing To"), sent(3), sent(4), rejected(5, "bad")]


def test_merge_outcomes_sorts_inputs_given_out_of_order() -> None:
    merged = list(merge_outcomes([(4, "bad"), (1, "bad")], [sent(3), sent(2)]))

    assert [o.row for o in merged] == [1, 2, 3, 4]


def test_merge_outcomes_of_nothing_is_empty() -> None:
    assert list(merge_outcomes([], [])) == []


def test_merge_outcomes_refuses_a_row_both_rejected_and_sent() -> None:
    with pytest.raises(ValueError, match="row 2 has two outcomes"):
        merge_outcomes([(2, "bad")], [sent(1), sent(2)])


def test_merge_outcomes_refuses_a_row_recorded_twice() -> None:
    with pytest.raises(ValueError, match="row 1 has two outcomes"):
        merge_outcomes([], [sent(1), failed(1, 21211)])


@given(st.data())
def test_merge_outcomes_is_sorted_complete_and_once_per_row(data: st.DataObject) -> None:
    rows = data.draw(st.sets(st.integers(min_value=1, max_value=100_000), max_size=60))
    rejected_rows = data.draw(st.sets(st.sampled_from(sorted(rows)))) if rows else set()
    rejections = data.draw(st.permutations([(r, f"reason {r}") for r in rejected_rows]))
    results = data.draw(st.permutations([sent(r) for r in rows - rejected_rows]))

    merged = list(merge_outcomes(rejections, results))

    assert [o.row for o in merged] == sorted(rows)
    assert {o.row for o in merged if o.outcome == "rejected"} == rejected_rows
    assert all(o.reason == f"reason {o.row}" for o in merged if o.outcome == "rejected")


# -- write_outcomes_csv -------------------------------------------------------------------------


def test_write_outcomes_csv_writes_a_header_and_a_line_per_row() -> None:
    out = io.StringIO(newline="")

    written = write_outcomes_csv(out, [sent(1), rejected(2, "missing To"), failed(3, 21211)])

    assert written == 3
    assert list(csv.reader(io.StringIO(out.getvalue(), newline=""))) == [
        HEADER_WITH_REFERENCE,
        ["1", NUMBER, "messages", "sent", "", "SM1", "", "", *NO_DELIVERY],
        ["2", "", "", "rejected", "", "", "missing To", "", *NO_DELIVERY],
        ["3", NUMBER, "messages", "failed", "21211", "", "", "", *NO_DELIVERY],
    ]


def test_write_outcomes_csv_of_no_rows_is_the_header() -> None:
    out = io.StringIO(newline="")

    assert write_outcomes_csv(out, []) == 0
    assert out.getvalue() == ",".join(HEADER_WITH_REFERENCE) + "\r\n"


def _plain(text: str) -> bool:
    return not text.startswith("'")


# Hostile references: a spreadsheet user's id may hold anything a cell can.
HOSTILE = [
    "cust-42",
    "Zoë 🙂 李",
    "a,b",
    'say "hi"',
    "line one\nline two\r\n",
    "=cmd()",
    " padded ",
    "r" * 256,
]


@given(
    st.lists(
        # A value that itself begins with an apostrophe is written as it is (the module's
        # docstring): restore() cannot tell it from an inert formula, so it is left out here.
        st.sampled_from(HOSTILE) | st.text(min_size=1, max_size=300).filter(_plain),
        min_size=1,
        max_size=8,
    ),
    st.lists(st.text(min_size=0, max_size=40).filter(_plain), min_size=2, max_size=2),
)
def test_write_outcomes_csv_carries_any_reference_and_kept_column_back_intact(
    references: list[str], kept_values: list[str]
) -> None:
    kept = ["name", "segment"]
    outcomes = [
        RowOutcome(
            row=i,
            to=NUMBER,
            api="messages",
            outcome="sent",
            error_code=None,
            sid=f"SM{i}",
            reason=None,
            carried={
                "reference": ref,
                **{k: v for k, v in zip(kept, kept_values, strict=True) if v},
            },
        )
        for i, ref in enumerate(references, start=1)
    ]
    out = io.StringIO(newline="")
    write_outcomes_csv(out, outcomes, kept)
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert rows[0] == [*HEADER_WITH_REFERENCE, *kept]
    assert [restore(r[7]) for r in rows[1:]] == references
    for row in rows[1:]:
        assert [restore(c) for c in row[13:]] == kept_values


DELIVERY_COLUMNS = [
    "delivery_status",
    "delivery_error_code",
    "delivered_at",
    "call_duration",
    "answered_by",
]
NO_DELIVERY = [""] * len(DELIVERY_COLUMNS)
HEADER_WITH_REFERENCE = [
    "row",
    "to",
    "api",
    "outcome",
    "error_code",
    "sid",
    "reason",
    "reference",
    *DELIVERY_COLUMNS,
]


@pytest.mark.parametrize(
    "reason",
    [
        '=HYPERLINK("http://example.com/x","click")',
        "@SUM(1)",
        "+cmd|' /C calc'!A0",
        "-2+3",
        "\t=1+1",
        "\r=1+1",
        "+1 415 555 0100",
        "+",
    ],
)
def test_write_outcomes_csv_neutralises_formulas(reason: str) -> None:
    cell = csv_rows([rejected(1, reason)])[1][6]

    assert cell == "'" + reason
    assert restore(cell) == reason


def test_write_outcomes_csv_neutralises_a_to_that_is_not_e164() -> None:
    cell = csv_rows([sent(1, to="=1+2")])[1][1]

    assert cell == "'=1+2"


def test_write_outcomes_csv_keeps_e164_numbers_as_they_are() -> None:
    to = csv_rows([sent(1)])[1][1]

    assert to == NUMBER
    assert restore(to) == NUMBER


def test_write_outcomes_csv_leaves_other_text_alone() -> None:
    row = csv_rows([sent(1, to="whatsapp:+14155550100"), rejected(2, "'x' is not E.164")])

    assert row[1][1] == "whatsapp:+14155550100"
    assert row[2][6] == "'x' is not E.164"


@given(st.text(), st.text())
def test_write_outcomes_csv_cells_are_inert_and_recoverable(to: str, reason: str) -> None:
    row = csv_rows([RowOutcome(1, to, "messages", "failed", None, None, reason)])[1]

    for cell, original in ((row[1], to), (row[6], reason)):
        digits = original[1:]
        is_e164 = original[:1] == "+" and digits != "" and all(c in "0123456789" for c in digits)
        assert is_e164 or not cell.startswith(FORMULA_PREFIXES)
        # At most one apostrophe is added, and only before a formula character.
        assert cell == original or cell == "'" + original
        assert cell == original or original.startswith(FORMULA_PREFIXES)


def test_write_outcomes_csv_leaves_a_value_starting_with_an_apostrophe_as_it_is() -> None:
    # A reason quoting a value starts with the apostrophe of its repr: already inert.
    cell = csv_rows([rejected(1, "'=1+1' is not an E.164 number")])[1][6]

    assert cell == "'=1+1' is not an E.164 number"


# -- is_stalled ---------------------------------------------------------------------------------


def test_is_stalled_after_the_quiet_period() -> None:
    assert is_stalled(1000.0, 1299.0, after_seconds=300) is False
    assert is_stalled(1000.0, 1300.0, after_seconds=300) is True


def test_is_stalled_never_without_recorded_progress() -> None:
    assert is_stalled(None, 1_000_000.0, after_seconds=1) is False


def test_is_stalled_not_when_the_clock_is_behind() -> None:
    assert is_stalled(1000.0, 900.0, after_seconds=0) is False


# -- read_rejects_csv ---------------------------------------------------------------------------


def splitter_rejects(rows: list[tuple[int, str]]) -> str:
    """rejects.csv as the splitter writes it."""
    spooled = SpooledFile()
    spooled.write_row(["row", "reason"])
    for row, reason in rows:
        spooled.write_row([str(row), reason])
    text = spooled.rewind().read().decode("utf-8")
    spooled.close()
    return text


def test_read_rejects_csv_reads_the_splitters_file_back() -> None:
    text = splitter_rejects([(2, "missing To"), (7, "'abc' is not an E.164 number")])

    assert list(read_rejects_csv(text.splitlines(keepends=True))) == [
        (2, "missing To"),
        (7, "'abc' is not an E.164 number"),
    ]


def test_read_rejects_csv_keeps_a_line_break_in_a_reason() -> None:
    text = splitter_rejects([(3, "line one\nline two")])

    assert list(read_rejects_csv(io.StringIO(text, newline=""))) == [(3, "line one\nline two")]


def test_read_rejects_csv_keeps_reasons_neutralised() -> None:
    text = splitter_rejects([(4, "=HYPERLINK(1)")])

    assert list(read_rejects_csv(text.splitlines(keepends=True))) == [(4, "'=HYPERLINK(1)")]


def test_read_rejects_csv_skips_blank_lines_and_reads_an_empty_file() -> None:
    assert list(read_rejects_csv(["row,reason\r\n", "\r\n", "5,bad\r\n"])) == [(5, "bad")]
    assert list(read_rejects_csv([])) == []


def test_read_rejects_csv_refuses_another_file() -> None:
    with pytest.raises(ValueError, match="not a rejects file"):
        list(read_rejects_csv(["row,to,api\r\n"]))


def test_read_rejects_csv_refuses_a_line_with_the_wrong_cells() -> None:
    with pytest.raises(ValueError, match="line 2: 3 cells"):
        list(read_rejects_csv(["row,reason\r\n", "5,bad,extra\r\n"]))
