"""The results sink against moto's DynamoDB, with the table the deployment template defines."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from botocore.exceptions import ClientError
from moto import mock_aws

from callqueue.deploy.stack import TEMPLATE
from chalicelib.aws.result_items import RowResult
from chalicelib.aws.results_table import ResultsTable
from chalicelib.core.batching import item_size
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.records import TwilioResult

TABLE = "results"
NOW = 1_700_000_000.0


def envelope(
    row: int,
    *,
    outcome: str = "sent",
    attempt: int = 1,
    job_id: str = "job-1",
    code: int | None = None,
    api: str = "messages",
) -> ResponseEnvelope:
    status = {"sent": 201, "failed": 400, "retrying": 429, "dead_lettered": 503}.get(outcome)
    body = None if status is None else {"sid": f"SM{row:032d}"} if status < 300 else {}
    request = (
        {"PhoneNumber": f"+1415555{row:04d}"}
        if api == "lookup"
        else {"To": f"+1415555{row:04d}", "From": "+14155550000", "Body": "hi"}
    )
    result = TwilioResult(
        status=status,
        body=body,
        headers={} if status is None else {"Twilio-Request-Id": f"RQ{row}-{attempt}"},
        started_at=NOW - 5.0,
        finished_at=NOW - 5.0 if status is None else NOW - 4.5,
        error_code=code,
        error_message=None if code is None else f"error {code}",
    )
    return ResponseEnvelope(
        job_id=job_id,
        row=row,
        api=api,  # type: ignore[arg-type]
        attempt=attempt,
        outcome=outcome,  # type: ignore[arg-type]
        request=request,  # type: ignore[arg-type]
        result=result,
        due_at=NOW - 6.0,
    )


def create_results_table(dynamodb: Any, name: str) -> None:
    """The table as .chalice/infrastructure.yaml defines it."""
    properties = yaml.safe_load(TEMPLATE.read_text())["Resources"]["ResultsTable"]["Properties"]
    # TTL and point-in-time recovery are set by calls of their own, not CreateTable.
    separate = ("TimeToLiveSpecification", "PointInTimeRecoverySpecification")
    dynamodb.create_table(
        TableName=name,
        **{k: v for k, v in properties.items() if k not in separate},
    )
    dynamodb.update_time_to_live(
        TableName=name, TimeToLiveSpecification=properties["TimeToLiveSpecification"]
    )


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_results_table(client, TABLE)
        yield client


@pytest.fixture
def results(dynamodb: Any) -> ResultsTable:
    return ResultsTable(dynamodb, TABLE, clock=lambda: NOW)


def stored_item(dynamodb: Any, job_id: str, row: int) -> dict[str, Any]:
    key = {"job_id": {"S": job_id}, "row": {"N": str(row)}}
    item: dict[str, Any] = dynamodb.get_item(TableName=TABLE, Key=key)["Item"]
    return item


def test_results_table_is_created_with_the_deployments_indexes(dynamodb: Any) -> None:
    table = dynamodb.describe_table(TableName=TABLE)["Table"]
    ttl = dynamodb.describe_time_to_live(TableName=TABLE)["TimeToLiveDescription"]

    # by_error_code only: an index nothing reads would bill every write again.
    assert {i["IndexName"] for i in table["GlobalSecondaryIndexes"]} == {"by_error_code"}
    assert ttl["AttributeName"] == "expires_at"


def test_results_record_and_read_back(results: ResultsTable) -> None:
    written = results.record(
        [
            envelope(2, outcome="failed", code=21211),
            envelope(1),
            envelope(3, outcome="suppressed"),
            envelope(4, api="lookup"),
        ]
    )

    assert written == 4
    assert list(results.outcomes("job-1")) == [
        RowResult("job-1", 1, "messages", "sent", 1, 201, None, f"SM{1:032d}", "+14155550001", NOW),
        RowResult("job-1", 2, "messages", "failed", 1, 400, 21211, None, "+14155550002", NOW),
        RowResult("job-1", 3, "messages", "suppressed", 1, None, None, None, "+14155550003", NOW),
        RowResult("job-1", 4, "lookup", "sent", 1, 201, None, f"SM{4:032d}", "+14155550004", NOW),
    ]
    assert list(results.outcomes("job-2")) == []


def test_results_item_holds_the_envelopes_details(dynamodb: Any, results: ResultsTable) -> None:
    results.record([envelope(7, outcome="failed", code=21211), envelope(8, outcome="suppressed")])

    failed = stored_item(dynamodb, "job-1", 7)
    suppressed = stored_item(dynamodb, "job-1", 8)
    assert failed["job_row"] == {"S": "job-1#000000007"}
    assert failed["error_message"] == {"S": "error 21211"}
    assert failed["to"] == {"S": "+14155550007"}
    # No copy of the envelope: the request and the headers are in the archive.
    assert not {"request", "headers", "outcome_row"} & set(failed)
    assert item_size(failed) < 1024
    assert float(failed["finished_at"]["N"]) == NOW - 4.5
    assert not {"status", "sid", "error_code", "error_message"} & set(suppressed)


def test_results_ttl_is_clock_plus_retention(dynamodb: Any) -> None:
    ResultsTable(dynamodb, TABLE, retention_days=7, clock=lambda: NOW).record([envelope(1)])

    item = stored_item(dynamodb, "job-1", 1)
    assert int(item["expires_at"]["N"]) == NOW + 7 * 86_400
    assert float(item["updated_at"]["N"]) == NOW


def test_results_redelivery_is_an_idempotent_overwrite(
    dynamodb: Any, results: ResultsTable
) -> None:
    batch = [envelope(1), envelope(2, outcome="failed", code=21211)]
    results.record(batch)
    first = [stored_item(dynamodb, "job-1", row) for row in (1, 2)]

    assert results.record(batch) == 2

    assert [stored_item(dynamodb, "job-1", row) for row in (1, 2)] == first
    assert dynamodb.scan(TableName=TABLE, Select="COUNT")["Count"] == 2


def test_results_older_attempt_does_not_overwrite_a_newer_one(results: ResultsTable) -> None:
    results.record([envelope(1, outcome="sent", attempt=2)])

    written = results.record(
        [envelope(1, outcome="retrying", attempt=1, code=20429), envelope(2, attempt=1)]
    )

    assert written == 1
    [row1, _] = results.outcomes("job-1")
    assert (row1.outcome, row1.attempt, row1.status, row1.error_code) == ("sent", 2, 201, None)


def test_results_newer_attempt_replaces_the_older_item(
    dynamodb: Any, results: ResultsTable
) -> None:
    results.record([envelope(1, outcome="retrying", attempt=1, code=20429)])

    assert results.record([envelope(1, outcome="sent", attempt=2)]) == 1

    [row] = results.outcomes("job-1")
    assert (row.outcome, row.attempt, row.error_code) == ("sent", 2, None)
    assert "error_message" not in stored_item(dynamodb, "job-1", 1)
    assert list(results.rows_with_error(20429)) == []


def test_results_count_by_outcome_excludes_retrying(results: ResultsTable) -> None:
    results.record(
        [
            envelope(1),
            envelope(2),
            envelope(3, outcome="failed", code=21211),
            envelope(4, outcome="retrying", code=20429),
            envelope(5, outcome="suppressed"),
            envelope(6, outcome="dead_lettered", attempt=5, code=20500),
            envelope(1, job_id="job-2"),
        ]
    )

    assert results.count_by_outcome("job-1") == Counter(
        {"sent": 2, "failed": 1, "suppressed": 1, "dead_lettered": 1}
    )


def test_results_rows_with_error_queries_the_error_code_index(results: ResultsTable) -> None:
    results.record(
        [
            envelope(12, job_id="job-b", outcome="failed", code=21211),
            envelope(3, job_id="job-a", outcome="failed", code=21211),
            envelope(11, job_id="job-a", outcome="failed", code=21211),
            envelope(4, job_id="job-a", outcome="failed", code=21610),
            envelope(5, job_id="job-a"),
        ]
    )

    found = [(r.job_id, r.row, r.error_code) for r in results.rows_with_error(21211)]

    assert found == [("job-a", 3, 21211), ("job-a", 11, 21211), ("job-b", 12, 21211)]
    assert [r.row for r in results.rows_with_error(21610)] == [4]
    assert list(results.rows_with_error(30003)) == []


def test_results_queries_read_every_page(dynamodb: Any) -> None:
    paged = ResultsTable(dynamodb, TABLE, clock=lambda: NOW, page_size=2)
    batch = [envelope(row, outcome="failed", code=21211) for row in range(1, 8)]
    batch.append(envelope(8, outcome="retrying", code=20429))
    paged.record(batch)

    assert [r.row for r in paged.outcomes("job-1")] == list(range(1, 9))
    assert paged.count_by_outcome("job-1") == Counter({"failed": 7})
    assert [r.row for r in paged.rows_with_error(21211)] == list(range(1, 8))


def test_results_other_client_errors_propagate(dynamodb: Any) -> None:
    missing = ResultsTable(dynamodb, "no-such-table", clock=lambda: NOW)

    with pytest.raises(ClientError) as raised:
        missing.record([envelope(1)])

    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_results_batch_is_a_conditional_put_a_row_and_a_callback_row_keeps_its_status(
    dynamodb: Any, results: ResultsTable
) -> None:
    requests: list[str] = []
    dynamodb.meta.events.register(
        "before-call.dynamodb.*", lambda model, **_: requests.append(model.name)
    )
    results.record([envelope(row) for row in range(1, 51)])
    # Never a transaction: it bills each item twice.
    assert requests == ["PutItem"] * 50

    # A callback for row 52 arrived before its response: row 52 keeps the delivery status
    # beside its response.
    results.record_delivery("job-1", 52, status="delivered", rank=5, error_code=None)
    requests.clear()
    assert results.record([envelope(51), envelope(52), envelope(51, attempt=2)]) == 2

    assert sorted(requests) == ["PutItem", "PutItem", "UpdateItem"]
    assert stored_item(dynamodb, "job-1", 52)["delivery_status"] == {"S": "delivered"}
    assert stored_item(dynamodb, "job-1", 52)["outcome"] == {"S": "sent"}
    assert stored_item(dynamodb, "job-1", 51)["attempt"] == {"N": "2"}
