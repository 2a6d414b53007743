"""The call ledger's batch operations: claims a conditional put each (never a transaction, which
bills twice), outcomes an update each, written several at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.core.batching import item_size
from chalicelib.sending.ledger import CallLedger
from chalicelib.sending.ledger_writes import envelope_of as stored_envelope
from tests.envelopes import envelope
from tests.tables import create_ledger_table

TABLE = "ledger"
# The in-doubt time of `ledger()`.
IN_DOUBT_AFTER = 30.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


class Counting:
    """A DynamoDB client that counts its calls by operation (and can fail UpdateItem)."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self.exceptions = client.exceptions
        self.calls: list[str] = []
        # UpdateItems that fail (throttled) before the next ones land.
        self.failing_updates = 0
        self.unprocessed_gets = 0
        # As a DynamoDB that returns no item with a refused write.
        self.refusals_without_items = False

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(**kwargs: Any) -> Any:
            self.calls.append(name)
            if name == "update_item" and self.failing_updates:
                self.failing_updates -= 1
                raise ClientError(
                    {"Error": {"Code": "ProvisionedThroughputExceededException"}}, "UpdateItem"
                )
            if name == "batch_get_item" and self.unprocessed_gets:
                self.unprocessed_gets -= 1
                return {"Responses": {}, "UnprocessedKeys": kwargs["RequestItems"]}
            try:
                return method(**kwargs)
            except self.exceptions.ConditionalCheckFailedException as refused:
                if self.refusals_without_items:
                    refused.response.pop("Item", None)
                raise

        return call


@pytest.fixture
def db() -> Iterator[Counting]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name="us-east-1")
        create_ledger_table(client, TABLE)
        yield Counting(client)


def ledger(db: Counting, clock: Clock, in_doubt: float = IN_DOUBT_AFTER) -> CallLedger:
    return CallLedger(db, TABLE, in_doubt_after=in_doubt, clock=clock)  # type: ignore[arg-type]


def state(db: Counting, row: int) -> dict[str, Any]:
    item = db._client.get_item(TableName=TABLE, Key={"job_id": {"S": "j"}, "row": {"N": str(row)}})
    return item.get("Item", {})


def test_fresh_rows_are_claimed_by_a_conditional_put_each(db: Counting) -> None:
    claims = ledger(db, Clock()).claim_all([("j", i, 1) for i in range(1, 151)])

    assert [c.verdict for c in claims] == ["call"] * 150
    assert db.calls == ["put_item"] * 150
    assert all(state(db, i)["state"] == {"S": "calling"} for i in range(1, 151))


