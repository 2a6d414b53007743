"""Delivery statuses as a job's counts and outcomes.csv show them (chalicelib.core.delivery), and
when a finished job's outcomes.csv is written again (downstream.reconciler)."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

from hypothesis import given
from hypothesis import strategies as st

from callqueue.client.records import parse_outcomes
from chalicelib.core.delivery import (
    FINAL_STATUSES,
    DeliveryTally,
    delivery_of,
    final_status,
    merged_view,
)
from downstream.reconcile import RowOutcome, write_outcomes_csv
from downstream.reconciler import (
    DELIVERY_WATCH_SECONDS,
    MIN_DELIVERY_CHECK_SECONDS,
    next_delivery_check,
)

MESSAGE_STATUSES = ["queued", "sending", "sent", "delivered", "undelivered", "failed", "read"]
CALL_STATUSES = ["queued", "initiated", "ringing", "in-progress", "completed", "busy", "no-answer"]
OUTCOMES = ["sent", "failed", "suppressed", "unknown", "dead_lettered"]
APIS = ["messages", "calls", "lookup", "verify", "studio"]


def test_read_counts_as_delivered_and_as_read() -> None:
    tally = DeliveryTally()
    tally.add("messages", "sent", "read")
    tally.add("messages", "sent", "delivered")
    tally.add("messages", "sent", "sent")

    assert tally.view() == {
        "messages": {
            "delivered": 2,
            "undelivered": 0,
            "failed": 0,
            "canceled": 0,
            "pending": 1,
            "read": 1,
        }
    }


def test_calls_count_their_final_status_and_machines() -> None:
    tally = DeliveryTally()
    for status, answered_by in [
        ("completed", "human"),
        ("completed", "machine_start"),
        ("busy", None),
        ("no-answer", None),
        ("ringing", None),
    ]:
        tally.add("calls", "sent", status, answered_by)

    assert tally.view()["calls"] == {
        "completed": 2,
        "busy": 1,
        "no-answer": 1,
        "failed": 0,
        "canceled": 0,
        "pending": 1,
        "answered_by_machine": 1,
    }


def test_rows_not_sent_and_apis_without_callbacks_have_no_delivery() -> None:
    tally = DeliveryTally()
    tally.add("messages", "failed", None)
    tally.add("messages", "suppressed", "delivered")
    tally.add("lookup", "sent", None)
    tally.add(None, "sent", "delivered")

    assert tally.view() == {}
    assert tally.total_pending() == 0


def test_a_call_status_on_a_message_is_not_final() -> None:
    assert final_status("messages", "completed") is None
    assert final_status("calls", "delivered") is None
    assert final_status("calls", "read") is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(APIS),
            st.sampled_from(OUTCOMES),
            st.one_of(st.none(), st.sampled_from(MESSAGE_STATUSES + CALL_STATUSES)),
        ),
        max_size=60,
    )
)
def test_every_sent_row_is_counted_once_final_or_pending(
    rows: list[tuple[str, str, str | None]],
) -> None:
    tally = DeliveryTally()
    for api, outcome, status in rows:
        tally.add(api, outcome, status)

    view = tally.view()
    for api, statuses in FINAL_STATUSES.items():
        sent = sum(1 for a, o, _ in rows if a == api and o == "sent")
        if not sent:
            assert api not in view
            continue
        assert sum(view[api][s] for s in statuses) + view[api]["pending"] == sent
        assert view[api]["pending"] >= 0


def test_views_of_several_jobs_add_up() -> None:
    one, two = DeliveryTally(), DeliveryTally()
    one.add("messages", "sent", "delivered")
    two.add("messages", "sent", "undelivered")
    two.add("calls", "sent", "busy")

    merged = merged_view([one.view(), two.view()])

    assert merged["messages"]["delivered"] == 1 and merged["messages"]["undelivered"] == 1
    assert merged["calls"]["busy"] == 1


def test_a_view_read_back_drops_what_is_not_counts() -> None:
    assert delivery_of(None) == {}
    assert delivery_of({"messages": {"delivered": 2, "x": "y"}, "evil": {"a": 1}}) == {
        "messages": {"delivered": 2}
    }


# -- outcomes.csv ------------------------------------------------------------------------------

SENT = RowOutcome(
    row=1,
    to="+14155550100",
    api="messages",
    outcome="sent",
    error_code=None,
    sid="SM1",
    reason=None,
)


def written(outcomes: list[RowOutcome], kept: tuple[str, ...] = ()) -> str:
    out = io.StringIO(newline="")
    write_outcomes_csv(out, outcomes, kept)
    return out.getvalue()


def test_outcomes_csv_has_the_delivery_columns_and_reads_back() -> None:
    undelivered = replace(
        SENT,
        delivery_status="undelivered",
        delivery_error_code=30003,
        delivered_at=1_790_000_000.4,
        carried={"reference": "r1", "name": "=cmd"},
    )
    call = replace(
        SENT,
        row=2,
        api="calls",
        sid="CA1",
        delivery_status="completed",
        delivered_at=1_790_000_100.0,
        call_duration=17,
        answered_by="machine_start",
    )

    text = written([undelivered, call], ("name",))
    rows = list(csv.DictReader(io.StringIO(text, newline="")))

    assert rows[0]["delivery_status"] == "undelivered"
    assert rows[0]["delivery_error_code"] == "30003"
    assert rows[0]["delivered_at"] == "2026-09-21T14:13:20Z"
    assert rows[0]["name"] == "'=cmd"
    assert rows[1]["call_duration"] == "17" and rows[1]["answered_by"] == "machine_start"
    back = list(parse_outcomes(io.StringIO(text, newline="")))
    assert back[0].kept == {"name": "=cmd"} and back[0].reference == "r1"
    assert back[0].delivery_status == "undelivered" and back[0].delivery_error_code == "30003"
    assert back[1].call_duration == 17 and back[1].answered_by == "machine_start"


def test_an_outcomes_csv_without_delivery_columns_still_reads() -> None:
    old = (
        "row,to,api,outcome,error_code,sid,reason,reference,name\n1,+1415,messages,sent,,SM1,,r,N\n"
    )

    (outcome,) = parse_outcomes(io.StringIO(old, newline=""))

    assert outcome.kept == {"name": "N"} and outcome.delivery_status is None


# -- when a finished job's outcomes.csv is written again ---------------------------------------


def test_no_more_rewrites_once_nothing_is_pending_or_the_job_is_old() -> None:
    assert next_delivery_check(0.0, 10.0, 0) is None
    assert next_delivery_check(0.0, DELIVERY_WATCH_SECONDS, 5) is None


@given(st.floats(min_value=0, max_value=DELIVERY_WATCH_SECONDS - 1), st.integers(1, 10**6))
def test_rewrites_come_later_and_later_but_at_least_a_minute_apart(
    age: float, pending: int
) -> None:
    at = next_delivery_check(1000.0, 1000.0 + age, pending)

    assert at is not None
    wait = at - (1000.0 + age)
    # Within float rounding of the sums.
    assert wait >= MIN_DELIVERY_CHECK_SECONDS - 1e-6
    assert wait >= age - 1e-6


def test_a_dozen_rewrites_cover_the_watch() -> None:
    now, checks = 0.0, 0
    while (at := next_delivery_check(0.0, now, 1)) is not None:
        now, checks = at, checks + 1

    assert 10 <= checks <= 14
