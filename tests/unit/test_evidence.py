"""Matching a call in doubt to what Twilio holds (chalicelib.core.evidence): found only when one
resource is this row's, absent only when none can be, unknown otherwise."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from chalicelib.core.evidence import (
    CLOCK_SKEW_SECONDS,
    Candidate,
    body_matches,
    match_call,
    match_execution,
    match_message,
    normalised_body,
)

TO, FROM = "+14155550100", "+15005550006"
SINCE = 1_000_000.0


def message(sid: str = "SM1", created: float = SINCE + 1, **fields: object) -> Candidate:
    values: dict[str, object] = {"to": TO, "from_": FROM, "body": "Hello", **fields}
    return Candidate(sid=sid, created_at=created, **values)  # type: ignore[arg-type]


def test_evidence_a_message_with_the_same_body_is_found() -> None:
    evidence = match_message({"To": TO, "From": FROM, "Body": "Hello"}, SINCE, [message()])
    assert evidence.verdict == "found"
    assert evidence.resource is not None and evidence.resource["sid"] == "SM1"


def test_evidence_a_body_twilio_rewrote_still_matches() -> None:
    ours = "Don\u2019t miss it \u2014 \u201cfree\u201d\u2026"
    theirs = 'Sent from your Twilio trial account - Don\'t miss it - "free"... Reply STOP to stop'
    candidates = [message(body=theirs)]
    assert match_message({"To": TO, "From": FROM, "Body": ours}, SINCE, candidates).verdict == (
        "found"
    )


def test_evidence_no_message_since_the_call_is_absent() -> None:
    older = message(created=SINCE - CLOCK_SKEW_SECONDS - 1)
    params = {"To": TO, "From": FROM, "Body": "Hello"}
    assert match_message(params, SINCE, [older]).verdict == "absent"
    assert match_message(params, SINCE, []).verdict == "absent"


def test_evidence_a_message_created_just_before_the_call_by_twilios_clock_counts() -> None:
    # date_created has whole seconds and clocks differ a little.
    params = {"To": TO, "From": FROM, "Body": "Hello"}
    assert match_message(params, SINCE, [message(created=SINCE - 2)]).verdict == "found"


def test_evidence_a_media_only_message_is_found_by_to_from_media_and_time() -> None:
    params = {"To": TO, "From": FROM, "MediaUrl": ["https://example.com/a.png"]}
    candidates = [message(body="", num_media=1)]
    assert match_message(params, SINCE, candidates).verdict == "found"
    # A text message to the same number is not this row's media message.
    assert match_message(params, SINCE, [message(body="Hi", num_media=0)]).verdict == "absent"


def test_evidence_two_messages_that_could_both_be_this_rows_are_unknown() -> None:
    params = {"To": TO, "From": FROM, "ContentSid": "HX" + "0" * 32}
    candidates = [message("SM1", body="Your code"), message("SM2", body="Your code")]
    evidence = match_message(params, SINCE, candidates)
    assert evidence.verdict == "unknown"
    assert "SM1" in evidence.reason and "SM2" in evidence.reason


def test_evidence_a_messaging_service_message_without_from_yet_is_found() -> None:
    service = "MG" + "1" * 32
    params = {"To": TO, "MessagingServiceSid": service, "Body": "Hello"}
    candidate = message(from_=None, messaging_service_sid=service)
    assert match_message(params, SINCE, [candidate]).verdict == "found"
    other = message(from_=None, messaging_service_sid="MG" + "2" * 32)
    assert match_message(params, SINCE, [other]).verdict == "absent"


def test_evidence_inbound_messages_and_other_senders_are_not_this_rows() -> None:
    params = {"To": TO, "From": FROM, "Body": "Hello"}
    assert match_message(params, SINCE, [message(outbound=False)]).verdict == "absent"
    assert match_message(params, SINCE, [message(from_="+15005550007")]).verdict == "absent"


def test_evidence_calls_and_executions_match_by_address_and_time() -> None:
    call = Candidate(sid="CA1", created_at=SINCE, to=TO, from_=FROM)
    assert match_call({"To": TO, "From": FROM}, SINCE, [call]).verdict == "found"
    assert match_call({"To": TO, "From": FROM}, SINCE + 60, [call]).verdict == "absent"
    run = Candidate(sid="FN1", created_at=SINCE, to=TO, from_=None)
    assert match_execution({"To": TO, "FlowSid": "FW1"}, SINCE, [run, run]).verdict == "unknown"


@given(st.text(min_size=1, max_size=200), st.text(max_size=40), st.text(max_size=40))
def test_evidence_a_body_matches_itself_with_anything_twilio_adds(
    body: str, prefix: str, suffix: str
) -> None:
    if not normalised_body(body):
        return  # whitespace alone identifies nothing
    assert body_matches(body, f"{prefix} {body} {suffix}")


@given(st.text(max_size=200))
def test_evidence_normalising_a_body_twice_changes_nothing(body: str) -> None:
    once = normalised_body(body)
    assert normalised_body(once) == once