@pytest.mark.parametrize("failing", [0, 3, 5])
def test_a_batch_whose_claims_partly_fail_gives_back_the_rest(db: Counting, failing: int) -> None:
    # All or none, as a transaction was: one throttled put (any of the six) fails the batch,
    # and its redelivery calls every row at once, none left waiting out the in-doubt time.
    throttled = ClientError(
        {"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutItem"
    )
    real = db._client.put_item

    def put_item(**kwargs: Any) -> Any:
        if kwargs["Item"]["row"]["N"] == str(failing):
            raise throttled
        return real(**kwargs)

    clock = Clock()
    db._client.put_item = put_item
    with pytest.raises(ClientError):
        ledger(db, clock).claim_all([("j", r, 1) for r in range(6)])
    db._client.put_item = real
    assert {state(db, r).get("state", {}).get("S") for r in range(6)} <= {"retry", None}

    clock.now += 1
    claims = ledger(db, clock).claim_all([("j", r, 1) for r in range(6)])
    assert [c.verdict for c in claims] == ["call"] * 6


def test_rows_seen_before_get_the_verdict_a_single_claim_gives(db: Counting) -> None:
    clock = Clock()
    calls = ledger(db, clock)
    calls.claim("j", 1, 1)  # still calling: wait
    calls.claim("j", 2, 1)
    calls.completed("j", 2, 1, envelope("j", 2))  # done: its envelope again
    calls.claim("j", 3, 1)
    assert calls.reopen("j", 3, 1, None)  # attempt 1 was not processed: attempt 2 may call
    calls.claim("j", 4, 2)
    assert calls.reopen("j", 4, 2, None)  # attempt 1 of row 4 is stale
    db.calls.clear()

    claims = calls.claim_all([("j", 1, 1), ("j", 2, 1), ("j", 3, 2), ("j", 4, 1), ("j", 5, 1)])

    assert [c.verdict for c in claims] == ["wait", "done", "call", "stale", "call"]
    assert claims[1].envelope == envelope("j", 2)
    assert state(db, 3)["attempt"] == {"N": "2"} and state(db, 5)["state"] == {"S": "calling"}
    # A conditional put a row; the verdicts of those refused come from the items the refusals
    # returned, with no read.
    assert db.calls == ["put_item"] * 5


def test_rows_seen_before_are_read_together_when_their_refusals_return_no_item(
    db: Counting,
) -> None:
    clock = Clock()
    calls = ledger(db, clock)
    calls.claim("j", 1, 1)
    calls.claim("j", 2, 1)
    calls.completed("j", 2, 1, envelope("j", 2))
    db.calls.clear()
    db.refusals_without_items = True

    claims = calls.claim_all([("j", 1, 1), ("j", 2, 1), ("j", 3, 1)])

    assert [c.verdict for c in claims] == ["wait", "done", "call"]
    assert db.calls == ["put_item"] * 3 + ["batch_get_item"]
    assert calls.claim("j", 2, 1).verdict == "done"  # one row alone: a GetItem
    assert db.calls[-2:] == ["put_item", "get_item"]


def test_the_verdicts_of_rows_seen_before_are_read_again_when_dynamodb_leaves_them(
    db: Counting,
) -> None:
    clock = Clock()
    calls = ledger(db, clock)
    for row in range(1, 41):
        calls.claim("j", row, 1)
    db.calls.clear()
    db.unprocessed_gets = 1
    db.refusals_without_items = True

    claims = calls.claim_all([("j", row, 1) for row in range(1, 43)])

    assert [c.verdict for c in claims] == ["wait"] * 40 + ["call"] * 2
    assert db.calls == ["put_item"] * 42 + [
        "batch_get_item",  # every key left unprocessed
        "batch_get_item",
    ]


def test_a_call_in_doubt_is_told_apart_from_one_in_flight(db: Counting) -> None:
    clock = Clock()
    calls = ledger(db, clock, in_doubt=30.0)
    calls.claim("j", 1, 1)
    clock.now += 31

    assert [c.verdict for c in calls.claim_all([("j", 1, 1), ("j", 2, 1)])] == [
        "in_doubt",
        "call",
    ]


def test_only_one_delivery_takes_over_a_call_in_doubt(db: Counting) -> None:
    # Two deliveries of a row whose claimant went silent: the first to find it in doubt takes
    # the claim over (and settles the row); the second waits, as for any call in flight.
    clock = Clock()
    calls = ledger(db, clock, in_doubt=30.0)
    calls.claim("j", 1, 1)
    clock.now += 31

    first = calls.claim_all([("j", 1, 1), ("j", 2, 1)])
    second = calls.claim_all([("j", 1, 1), ("j", 3, 1)])

    assert [c.verdict for c in first] == ["in_doubt", "call"]
    assert second[0].verdict == "wait" and second[0].wait_seconds == pytest.approx(30.0)
    assert state(db, 1)["claimed_at"] == {"N": repr(clock.now)}
    assert calls.claim("j", 1, 1).verdict == "wait"


def test_a_take_over_fails_when_the_claim_changed_since_it_was_read(db: Counting) -> None:
    clock = Clock()
    calls = ledger(db, clock, in_doubt=30.0)
    calls.claim("j", 1, 1)
    seen = state(db, 1)["claimed_at"]
    clock.now += 31
    assert calls._take_over("j", 1, seen, clock.now)
    assert not calls._take_over("j", 1, seen, clock.now + 1)  # taken over by another


def test_a_row_delivered_twice_in_one_batch_is_called_once(db: Counting) -> None:
    claims = ledger(db, Clock()).claim_all([("j", 1, 1), ("j", 2, 1), ("j", 1, 1)])

    assert [c.verdict for c in claims] == ["call", "call", "wait"]


def test_outcomes_are_written_an_update_each_when_25_wait_and_the_rest_at_flush(
    db: Counting,
) -> None:
    calls = ledger(db, Clock())
    calls.claim_all([("j", i, 1) for i in range(1, 31)])
    db.calls.clear()
    writes = calls.writes()

    for i in range(1, 31):
        writes.completed("j", i, 1, envelope("j", i))
    assert db.calls == ["update_item"] * 25
    writes.flush()

    assert db.calls == ["update_item"] * 30
    assert stored_envelope(state(db, 30)["envelope"]) == envelope("j", 30)
    assert calls.claim("j", 30, 1).verdict == "done"


@pytest.mark.parametrize("text", ["Your code is 123456", "A reminder of your visit. " * 6])
def test_an_sms_outcome_keeps_its_item_within_one_write_unit_with_its_delivery(
    db: Counting, text: str
) -> None:
    # The item is the row's claim, its result and its envelope (1.4-1.7 KB of JSON, compressed),
    # and then the final status a callback adds: one write unit each time.
    published = envelope(
        "0f8fad5b-d9cb-469f-a165-70867728950e", 123_456, text=text, carried={"reference": "INV-1"}
    )
    assert len(json.dumps(published)) > 1300
    calls = ledger(db, Clock())
    calls.claim(published["job_id"], 123_456, 1)
    assert calls.bind_callback(published["job_id"], 123_456, published["sid"], None) == "bound"
    calls.completed(published["job_id"], 123_456, 1, published)
    db._client.update_item(
        TableName=TABLE,
        Key={"job_id": {"S": published["job_id"]}, "row": {"N": "123456"}},
        UpdateExpression="SET delivery_status = :s, delivery_rank = :r, delivery_at = :at",
        ExpressionAttributeValues={
            ":s": {"S": "undelivered"},
            ":r": {"N": "5"},
            ":at": {"N": str(1_765_000_000.123456)},
        },
    )

    item = db._client.get_item(
        TableName=TABLE, Key={"job_id": {"S": published["job_id"]}, "row": {"N": "123456"}}
    )["Item"]
    assert item_size(item) < 1024
    assert "callback_sid" not in item  # the response's own SID stands for it
    assert calls.claim(published["job_id"], 123_456, 1).envelope == published


def test_an_envelope_stored_as_text_is_still_republished(db: Counting) -> None:
    calls = ledger(db, Clock())
    calls.claim("j", 1, 1)
    db._client.update_item(
        TableName=TABLE,
        Key={"job_id": {"S": "j"}, "row": {"N": "1"}},
        UpdateExpression="SET #s = :done, envelope = :e",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":done": {"S": "done"}, ":e": {"S": '{"row": 1}'}},
    )

    assert calls.claim("j", 1, 1).envelope == {"row": 1}


