"""Responses grouped into messages: what the publisher sends is read back by the sinks as the
envelopes it was given (fitted), each once, in messages and requests within SNS's limits, with
attributes that say what each message holds; and a body of either form is read."""

from __future__ import annotations

import json
from collections import Counter
from itertools import pairwise
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from callqueue.local.outcomes import Observer, Tally
from chalicelib.core.batching import MAX_BATCH, compact_json, fit_envelope, message_size
from chalicelib.core.envelope import MalformedEnvelope
from chalicelib.core.limits import SNS_BILLED_CHUNK_BYTES, SNS_MAX_BATCH_BYTES
from chalicelib.core.records import APIS
from chalicelib.core.response_groups import grouped_entries
from chalicelib.sending.publisher import ResponsePublisher
from downstream.messages import envelope_data, envelopes_of
from tests.envelopes import envelope
from tests.unit.test_publisher import FakeSns

# Padding of Twilio's body: small, a share of a message, just under and over its 64 KB, and
# over the 248 KB an envelope may be (fit_envelope trims it).
PADDING = (0, 0, 0, 1_500, 20_000, 63_000, 65_400, 70_000, 300_000)


@st.composite
def envelopes(draw: st.DrawFn) -> dict[str, Any]:
    job_id = draw(st.sampled_from(["job-a", "job-b", "job-ü"]))
    row = draw(st.integers(0, 10_000))
    code = draw(st.sampled_from([None, 21211, 21610, 30003, "cancelled"]))
    data = envelope(
        job_id,
        row,
        outcome=draw(st.sampled_from(["sent", "failed", "retrying", "unknown", "suppressed"])),
        sid=None if code is not None else f"SM{row:032d}",
        error_code=code if isinstance(code, int) else None,
    )
    data["api"] = draw(st.sampled_from(APIS[:3]))
    if code == "cancelled":
        data.update(status=None, error={"code": code, "message": "cancelled", "more_info": None})
    elif draw(st.booleans()) and code is None:
        data["status"] = draw(st.sampled_from([200, 201]))
    padding = draw(st.sampled_from(PADDING))
    if padding:
        data["body"] = {**data["body"], "log": "x" * padding}
    return data


@settings(max_examples=60, deadline=None)
@given(st.lists(envelopes(), max_size=40))
def test_publish_then_read_gives_back_every_fitted_envelope_once(
    given_envelopes: list[dict[str, Any]],
) -> None:
    sns = FakeSns()
    ResponsePublisher(sns, "arn:topic", concurrency=1).publish(given_envelopes)  # type: ignore[arg-type]

    messages = [entry for request in sns.requests for entry in request]
    read = [e.to_json() for e in envelopes_of(m["Message"] for m in messages)]
    fitted = [fit_envelope(e) for e in given_envelopes]
    assert Counter(map(compact_json, read)) == Counter(map(compact_json, fitted))
    for request in sns.requests:
        assert len(request) <= MAX_BATCH
        assert sum(message_size(m["Message"], m["MessageAttributes"]) for m in request) <= (
            SNS_MAX_BATCH_BYTES
        )
    for message in messages:
        held = envelope_data(message["Message"])
        size = message_size(message["Message"], message["MessageAttributes"])
        assert size <= SNS_BILLED_CHUNK_BYTES or len(held) == 1
        assert attributes_of(message) == summary(held)


@settings(max_examples=60, deadline=None)
@given(st.lists(envelopes(), max_size=40))
def test_a_message_is_closed_only_when_the_next_envelope_would_take_it_over_64_kb(
    given_envelopes: list[dict[str, Any]],
) -> None:
    fitted = [fit_envelope(e) for e in given_envelopes]
    messages = [envelope_data(m["Message"]) for m in grouped_entries(fitted)]
    by_key: dict[tuple[str, str], list[list[Any]]] = {}
    for held in messages:
        by_key.setdefault((held[0]["job_id"], held[0]["api"]), []).append(held)
    for same in by_key.values():
        for held, following in pairwise(same):
            # The greedy cut: one envelope more would have made it two messages.
            assert len(grouped_entries([*held, following[0]])) == 2


def test_one_job_s_small_envelopes_share_few_messages() -> None:
    rows = [envelope("job-a", row) for row in range(100)]
    messages = grouped_entries(rows)
    size = len(compact_json(rows[0]))
    assert len(messages) == -(-100 * (size + 1) // (SNS_BILLED_CHUNK_BYTES - 200))
    assert [e["row"] for m in messages for e in envelope_data(m["Message"])] == list(range(100))


def attributes_of(message: dict[str, Any]) -> dict[str, Any]:
    attributes = message["MessageAttributes"]
    found: dict[str, Any] = {}
    for name, value in attributes.items():
        kind, text = value["DataType"], value["StringValue"]
        found[name] = text if kind == "String" else (kind, json.loads(text))
    return found


def summary(held: list[Any]) -> dict[str, Any]:
    """The attributes a message holding `held` must have: its job and API, shared by all, and
    the distinct outcomes, error codes (numbers as numbers) and statuses, in the order seen."""
    assert len({(e["job_id"], e["api"]) for e in held}) == 1
    codes = [e["error"]["code"] for e in held if e["error"] and e["error"]["code"] is not None]
    statuses = [e["status"] for e in held if e["status"] is not None]
    expected: dict[str, Any] = {
        "job_id": held[0]["job_id"],
        "api": held[0]["api"],
        "outcome": ("String.Array", list(dict.fromkeys(e["outcome"] for e in held))),
    }
    if codes:
        expected["error_code"] = ("String.Array", list(dict.fromkeys(codes)))
    if statuses:
        expected["status"] = ("String.Array", list(dict.fromkeys(statuses)))
    return expected


@given(st.lists(envelopes(), min_size=1, max_size=5), st.booleans())
def test_a_body_is_read_as_an_array_or_as_one_envelope_bare_or_notified(
    given_envelopes: list[dict[str, Any]], notified: bool
) -> None:
    fitted = [fit_envelope(e) for e in given_envelopes]

    def wrapped(body: str) -> str:
        return json.dumps({"Type": "Notification", "Message": body}) if notified else body

    grouped = wrapped(compact_json(fitted))
    single = [wrapped(compact_json(e)) for e in fitted]
    assert [e.to_json() for e in envelopes_of([grouped])] == fitted
    assert [e.to_json() for e in envelopes_of(single)] == fitted


@pytest.mark.parametrize(
    ("body", "match"),
    [
        ("[]", "empty array"),
        (json.dumps({"Type": "Notification", "Message": "[]"}), "empty array"),
        ("[1]", "the envelope"),
        (json.dumps([[envelope()]]), "the envelope"),
        (json.dumps([envelope(), {**envelope(), "row": "1"}]), "row is '1', not an integer"),
        ('"text"', "the envelope"),
        ("[{", "the message is not JSON"),
    ],
)
def test_a_body_without_envelopes_raises_malformed_envelope(body: str, match: str) -> None:
    with pytest.raises(MalformedEnvelope, match=match):
        envelopes_of([body])


def test_the_local_observer_tallies_every_envelope_of_a_group_and_an_old_single_one() -> None:
    tally = Tally()
    observer = Observer(lambda name: None, tally)
    group = [envelope("j", 1), envelope("j", 2, outcome="failed", sid=None, error_code=21211)]

    observer._on_response(compact_json(group))
    observer._on_response(compact_json(envelope("j", 3)))

    assert tally.rows("j") == [(1, "sent", None), (2, "failed", 21211), (3, "sent", None)]
