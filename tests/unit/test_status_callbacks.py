"""What a status callback says (chalicelib.twilio.callbacks.DeliveryStatus.parse): a message's
and a call's, and every way a signed form can fail to say it."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.twilio.callbacks import (
    CALL_STATUS_RANK,
    STATUS_RANK,
    DeliveryStatus,
    MalformedCallback,
)

QUERY = {"job": "calls-0123456789ab", "row": "7"}
CALL_SID = "CA" + "a" * 32
MESSAGE_SID = "SM" + "a" * 32


def call_form(status: str = "completed", **extra: str) -> dict[str, str]:
    return {"CallSid": CALL_SID, "CallStatus": status, "To": "+14155550100", **extra}


def test_a_completed_call_callback_gives_its_status_duration_and_answerer() -> None:
    parsed = DeliveryStatus.parse(QUERY, call_form(CallDuration="42", AnsweredBy="machine_start"))

    assert parsed == DeliveryStatus(
        job_id="calls-0123456789ab",
        row=7,
        sid=CALL_SID,
        status="completed",
        rank=4,
        error_code=None,
        to="+14155550100",
        api="calls",
        duration=42,
        answered_by="machine_start",
    )


def test_a_message_callback_is_a_message_and_never_carries_call_fields() -> None:
    form = {"MessageSid": MESSAGE_SID, "MessageStatus": "delivered", "CallDuration": "9"}
    form["AnsweredBy"] = "human"

    parsed = DeliveryStatus.parse(QUERY, form)

    assert (parsed.api, parsed.status, parsed.rank) == ("messages", "delivered", 4)
    assert (parsed.duration, parsed.answered_by) == (None, None)


def test_call_statuses_rank_in_progress_order_and_the_finals_share_one() -> None:
    rank = CALL_STATUS_RANK
    assert rank["queued"] == rank["initiated"] < rank["ringing"] < rank["in-progress"]
    finals = {"completed", "busy", "no-answer", "failed", "canceled"}
    assert {rank[s] for s in finals} == {rank["in-progress"] + 1}
    assert set(rank) == finals | {"queued", "initiated", "ringing", "in-progress"}


@pytest.mark.parametrize(
    ("form", "says"),
    [
        ({"CallSid": CALL_SID}, "CallSid and CallStatus are required"),
        ({"CallStatus": "completed"}, "(or CallSid and CallStatus) are required"),
        ({"CallSid": "", "CallStatus": "completed"}, "(or CallSid and CallStatus) are required"),
        (call_form("answered"), "unknown CallStatus 'answered'"),  # an event, not a status
        (call_form("delivered"), "unknown CallStatus 'delivered'"),  # a message's status
        (call_form("COMPLETED"), "unknown CallStatus"),
        # A message's status under a call's SID, and both SIDs at once.
        ({"CallSid": CALL_SID, "MessageStatus": "delivered"}, "CallSid and CallStatus"),
        ({**call_form(), "MessageSid": MESSAGE_SID, "MessageStatus": "sent"}, "not both"),
        (call_form(CallDuration="12s"), "CallDuration must be a whole number, got '12s'"),
        (call_form(CallDuration="-3"), "CallDuration must be a whole number"),
        (call_form(CallDuration="1.5"), "CallDuration must be a whole number"),
        (call_form(CallDuration="²"), "CallDuration must be a whole number"),
        (call_form(ErrorCode="\uff13\uff10\uff10\uff10\uff13"), "ErrorCode must be a whole number"),
        (call_form(AnsweredBy="Human; DROP"), "unknown AnsweredBy"),
        (call_form(AnsweredBy="x" * 41), "unknown AnsweredBy"),
    ],
)
def test_a_call_callback_that_does_not_say_what_one_says_is_malformed(
    form: dict[str, str], says: str
) -> None:
    with pytest.raises(MalformedCallback, match=re.escape(says)):
        DeliveryStatus.parse(QUERY, form)


@pytest.mark.parametrize("row", ["", "x", "-1", "1.0", "²", "٣"])
def test_a_callback_url_without_a_row_number_is_malformed(row: str) -> None:
    with pytest.raises(MalformedCallback, match="must name a job and a row"):
        DeliveryStatus.parse({"job": "j", "row": row}, call_form())


def test_empty_optional_call_fields_count_as_absent() -> None:
    parsed = DeliveryStatus.parse(QUERY, call_form("busy", CallDuration="", AnsweredBy=""))

    assert (parsed.status, parsed.duration, parsed.answered_by) == ("busy", None, None)


def test_a_failed_call_with_an_error_code_carries_it() -> None:
    assert DeliveryStatus.parse(QUERY, call_form("failed", ErrorCode="32009")).error_code == 32009


@given(
    status=st.sampled_from(sorted(CALL_STATUS_RANK)),
    duration=st.integers(min_value=0, max_value=10**9) | st.none(),
    answered_by=st.from_regex(r"[a-z_]{1,40}", fullmatch=True) | st.none(),
)
def test_any_well_formed_call_callback_parses_to_what_it_says(
    status: str, duration: int | None, answered_by: str | None
) -> None:
    form = call_form(status)
    if duration is not None:
        form["CallDuration"] = str(duration)
    if answered_by is not None:
        form["AnsweredBy"] = answered_by

    parsed = DeliveryStatus.parse(QUERY, form)

    assert (parsed.api, parsed.status, parsed.rank) == ("calls", status, CALL_STATUS_RANK[status])
    assert (parsed.duration, parsed.answered_by) == (duration, answered_by)


@given(status=st.text(max_size=20))
def test_a_status_is_accepted_only_if_its_kind_ranks_it(status: str) -> None:
    for sid, name, ranks in (
        ("CallSid", "CallStatus", CALL_STATUS_RANK),
        ("MessageSid", "MessageStatus", STATUS_RANK),
    ):
        form = {sid: "XX" + "1" * 32, name: status}
        if status in ranks:
            assert DeliveryStatus.parse(QUERY, form).rank == ranks[status]
        else:
            with pytest.raises(MalformedCallback):
                DeliveryStatus.parse(QUERY, form)
