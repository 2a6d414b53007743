"""Retrying a finished job's failed rows (POST /jobs/{id}/retry): which rows are taken by outcome
and error code, what is refused, and the new job the splitter makes of them: the same parameters
and carried columns, the original row numbers, and `retry_of` on its record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from chalice.test import Client

from chalicelib import wiring
from chalicelib.aws.buckets import chunk_key
from chalicelib.core.records import ChunkRow
from tests.handlers.test_lifecycle import client, make_job
from tests.stack import Stack

__all__ = ["client"]  # the fixture, registered by being here

JOB = "calls-0123456789ab"
JSON = {"Content-Type": "application/json"}
# Row -> (outcome, error code) as the results table holds them.
OUTCOMES: dict[int, tuple[str, int | None]] = {
    1: ("sent", None),
    2: ("failed", 21211),
    3: ("failed", 30003),
    4: ("dead_lettered", None),
    5: ("unknown", None),
    6: ("suppressed", 21610),
    7: ("failed", 30003),
    8: ("sent", None),
}
# Rows 9 and 10 were rejected at the split: in no chunk and not in the results table.
REJECTED = 2


def chunk_row(row: int) -> ChunkRow:
    params: dict[str, Any] = {
        "To": f"+1415523{row:04d}",
        "From": "+15005550006",
        "Body": f"hi {row}",
    }
    if row == 3:
        params["MediaUrl"] = ["https://example.com/a.png", "https://example.com/b.png"]
    return ChunkRow(row, "messages", params, 0.0, {"reference": f"ref-{row}", "name": f"N {row}"})


@pytest.fixture
def finished(stack: Stack) -> Iterator[str]:
    """A completed job of 10 rows in two chunks (5 and 3 rows), with its results."""
    holding = stack.env["HOLDING_BUCKET"]
    for number, rows in enumerate(([1, 2, 3, 4, 5], [6, 7, 8])):
        body = "".join(json.dumps(chunk_row(r).to_json()) + "\n" for r in rows)
        stack.s3.put_object(Bucket=holding, Key=chunk_key(JOB, number), Body=body.encode())
    make_job(JOB, "completed", chunks=2, rows=10, valid=8, rejected=REJECTED, keep_columns="name")
    for row, (outcome, code) in OUTCOMES.items():
        item: dict[str, Any] = {
            "job_id": {"S": JOB},
            "row": {"N": str(row)},
            "api": {"S": "messages"},
            "outcome": {"S": outcome},
            "attempt": {"N": "1"},
            "updated_at": {"N": "1000"},
        }
        if code is not None:
            item["error_code"] = {"N": str(code)}
        stack.dynamodb.put_item(TableName=stack.env["RESULTS_TABLE"], Item=item)
    yield JOB


def retry(client: Client, body: Any, job_id: str = JOB) -> tuple[int, dict[str, Any]]:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    response = client.http.post(f"/jobs/{job_id}/retry", headers=JSON, body=raw)
    return response.status_code, json.loads(response.body)


def written(stack: Stack, key: str) -> tuple[list[dict[str, Any]], dict[str, str]]:
    got = stack.s3.get_object(Bucket=stack.env["SOURCE_BUCKET"], Key=key)
    lines = got["Body"].read().decode().splitlines()
    return [json.loads(line) for line in lines], got["Metadata"]


def originals(records: list[dict[str, Any]]) -> list[int]:
    return [int(r["original_row"]) for r in records]


@pytest.mark.parametrize(
    ("body", "rows"),
    [
        (None, [2, 3, 4, 7]),
        ({}, [2, 3, 4, 7]),
        ({"outcomes": ["failed"]}, [2, 3, 7]),
        ({"outcomes": ["failed", "unknown"]}, [2, 3, 5, 7]),
        ({"outcomes": ["unknown"]}, [5]),
        ({"errors": [30003]}, [3, 7]),
        ({"outcomes": ["failed", "dead_lettered"], "errors": [21211, 99999]}, [2]),
    ],
)
def test_retry_takes_exactly_the_rows_asked_for(
    stack: Stack, client: Client, finished: str, body: Any, rows: list[int]
) -> None:
    status, answer = retry(client, b"" if body is None else body)
    assert status == 201, answer
    assert answer["rows"] == len(rows) and answer["retry_of"] == JOB
    records, metadata = written(stack, answer["key"])
    assert originals(records) == rows
    assert metadata["job-id"] == answer["job_id"] and metadata["retry-of"] == JOB
    assert metadata["resend"] == "true" and metadata["keep-columns"] == "name,original_row"


@pytest.mark.parametrize("outcome", ["sent", "suppressed", "rejected", "retrying", "queued"])
def test_retry_of_an_outcome_never_retried_is_400(
    client: Client, finished: str, outcome: str
) -> None:
    status, answer = retry(client, {"outcomes": ["failed", outcome]})
    assert status == 400 and repr(outcome) in answer["Message"]


@pytest.mark.parametrize(
    "body",
    [b"{", [1], {"outcomes": "failed"}, {"errors": []}, {"errors": ["30003"]}, {"errors": [True]}],
)
def test_retry_a_bad_body_is_400(client: Client, finished: str, body: Any) -> None:
    assert retry(client, body)[0] == 400


def test_retry_that_matches_no_row_is_409_and_writes_nothing(
    stack: Stack, client: Client, finished: str
) -> None:
    status, answer = retry(client, {"errors": [11200]})
    assert status == 409 and "no row" in answer["Message"]
    listed = stack.s3.list_objects_v2(Bucket=stack.env["SOURCE_BUCKET"])
    assert listed.get("KeyCount", 0) == 0


@pytest.mark.parametrize("state", ["splitting", "scheduled", "running", "released", "paused"])
def test_retry_of_an_unfinished_job_is_409(client: Client, state: str) -> None:
    make_job(JOB, state)
    status, answer = retry(client, {})
    assert status == 409 and state in answer["Message"]


def test_retry_of_no_such_job_is_404(client: Client) -> None:
    assert retry(client, {})[0] == 404


def test_retried_job_has_the_same_params_and_references_and_its_retry_of(
    stack: Stack, client: Client, finished: str
) -> None:
    status, answer = retry(client, {"outcomes": ["failed", "dead_lettered", "unknown"]})
    assert status == 201
    wiring.splitter().split(stack.env["SOURCE_BUCKET"], answer["key"])
    new = wiring.jobs().get(answer["job_id"])
    assert new is not None and new.retry_of == JOB
    assert (new.valid, new.rejected) == (5, 0)
    body = stack.s3.get_object(Bucket=stack.env["HOLDING_BUCKET"], Key=chunk_key(new.job_id, 0))
    got = [ChunkRow.from_json(json.loads(line)) for line in body["Body"].read().splitlines()]
    for row in got:
        original = chunk_row(int(row.carried["original_row"]))
        assert (row.api, row.params) == (original.api, original.params)
        assert {k: row.carried[k] for k in ("reference", "name")} == original.carried
    assert sorted(int(r.carried["original_row"]) for r in got) == [2, 3, 4, 5, 7]
    shown = json.loads(client.http.get(f"/jobs/{new.job_id}").body)
    assert shown["retry_of"] == JOB


def test_retry_of_a_retry_keeps_the_first_jobs_row_numbers(
    stack: Stack, client: Client, finished: str
) -> None:
    _, first = retry(client, {"errors": [30003]})
    wiring.splitter().split(stack.env["SOURCE_BUCKET"], first["key"])
    new = first["job_id"]
    stack.dynamodb.update_item(
        TableName=stack.env["JOBS_TABLE"],
        Key={"job_id": {"S": new}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "state"},
        ExpressionAttributeValues={":s": {"S": "completed"}},
    )
    for row in (1, 2):
        stack.dynamodb.put_item(
            TableName=stack.env["RESULTS_TABLE"],
            Item={
                "job_id": {"S": new},
                "row": {"N": str(row)},
                "api": {"S": "messages"},
                "outcome": {"S": "failed"},
                "attempt": {"N": "1"},
                "updated_at": {"N": "1000"},
            },
        )
    status, second = retry(client, {}, job_id=new)
    assert status == 201
    assert sorted(originals(written(stack, second["key"])[0])) == [3, 7]
