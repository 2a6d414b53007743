"""The response envelope both ways: ResponseEnvelope.from_json reads exactly what to_json writes
(trimmed and cancelled envelopes too) and refuses anything else with MalformedEnvelope."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from chalicelib.core.batching import EnvelopeTooLargeError, fit_envelope
from chalicelib.core.envelope import OUTCOMES, MalformedEnvelope, ResponseEnvelope
from chalicelib.core.records import APIS, QueuedRow, TwilioResult
from chalicelib.errors import CallqueueError
from chalicelib.sending.cancel import CANCELLED, cancelled_envelope

times = st.floats(min_value=0, max_value=4e9, allow_nan=False) | st.integers(0, 4_000_000_000)
params = st.dictionaries(
    st.text(min_size=1, max_size=12),
    st.text(max_size=40) | st.lists(st.text(max_size=20), max_size=3),
    max_size=5,
)
json_scalars = st.none() | st.booleans() | st.integers() | st.text(max_size=30)
bodies = st.none() | st.builds(
    lambda sid, rest: {**rest, **({"sid": sid} if sid is not None else {})},
    st.none() | st.from_regex(r"SM[0-9a-f]{32}", fullmatch=True),
    st.dictionaries(st.sampled_from(["status", "to", "price", "code"]), json_scalars, max_size=3),
)
headers = st.dictionaries(
    st.sampled_from(["Twilio-Request-Id", "Twilio-Concurrent-Requests"]), st.text(max_size=20)
)
# (error_code, error_message, more_info, network_error, error_name), in the one form the wire
# can tell apart: a network error carries only its own message.
messages = st.none() | st.text(max_size=60)
errors = st.one_of(
    st.just((None, None, None, None, None)),
    st.tuples(st.integers(10_000, 99_999), messages, messages, st.none(), st.none()),
    st.tuples(st.none(), st.none(), messages, st.text(max_size=60), st.none()),
    st.tuples(st.none(), messages, messages, st.none(), st.text(max_size=12)),
)


# The user's columns that travel with a row: any text, none at all most often.
carried = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=40), max_size=3)


@st.composite
def envelopes(draw: st.DrawFn, error: st.SearchStrategy[tuple[Any, ...]] = errors) -> Any:
    code, message, more_info, network_error, name = draw(error)
    result = TwilioResult(
        status=draw(st.none() | st.integers(100, 599)),
        body=draw(bodies),
        headers=draw(headers),
        started_at=draw(times),
        finished_at=draw(times),
        error_code=code,
        error_message=message,
        more_info=more_info,
        network_error=network_error,
    )
    return ResponseEnvelope(
        job_id=draw(st.text(min_size=1, max_size=30)),
        row=draw(st.integers(0, 10**9)),
        api=draw(st.sampled_from(APIS)),
        attempt=draw(st.integers(1, 20)),
        outcome=draw(st.sampled_from(OUTCOMES)),
        request=draw(params),
        result=result,
        due_at=draw(times),
        error_name=name,
        carried=draw(carried),
        recorded=draw(st.booleans()),
    )


# Any result at all, in forms the wire cannot tell apart (a network error with a message of its
# own, a result not sent): to_json then loses what it does not publish.
any_errors = st.tuples(
    st.none() | st.integers(10_000, 99_999),
    st.none() | st.text(max_size=20),
    st.none() | st.text(max_size=20),
    st.none() | st.text(max_size=20),
    st.none() | st.text(max_size=12),
)


def wire(envelope: ResponseEnvelope) -> Any:
    """The envelope as a sink's queue delivers it: JSON text, parsed."""
    return json.loads(json.dumps(envelope.to_json()))


@given(envelopes())
def test_records_envelope_from_json_inverts_to_json(envelope: ResponseEnvelope) -> None:
    assert ResponseEnvelope.from_json(envelope.to_json()) == envelope
    assert ResponseEnvelope.from_json(wire(envelope)) == envelope


@given(envelopes(any_errors), st.booleans())
def test_records_envelope_to_json_writes_what_from_json_read(
    envelope: ResponseEnvelope, not_sent: bool
) -> None:
    if not_sent:
        envelope = ResponseEnvelope(**{**vars(envelope), "result": _not_sent(envelope.result)})
    published = wire(envelope)

    assert ResponseEnvelope.from_json(published).to_json() == published
    # Key for key, in the same order: the archive writes the envelope as it arrived.
    assert json.dumps(ResponseEnvelope.from_json(published).to_json()) == json.dumps(published)


def _not_sent(result: TwilioResult) -> TwilioResult:
    return TwilioResult(**{**vars(result), "not_sent": True})


@given(envelopes(), st.integers(200, 3_000))
def test_records_envelope_trimmed_to_fit_a_message_is_read_as_it_is(
    envelope: ResponseEnvelope, max_bytes: int
) -> None:
    try:
        fitted = json.loads(json.dumps(fit_envelope(envelope.to_json(), max_bytes)))
    except EnvelopeTooLargeError:
        assume(False)
        return

    assert ResponseEnvelope.from_json(fitted).to_json() == fitted


def test_records_a_cancelled_rows_envelope_is_read_with_its_error_name() -> None:
    row = QueuedRow("job-1", 3, "messages", {"To": "+14155550100"}, due_at=5.0, attempt=2)
    published = cancelled_envelope(row, 7.0)

    envelope = ResponseEnvelope.from_json(published)

    assert envelope.to_json() == published
    assert envelope.error_name == CANCELLED
    assert envelope.error is not None and envelope.error.code == CANCELLED
    assert envelope.result.error_code is None


