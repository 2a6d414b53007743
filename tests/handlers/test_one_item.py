"""One item per row, both the call ledger's and the row's result
(docs/decisions/one-item-per-row.md): the sender's writes record the result, the results sink
never erases a claim, a claim takes an item the ledger never claimed, and the readers see only
rows with an outcome. CallLedger and ResultsTable on one moto table."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.aws.results_table import ResultsTable
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.observability import Metrics
from chalicelib.sending.ledger import CallLedger
from tests.envelopes import envelope
from tests.handlers.test_results import create_results_table

TABLE = "results"
NOW = 1_700_000_000.0
# The attributes only the ledger writes, which a sink's write must leave as they are.
LEDGER = ("state", "attempt", "claimed_at", "envelope", "callback_sid", "first_claimed_at")
_rows = itertools.count(1)


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def db() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_results_table(client, TABLE)
        yield client


def ledger(db: Any, clock: Clock) -> CallLedger:
    return CallLedger(db, TABLE, in_doubt_after=30.0, clock=clock)


def sink(db: Any, clock: Clock, metrics: Metrics | None = None) -> ResultsTable:
    return ResultsTable(db, TABLE, clock=clock, metrics=metrics)


def item(db: Any, row: int, job: str = "j") -> dict[str, Any]:
    key = {"job_id": {"S": job}, "row": {"N": str(row)}}
    found: dict[str, Any] = db.get_item(TableName=TABLE, Key=key, ConsistentRead=True).get(
        "Item", {}
    )
    return found


def unmarked(row: int, attempt: int = 1, **options: Any) -> ResponseEnvelope:
    """An envelope no sender recorded (from before the mark, or made elsewhere)."""
    return ResponseEnvelope.from_json(envelope("j", row, attempt, recorded=False, **options))


def test_the_sink_writes_nothing_for_an_envelope_the_sender_recorded_but_counts_it(
    db: Any,
) -> None:
    lines: list[str] = []
    metrics = Metrics("dev", sink=lines.append, clock=lambda: NOW)
    marked = ResponseEnvelope.from_json(envelope("j", 1))

    assert sink(db, Clock(), metrics).record([marked]) == 0

    assert item(db, 1) == {}
    assert any('"Outcomes"' in line or "Outcomes" in json.loads(line) for line in lines)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    state=st.sampled_from(["calling", "calling_bound", "retry", "done"]),
    attempt=st.integers(1, 3),
    outcome=st.sampled_from(["sent", "failed", "dead_lettered", "retrying", "unknown"]),
    delivered=st.booleans(),
)
def test_a_sink_write_never_changes_what_the_ledger_holds(
    db: Any, state: str, attempt: int, outcome: str, delivered: bool
) -> None:
    # Whatever the row's claim is, whatever attempt an unmarked envelope carries, with or
    # without a callback's status on the item: the claim is as it was. A whole-item put over
    # a claim erased it, and the row's next delivery called again.
    clock = Clock()
    calls = ledger(db, clock)
    row = next(_rows)
    calls.claim("j", row, 2)
    if state == "calling_bound":
        assert calls.bind_callback("j", row, "SM" + "b" * 32, None) == "bound"
    elif state == "retry":
        assert calls.reopen("j", row, 2, None)
    elif state == "done":
        calls.completed("j", row, 2, envelope("j", row, 2))
    if delivered:
        sink(db, clock).record_delivery("j", row, status="delivered", rank=5, error_code=None)
    before = item(db, row)
    late = replace(unmarked(row, attempt), outcome=outcome)  # type: ignore[arg-type]

    sink(db, clock).record([late])

    after = item(db, row)
    assert {k: after.get(k) for k in LEDGER} == {k: before.get(k) for k in LEDGER}
    assert after.get("delivery_status") == before.get("delivery_status")
    verdict = calls.claim("j", row, 2).verdict
    assert verdict == {"calling": "wait", "calling_bound": "wait", "retry": "call"}.get(
        state, "done"
    )


def test_the_sinks_put_is_conditional_on_no_claim(db: Any) -> None:
    request = sink(db, Clock())._put_request({"attempt": {"N": "1"}})
    assert "attribute_not_exists(#state)" in request["ConditionExpression"]
    assert request["ExpressionAttributeNames"]["#state"] == "state"


def test_a_row_the_sink_wrote_without_a_claim_is_claimed_and_its_callbacks_refused(
    db: Any,
) -> None:
    # A row that ended without a sender's claim (written by the sink alone): the ledger never
    # called it, so a delivery of it may call, as a row with no item may, and a callback naming
    # it is for no message of its call.
    clock = Clock()
    sink(db, clock).record([unmarked(1, outcome="dead_lettered", sid=None, error_code=20429)])
    sink(db, clock).record([unmarked(2, outcome="dead_lettered", sid=None, error_code=20429)])
    before = item(db, 1)
    calls = ledger(db, clock)

    assert calls.bind_callback("j", 1, "SM" + "c" * 32, None) == "unknown_row"
    assert item(db, 1) == before
    # The verdict of an item without `state` (as a read might return it) is a claim, not a
    # KeyError.
    assert calls._verdict(before, "j", 1, 1, clock.now).verdict == "call"
    assert [c.verdict for c in calls.claim_all([("j", 2, 1), ("j", 3, 1)])] == ["call", "call"]
    assert item(db, 2)["state"] == {"S": "calling"}


def test_readers_see_only_rows_with_an_outcome(db: Any) -> None:
    # Claimed rows without an outcome yet, a row recorded by the ledger, one by a callback
    # alone: only the recorded one is counted and listed, ledger attributes and all.
    clock = Clock()
    calls = ledger(db, clock)
    results = sink(db, clock)
    for row in (1, 2, 3):
        calls.claim("j", row, 1)
    calls.completed("j", 2, 1, envelope("j", 2, sid=None, outcome="failed", error_code=21211))
    calls.bind_callback("j", 3, "SM" + "d" * 32, None)
    results.record_delivery("j", 3, status="delivered", rank=5, error_code=None)

    assert [(r.row, r.outcome, r.error_code) for r in results.outcomes("j")] == [
        (2, "failed", 21211)
    ]
    assert dict(results.count_by_outcome("j")) == {"failed": 1}
    progress = results.progress("j", since=0.0)
    assert (dict(progress.counts), progress.recent) == ({"failed": 1}, 1)
    assert [(r.job_id, r.row) for r in results.rows_with_error(21211)] == [("j", 2)]


def test_a_retry_records_its_result_and_opens_the_row_in_one_write(db: Any) -> None:
    clock = Clock()
    calls = ledger(db, clock)
    [claim] = calls.claim_all([("j", 1, 1)])
    assert calls.bind_callback("j", 1, "SM" + "e" * 32, None) == "bound"
    writes = calls.writes()
    writes.hold("j", 1, claim.held_at)
    retrying = envelope("j", 1, outcome="retrying", sid=None, error_code=20429)

    writes.retryable("j", 1, 1, retrying)

    stored = item(db, 1)
    assert (stored["state"], stored["outcome"]) == ({"S": "retry"}, {"S": "retrying"})
    assert not {"envelope", "callback_sid", "sid"} & set(stored)
    assert [r.outcome for r in sink(db, clock).outcomes("j")] == ["retrying"]
    assert calls.claim("j", 1, 2).verdict == "call"
    assert "outcome" not in item(db, 1)  # the new claim is a new item


def test_a_retry_refused_records_nothing(db: Any) -> None:
    # The claim was taken over (another delivery settles the row): neither the retry nor its
    # result is written.
    clock = Clock()
    calls = ledger(db, clock)
    [claim] = calls.claim_all([("j", 1, 1)])
    writes = calls.writes()
    writes.hold("j", 1, claim.held_at)
    clock.now += 31
    assert calls.claim("j", 1, 1).verdict == "in_doubt"
    before = item(db, 1)

    writes.retryable("j", 1, 1, envelope("j", 1, outcome="retrying", sid=None, error_code=20429))

    assert writes.refused == {("j", 1)}
    assert item(db, 1) == before


@pytest.mark.parametrize("flush", ["buffered", "direct"])
def test_an_outcome_write_keeps_a_status_that_came_first_and_removes_what_it_lacks(
    db: Any, flush: str
) -> None:
    # A callback can land between the claim and the outcome: its status stays. A response
    # attribute the outcome lacks (an error of an earlier write of the row) goes.
    clock = Clock()
    calls = ledger(db, clock)
    results = sink(db, clock)
    calls.claim("j", 1, 1)
    sid = "SM" + "f" * 32
    assert calls.bind_callback("j", 1, sid, "+14155550100") == "bound"
    assert results.record_delivery("j", 1, status="delivered", rank=5, error_code=None)
    db.update_item(
        TableName=TABLE,
        Key={"job_id": {"S": "j"}, "row": {"N": "1"}},
        UpdateExpression="SET error_message = :m",
        ExpressionAttributeValues={":m": {"S": "stale"}},
    )
    sent = envelope("j", 1, sid=sid)
    if flush == "buffered":
        writes = calls.writes()
        writes.completed("j", 1, 1, sent)
        writes.flush()
    else:
        calls.completed("j", 1, 1, sent)

    [row] = results.outcomes("j")
    assert (row.outcome, row.sid, row.delivery_status) == ("sent", sid, "delivered")
    assert "error_message" not in item(db, 1)
    assert calls.bind_callback("j", 1, sid, "+14155550100") == "bound"
    assert calls.bind_callback("j", 1, "SM" + "0" * 32, None) == "mismatch"


class WriteAfterRead:
    """The table's client, with `write` made right after the first GetItem answers: what another
    request lands between a callback's read of the row and its bind."""

    def __init__(self, db: Any, write: Any) -> None:
        self._db = db
        self._write = write
        self.exceptions = db.exceptions

    def get_item(self, **request: Any) -> Any:
        found = self._db.get_item(**request)
        write, self._write = self._write, None
        if write is not None:
            write()
        return found

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)


@pytest.mark.parametrize(
    ("between", "expected"),
    [("own outcome", "bound"), ("other sid bound", "mismatch"), ("same sid bound", "bound")],
)
def test_a_callback_is_judged_by_what_landed_between_its_read_and_its_bind(
    db: Any, between: str, expected: str
) -> None:
    # A callback reads a row still calling, then the row's outcome (or another callback) lands
    # before its bind: the refused bind is judged by the item it found, so the row's own
    # message is not refused as another's.
    clock = Clock()
    calls = ledger(db, clock)
    row = next(_rows)
    calls.claim("j", row, 1)
    sid = "SM" + "a" * 32

    def land() -> None:
        if between == "own outcome":
            calls.completed("j", row, 1, envelope("j", row, sid=sid))
        else:
            other = sid if between == "same sid bound" else "SM" + "9" * 32
            assert calls.bind_callback("j", row, other, None) == "bound"

    racing = CallLedger(WriteAfterRead(db, land), TABLE, in_doubt_after=30.0, clock=clock)

    assert racing.bind_callback("j", row, sid, "+14155550100") == expected