def test_a_retryable_outcome_opens_the_row_to_its_next_attempt(db: Counting) -> None:
    calls = ledger(db, Clock())
    calls.claim("j", 1, 1)
    writes = calls.writes()
    writes.retryable("j", 1, 1)
    writes.flush()

    assert calls.claim("j", 1, 2).verdict == "call"


def test_outcomes_whose_writes_fail_are_kept_for_the_next_flush_and_the_rest_written(
    db: Counting,
) -> None:
    calls = ledger(db, Clock())
    writes = calls.writes()
    writes.completed("j", 1, 1, envelope("j", 1))
    writes.completed("j", 2, 1, envelope("j", 2))
    db.failing_updates = 1

    with pytest.raises(ClientError):
        writes.flush()
    written = [r for r in (1, 2) if state(db, r)]
    assert len(written) == 1 and state(db, written[0])["state"] == {"S": "done"}
    db.calls.clear()

    writes.flush()
    assert db.calls == ["update_item"]  # only the one that failed
    assert state(db, 1)["state"] == state(db, 2)["state"] == {"S": "done"}


@pytest.mark.parametrize("write", ["buffered", "direct"])
def test_ledger_a_completed_row_binds_only_its_own_sid_and_number(db: Counting, write: str) -> None:
    ledger = CallLedger(db, TABLE, in_doubt_after=90, clock=Clock())  # type: ignore[arg-type]
    assert ledger.claim("job", 1, 1).verdict == "call"
    if write == "buffered":
        writes = ledger.writes()
        writes.completed("job", 1, 1, envelope("job", 1, sid="SM1"))
        writes.flush()
    else:
        ledger.completed("job", 1, 1, envelope("job", 1, sid="SM1"))

    assert ledger.bind_callback("job", 1, "SM1", "+14155550100") == "bound"
    assert ledger.bind_callback("job", 1, "SM2", "+14155550100") == "mismatch"
    assert ledger.bind_callback("job", 1, "SM1", "+14155550199") == "mismatch"
    assert ledger.bind_callback("job", 2, "SM1", "+14155550100") == "unknown_row"