def test_records_envelope_number_is_to_or_the_looked_up_number() -> None:
    sent = _published()
    lookup = {**sent, "api": "lookup", "request": {"PhoneNumber": "+14155550199"}}

    assert ResponseEnvelope.from_json(sent).number == "+14155550100"
    assert ResponseEnvelope.from_json(lookup).number == "+14155550199"
    assert ResponseEnvelope.from_json({**sent, "request": {"From": "+1"}}).number is None
    assert ResponseEnvelope.from_json({**sent, "request": {"To": ["+1", "+2"]}}).number is None


def _published(**changes: Any) -> dict[str, Any]:
    envelope = ResponseEnvelope(
        job_id="job-1",
        row=4,
        api="messages",
        attempt=1,
        outcome="failed",
        request={"To": "+14155550100", "Body": "hi"},
        result=TwilioResult(
            400, {"code": 21211}, {}, 10.0, 10.5, error_code=21211, error_message="Invalid"
        ),
        due_at=9.0,
    ).to_json()
    envelope.update(changes)
    return envelope


def _timings(**changes: Any) -> dict[str, Any]:
    return {**_published()["timings"], **changes}


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ([], "the envelope is list, not an object"),
        ({k: v for k, v in _published().items() if k != "headers"}, "has no headers"),
        (_published(extra=1), "has unknown extra"),
        (_published(row="4"), "row is '4', not an integer"),
        (_published(row=True), "row is True, not an integer"),
        (_published(attempt=None), "attempt is None, not an integer"),
        (_published(api="fax"), "api is 'fax', not one of messages, calls"),
        (_published(outcome="rejected"), "outcome is 'rejected', not one of"),
        (_published(status="400"), "status is '400', not an integer"),
        (_published(body=[1]), r"body is \[1\], not an object"),
        (_published(headers={"a": 1}), "headers is .*, not an object of strings"),
        (_published(request={"To": 5}), "request parameter To is 5, not a string"),
        (_published(error={"code": 1}), "error has no message, more_info"),
        (_published(error={"code": 1.5, "message": None, "more_info": None}), "not a code"),
        (_published(timings=_timings(due_at="9")), "due_at is '9', not a number"),
        (_published(timings=_timings(late=1)), "timings has unknown late"),
        (_published(sid="SM1"), "sid disagree with the rest of the envelope .job job-1 row 4"),
        (_published(timings=_timings(lag_seconds=2.0)), "timings disagree"),
        (_published(error={"code": None, "message": None, "more_info": None}), "error disagree"),
        (_published(carried={}), "carried is {}, not an object of strings"),
        (_published(carried={"reference": 7}), "carried is .*, not an object of strings"),
        (_published(carried=["x"]), "carried is .*, not an object of strings"),
        (_published(recorded=False), "recorded is False, not true"),
        (_published(recorded="true"), "recorded is 'true', not true"),
        (_published(recorded=1), "recorded is 1, not true"),
    ],
)
def test_records_envelope_from_json_refuses_what_to_json_never_writes(
    message: Any, match: str
) -> None:
    with pytest.raises(MalformedEnvelope, match=match) as raised:
        ResponseEnvelope.from_json(message)
    assert isinstance(raised.value, CallqueueError)


def test_records_envelope_from_json_reads_a_trimmed_request_only_when_marked() -> None:
    trimmed = {"To": "+14155550100", "truncated": True, "truncated_bytes": 70_000}

    assert ResponseEnvelope.from_json(_published(request=trimmed)).request == trimmed
    with pytest.raises(MalformedEnvelope, match="truncated_bytes is 70000"):
        ResponseEnvelope.from_json(_published(request={**trimmed, "truncated": "yes"}))


def test_records_an_envelope_written_before_references_is_read_without_one() -> None:
    old = _published()
    assert "carried" not in old
    assert ResponseEnvelope.from_json(old).carried == {}
    assert ResponseEnvelope.from_json(old).to_json() == old


def test_records_an_envelope_without_the_mark_is_read_as_not_recorded() -> None:
    old = _published()
    assert "recorded" not in old
    assert ResponseEnvelope.from_json(old).recorded is False
    marked = {**old, "recorded": True}
    assert ResponseEnvelope.from_json(marked).recorded is True
    assert ResponseEnvelope.from_json(marked).to_json() == marked


@given(carried)
def test_records_rows_carry_their_columns_through_chunk_queue_and_envelope(
    columns: dict[str, str],
) -> None:
    from chalicelib.core.records import ChunkRow, QueuedRow

    chunk = ChunkRow(3, "messages", {"To": "+14155550100"}, 1.5, columns)
    assert ChunkRow.from_json(json.loads(json.dumps(chunk.to_json()))) == chunk
    queued = QueuedRow("j", 3, "messages", chunk.params, 2.0, carried=columns)
    assert QueuedRow.from_json(json.loads(json.dumps(queued.to_json()))) == queued
    assert queued.retry(5.0, 1.0).carried == columns
    # Never among the request's parameters: what is sent to Twilio.
    assert queued.request.params == {"To": "+14155550100"}
    assert ("carried" in queued.to_json()) == bool(columns)
