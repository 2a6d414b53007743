"""Which rows a retry takes (chalicelib.api.retry.selection_of and Selection): for any body it
accepts and any rows, exactly those of an asked outcome and code, never a sent or suppressed one."""

from __future__ import annotations

from typing import Any

import pytest
from chalice.app import BadRequestError
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.api.retry import DEFAULT_OUTCOMES, NEVER, RETRYABLE, selection_of
from chalicelib.aws.result_items import RowResult
from chalicelib.core.records import FINAL_OUTCOMES

CODES = st.sampled_from([None, 21211, 21610, 30003, 30005])
OUTCOMES = st.sampled_from([*FINAL_OUTCOMES, "retrying"])


def body_of(asked: list[str], errors: list[int] | None) -> dict[str, Any]:
    """A retry's request body: the outcomes asked for, and the codes when there are any."""
    return {"outcomes": asked} | ({} if errors is None else {"errors": errors})


def result(row: int, outcome: str, code: int | None) -> RowResult:
    return RowResult("j", row, "messages", outcome, 1, None, code, None, None, 0.0)


@given(
    asked=st.lists(st.sampled_from(RETRYABLE), max_size=3),
    errors=st.none() | st.lists(st.sampled_from([21211, 21610, 30003, 99999]), min_size=1),
    rows=st.lists(st.tuples(OUTCOMES, CODES), max_size=30),
)
def test_selection_takes_exactly_the_asked_outcomes_and_codes(
    asked: list[str], errors: list[int] | None, rows: list[tuple[str, int | None]]
) -> None:
    selection = selection_of(body_of(asked, errors))
    wanted = set(asked or DEFAULT_OUTCOMES)
    for row, (outcome, code) in enumerate(rows, start=1):
        taken = selection.takes(result(row, outcome, code))
        assert taken == (outcome in wanted and (errors is None or code in errors))
        assert not (taken and outcome in NEVER)
        assert not (taken and outcome == "unknown" and "unknown" not in asked)


@given(
    asked=st.lists(st.sampled_from(RETRYABLE), max_size=4),
    errors=st.none() | st.lists(st.sampled_from([21211, 30003, 30008]), min_size=1),
    rows=st.lists(
        st.tuples(
            st.sampled_from(["messages", "calls"]),
            st.sampled_from([None, "sent", "delivered", "undelivered", "failed", "read"])
            | st.sampled_from(["completed", "busy", "no-answer"]),
            st.sampled_from([None, 30003, 30008]),
        ),
        max_size=30,
    ),
)
def test_sent_rows_that_did_not_get_through_are_taken_only_as_undelivered(
    asked: list[str],
    errors: list[int] | None,
    rows: list[tuple[str, str | None, int | None]],
) -> None:
    selection = selection_of(body_of(asked, errors))
    wanted = set(asked or DEFAULT_OUTCOMES)
    for row, (api, status, code) in enumerate(rows, start=1):
        sent = RowResult(
            "j", row, api, "sent", 1, 201, None, "SM", None, 0.0,
            delivery_status=status, delivery_error_code=code,
        )  # fmt: skip
        got_through = (
            status
            not in {
                "messages": ("undelivered", "failed"),
                "calls": ("busy", "no-answer", "failed"),
            }[api]
        )
        expected = (
            not got_through and "undelivered" in wanted and (errors is None or code in errors)
        )
        assert selection.takes(sent) == expected


@pytest.mark.parametrize("outcome", [*NEVER, "delivered", "FAILED", ""])
def test_selection_refuses_an_outcome_never_retried_or_unknown(outcome: str) -> None:
    with pytest.raises(BadRequestError, match=repr(outcome)):
        selection_of({"outcomes": ["failed", outcome]})


@pytest.mark.parametrize(
    "body",
    [
        [],
        "x",
        {"outcomes": "failed"},
        {"outcomes": [1]},
        {"errors": 30003},
        {"errors": [0]},
        {"errors": [-1]},
        {"errors": [1.5]},
        {"errors": [False]},
        {"errors": []},
    ],
)
def test_selection_refuses_a_bad_body(body: Any) -> None:
    with pytest.raises(BadRequestError):
        selection_of(body)
