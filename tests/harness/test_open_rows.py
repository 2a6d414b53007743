"""What `callqueue run` says of rows left without an outcome when it gives up
(callqueue.local.open_rows): each row's ledger state, read from a real (moto) results table, and
the send queue's counts."""

from __future__ import annotations

import boto3
from moto import mock_aws

from callqueue.local.open_rows import NAMED, OpenRow, open_rows, queue_counts, warning
from tests.tables import create_ledger_table

TABLE = "cq-results"
NOW = 1_800_000_000.0


def _item(job: str, row: int, **attributes: dict[str, str]) -> dict[str, object]:
    return {"job_id": {"S": job}, "row": {"N": str(row)}, **attributes}


def test_open_rows_name_each_rows_ledger_state_and_skip_settled_rows_and_other_jobs() -> None:
    with mock_aws():
        db = boto3.client("dynamodb", region_name="us-east-1")
        create_ledger_table(db, TABLE)
        items = [
            _item("j1", 1, state={"S": "done"}, attempt={"N": "1"}, claimed_at={"N": "1"}),
            _item("j1", 2, state={"S": "calling"}, attempt={"N": "2"}, claimed_at={"N": "1.8e9"}),
            _item("j1", 3, state={"S": "retry"}, attempt={"N": "1"}),
            _item("j1", 4),  # written by the results sink: never claimed
            _item("j2", 2, state={"S": "calling"}, attempt={"N": "1"}, claimed_at={"N": "1"}),
        ]
        # More than a page of settled rows before them: the query is read to its end.
        items += [_item("j1", r, state={"S": "done"}) for r in range(100, 2600)]
        for item in items:
            db.put_item(TableName=TABLE, Item=item)
        settled = {("j1", 1)} | {("j1", r) for r in range(100, 2600)}

        rows = open_rows(db, TABLE, ["j1"], lambda j, r: (j, r) in settled, NOW + 95.0)

    assert [(r.row, r.state, r.attempt) for r in rows] == [
        (2, "calling", 2),
        (3, "retry", 1),
        (4, "", None),
    ]
    assert rows[0].claimed_seconds_ago == 95.0
    assert rows[0].describe() == "job j1 row 2: calling, attempt 2, claimed 95 s ago"
    assert rows[2].describe() == "job j1 row 4: never claimed"
    assert rows[0].as_json()["claimed_seconds_ago"] == 95.0


def test_queue_counts_are_the_send_queues_visible_in_flight_and_delayed_messages() -> None:
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        url = sqs.create_queue(QueueName="cq-send")["QueueUrl"]
        for body in ("a", "b", "c"):
            sqs.send_message(QueueUrl=url, MessageBody=body)
        sqs.send_message(QueueUrl=url, MessageBody="later", DelaySeconds=600)
        sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, VisibilityTimeout=600)

        counts = queue_counts(sqs, "cq-send")

    assert counts == {"visible": 2, "in flight": 1, "delayed": 1}


def test_the_warning_names_the_first_rows_and_counts_the_rest_and_the_unclaimed() -> None:
    rows = [OpenRow("j", r, "calling", 1, 70.0) for r in range(NAMED + 3)]
    text = warning(rows, 2, {"visible": 0, "in flight": 1, "delayed": 0})
    lines = text.splitlines()

    assert lines[0] == f"callqueue: rows without an outcome: {NAMED + 5}"
    named = [f"  job j row {r}: calling, attempt 1, claimed 70 s ago" for r in range(NAMED)]
    assert lines[1:-3] == named
    assert lines[-3] == "  ... and 3 more (the report lists them all)"
    assert lines[-2] == "  2 never reached the sender (no item in the results table)"
    assert lines[-1] == "  the send queue holds: 0 visible, 1 in flight, 0 delayed"