def test_ledger_a_row_in_flight_takes_the_first_sid_a_callback_brings(db: Counting) -> None:
    clock = Clock()
    ledger = CallLedger(db, TABLE, in_doubt_after=90, clock=clock)  # type: ignore[arg-type]
    ledger.claim("job", 1, 1)
    assert ledger.bind_callback("job", 1, "SM1", "+14155550100") == "bound"
    assert ledger.bind_callback("job", 1, "SM2", "+14155550100") == "mismatch"

    clock.now += 91  # the call is in doubt: the bound SID settles it, from the first claim
    claim = ledger.claim("job", 1, 1)
    assert (claim.verdict, claim.callback_sid, claim.claimed_at) == ("in_doubt", "SM1", 1_000.0)
    clock.now += 91  # taken over once already: still the first claim's time
    assert ledger.claim("job", 1, 1).claimed_at == 1_000.0


def test_a_late_retry_of_a_claim_taken_over_never_reopens_the_row(db: Counting) -> None:
    # A batch claims row 1 and runs past the in-doubt time without calling it (no slot: the
    # account is far behind). Another delivery takes the row over, finds no message, opens it to
    # attempt 2, which calls and completes. The first batch's retry, written late, must not
    # reopen the row: written unconditionally, it did, and a copy of attempt 1 called again.
    clock = Clock()
    calls = ledger(db, clock)
    slow = calls.writes()
    [mine] = calls.claim_all([("j", 1, 1)])
    assert mine.verdict == "call"
    slow.hold("j", 1, mine.held_at)

    clock.now += IN_DOUBT_AFTER + 1
    taker = calls.writes()
    [taken] = calls.claim_all([("j", 1, 1)])
    assert taken.verdict == "in_doubt"
    taker.hold("j", 1, taken.held_at)
    taker.retryable("j", 1, 1)  # the look-up found nothing: attempt 1 never took effect
    taker.flush()
    assert taker.refused == set()
    assert calls.claim("j", 1, 2).verdict == "call"
    calls.completed("j", 1, 2, envelope("j", 1, 2, sid="SM1"))

    slow.retryable("j", 1, 1)
    slow.flush()

    assert slow.refused == {("j", 1)}
    assert state(db, 1)["state"] == {"S": "done"}
    assert calls.claim("j", 1, 1).verdict == "done"  # a copy of attempt 1 calls nothing


def test_a_retry_is_refused_once_another_claim_holds_the_row_even_for_the_same_attempt(
    db: Counting,
) -> None:
    clock = Clock()
    calls = ledger(db, clock)
    first = calls.writes()
    [mine] = calls.claim_all([("j", 2, 1)])
    first.hold("j", 2, mine.held_at)
    clock.now += IN_DOUBT_AFTER + 1
    [taken] = calls.claim_all([("j", 2, 1)])  # taken over: same attempt, a newer claim
    assert taken.verdict == "in_doubt"

    first.retryable("j", 2, 1)

    assert first.refused == {("j", 2)}
    assert state(db, 2)["state"] == {"S": "calling"}
    assert calls.claim("j", 2, 2).verdict == "wait"  # still the taker's to settle
