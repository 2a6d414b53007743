"""The suppression list against moto's DynamoDB, with the table the deployment template defines,
and the decision of which responses suppress a number."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
import yaml
from moto import mock_aws

from callqueue.deploy.stack import TEMPLATE
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.records import TwilioResult
from chalicelib.errors import RetryableError
from chalicelib.sending.suppression import (
    Suppression,
    SuppressionList,
    number_of,
    suppression_reason,
)

TABLE = "suppression"
NOW = 1_700_000_000.0
NUMBER = "+14155550100"


def create_suppression_table(dynamodb: Any, name: str) -> None:
    """The table as .chalice/infrastructure.yaml defines it."""
    resources = yaml.safe_load(TEMPLATE.read_text())["Resources"]
    properties = dict(resources["SuppressionTable"]["Properties"])
    # CloudFormation-only: point-in-time recovery is a separate API call, not CreateTable's.
    properties.pop("PointInTimeRecoverySpecification", None)
    dynamodb.create_table(TableName=name, **properties)


@pytest.fixture
def dynamodb() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_suppression_table(client, TABLE)
        yield client


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def suppressions(dynamodb: Any, sleeps: list[float]) -> SuppressionList:
    return SuppressionList(dynamodb, TABLE, clock=lambda: NOW, sleep=sleeps.append)


def leave_unprocessed(dynamodb: Any, how_many_calls: int) -> list[int]:
    """Make the next `how_many_calls` BatchGetItem answers leave all but the first requested key
    unprocessed, as DynamoDB does when throttled. Returns a list that gets the number of keys of
    every request made from now on."""
    counts: list[int] = []
    keys: list[dict[str, Any]] = []

    def remember(params: dict[str, Any], **_: Any) -> None:
        keys[:] = params["RequestItems"][TABLE]["Keys"]
        counts.append(len(keys))

    def cut(parsed: dict[str, Any], **_: Any) -> None:
        if len(counts) > how_many_calls:
            return
        first, *rest = keys
        parsed["Responses"][TABLE] = [
            item for item in parsed["Responses"][TABLE] if item["number"] == first["number"]
        ]
        if rest:
            parsed["UnprocessedKeys"] = {TABLE: {"Keys": rest}}

    dynamodb.meta.events.register("before-parameter-build.dynamodb.BatchGetItem", remember)
    dynamodb.meta.events.register("after-call.dynamodb.BatchGetItem", cut)
    return counts


def test_suppression_add_stores_the_number_with_why_and_when(
    dynamodb: Any, suppressions: SuppressionList
) -> None:
    added = suppressions.add(NUMBER, "unsubscribed", error_code=21610, job_id="job-1")

    item = dynamodb.get_item(TableName=TABLE, Key={"number": {"S": NUMBER}})["Item"]
    assert added is True
    assert item == {
        "number": {"S": NUMBER},
        "reason": {"S": "unsubscribed"},
        "error_code": {"N": "21610"},
        "job_id": {"S": "job-1"},
        "source": {"S": "send_error"},
        "added_at": {"N": str(NOW)},
    }


def test_suppression_add_leaves_out_what_is_not_known(
    dynamodb: Any, suppressions: SuppressionList
) -> None:
    suppressions.add(NUMBER, "asked by phone", source="manual")

    item = dynamodb.get_item(TableName=TABLE, Key={"number": {"S": NUMBER}})["Item"]
    assert set(item) == {"number", "reason", "source", "added_at"}
    assert item["source"] == {"S": "manual"}


def test_suppression_add_is_idempotent_and_keeps_the_first_reason(dynamodb: Any) -> None:
    times = iter([NOW, NOW + 60.0])
    suppressions = SuppressionList(dynamodb, TABLE, clock=lambda: next(times))

    first = suppressions.add(NUMBER, "unsubscribed", error_code=21610, job_id="job-1")
    second = suppressions.add(NUMBER, "invalid number", error_code=21211, job_id="job-2")

    assert (first, second) == (True, False)
    assert list(suppressions.list()) == [
        Suppression(
            number=NUMBER,
            reason="unsubscribed",
            error_code=21610,
            job_id="job-1",
            added_at=NOW,
            source="send_error",
        )
    ]


def test_suppression_add_refuses_an_empty_number(suppressions: SuppressionList) -> None:
    with pytest.raises(ValueError, match="empty number"):
        suppressions.add("", "unsubscribed")


def test_suppression_remove_says_whether_the_number_was_there(
    suppressions: SuppressionList,
) -> None:
    suppressions.add(NUMBER, "unsubscribed")

    assert suppressions.remove(NUMBER) is True
    assert suppressions.remove(NUMBER) is False
    assert suppressions.suppressed([NUMBER]) == set()


def test_suppression_list_reads_every_page(dynamodb: Any) -> None:
    suppressions = SuppressionList(dynamodb, TABLE, clock=lambda: NOW, page_size=2)
    numbers = [f"+1415555{i:04d}" for i in range(7)]
    for i, number in enumerate(numbers):
        suppressions.add(number, "unsubscribed", error_code=21610 if i % 2 else None)

    listed = sorted(suppressions.list(), key=lambda s: s.number)

    assert [s.number for s in listed] == numbers
    assert [s.error_code for s in listed] == [None, 21610, None, 21610, None, 21610, None]
    assert {(s.reason, s.job_id, s.added_at) for s in listed} == {("unsubscribed", None, NOW)}


def test_suppression_list_of_an_empty_table_is_empty(suppressions: SuppressionList) -> None:
    assert list(suppressions.list()) == []


def test_suppression_suppressed_checks_more_numbers_than_one_batch_takes(
    dynamodb: Any, suppressions: SuppressionList
) -> None:
    numbers = [f"+1415555{i:04d}" for i in range(250)]
    blocked = set(numbers[::7])
    for number in blocked:
        suppressions.add(number, "unsubscribed")
    requested = leave_unprocessed(dynamodb, how_many_calls=0)

    assert suppressions.suppressed(numbers) == blocked
    assert requested == [100, 100, 50]


def test_suppression_suppressed_asks_once_for_a_repeated_number(
    dynamodb: Any, suppressions: SuppressionList
) -> None:
    suppressions.add(NUMBER, "unsubscribed")
    requested = leave_unprocessed(dynamodb, how_many_calls=0)

    found = suppressions.suppressed([NUMBER, "+14155550101", NUMBER, "", "+14155550101"])

    assert found == {NUMBER}
    assert requested == [2]


def test_suppression_suppressed_of_no_numbers_makes_no_request(dynamodb: Any) -> None:
    # A table that does not exist would fail any request.
    suppressions = SuppressionList(dynamodb, "no-such-table")

    assert suppressions.suppressed([]) == set()
    assert suppressions.suppressed(iter([""])) == set()


def test_suppression_suppressed_retries_unprocessed_keys_with_backoff(
    dynamodb: Any, suppressions: SuppressionList, sleeps: list[float]
) -> None:
    numbers = [f"+1415555{i:04d}" for i in range(4)]
    for number in numbers[1:]:
        suppressions.add(number, "unsubscribed")
    requested = leave_unprocessed(dynamodb, how_many_calls=2)

    found = suppressions.suppressed(numbers)

    assert found == set(numbers[1:])
    assert requested == [4, 3, 2]
    assert sleeps == [0.05, 0.1]


def test_suppression_suppressed_raises_when_keys_stay_unprocessed(
    dynamodb: Any, sleeps: list[float]
) -> None:
    suppressions = SuppressionList(dynamodb, TABLE, sleep=sleeps.append, attempts=3, base_delay=1.0)
    leave_unprocessed(dynamodb, how_many_calls=10)

    with pytest.raises(RetryableError, match="2 keys still unprocessed after 3 attempts"):
        suppressions.suppressed([f"+1415555{i:04d}" for i in range(5)])
    assert sleeps == [1.0, 2.0]


# -- which responses suppress a number ----------------------------------------------------------


def envelope(
    *,
    api: str = "messages",
    status: int | None = 400,
    code: int | None = None,
    body: dict[str, Any] | None = None,
    outcome: str = "failed",
) -> dict[str, Any]:
    request = (
        {"PhoneNumber": NUMBER, "Fields": "line_type_intelligence"}
        if api == "lookup"
        else {"To": NUMBER, "From": "+14155550000", "Body": "hi"}
    )
    result = TwilioResult(
        status=status,
        body=body,
        headers={},
        started_at=NOW,
        finished_at=NOW + 0.2,
        error_code=code,
        error_message=None if code is None else f"error {code}",
    )
    return ResponseEnvelope(
        job_id="job-1",
        row=1,
        api=api,  # type: ignore[arg-type]
        attempt=1,
        outcome=outcome,  # type: ignore[arg-type]
        request=request,  # type: ignore[arg-type]
        result=result,
        due_at=NOW,
    ).to_json()


def lookup_body(*, valid: bool = True, line_type: str | None = "mobile") -> dict[str, Any]:
    return {
        "phone_number": NUMBER,
        "valid": valid,
        "line_type_intelligence": None if line_type is None else {"type": line_type},
        "sid": None,
    }


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (21610, "unsubscribed"),
        (21614, "not a mobile number"),
        (21211, "invalid number"),
    ],
)
def test_suppression_reason_of_a_suppressing_error_code(code: int, reason: str) -> None:
    assert suppression_reason(envelope(code=code, body={"code": code})) == (reason, code)


@pytest.mark.parametrize("code", [21212, 21612, 20429, 30007])
def test_suppression_reason_of_another_error_code_is_none(code: int) -> None:
    assert suppression_reason(envelope(code=code)) is None


def test_suppression_reason_of_a_created_message_is_none() -> None:
    created = envelope(
        status=201, body={"sid": "SM" + "0" * 32, "status": "queued"}, outcome="sent"
    )

    assert suppression_reason(created) is None


def test_suppression_reason_of_a_network_failure_is_none() -> None:
    assert suppression_reason(envelope(status=None, outcome="unknown")) is None


def test_suppression_reason_of_a_lookup_saying_invalid() -> None:
    found = envelope(api="lookup", status=200, body=lookup_body(valid=False, line_type=None))

    assert suppression_reason(found) == ("invalid number (lookup)", None)


def test_suppression_reason_of_a_lookup_saying_landline() -> None:
    found = envelope(api="lookup", status=200, body=lookup_body(line_type="landline"))

    assert suppression_reason(found) == ("landline (lookup)", None)


@pytest.mark.parametrize("line_type", ["mobile", "nonFixedVoip", None])
def test_suppression_reason_of_a_lookup_of_a_valid_number_is_none(line_type: str | None) -> None:
    found = envelope(api="lookup", status=200, body=lookup_body(line_type=line_type))

    assert suppression_reason(found) is None


def test_suppression_reason_of_a_lookup_without_packages_is_none() -> None:
    body = {"phone_number": NUMBER, "valid": True}

    assert suppression_reason(envelope(api="lookup", status=200, body=body)) is None


def test_suppression_reason_reads_lookup_fields_only_from_a_lookup() -> None:
    odd = envelope(status=201, body={"sid": "SM1", "valid": False}, outcome="sent")

    assert suppression_reason(odd) is None


def test_suppression_number_of_is_to_or_the_looked_up_number() -> None:
    assert number_of(envelope()) == NUMBER
    assert number_of(envelope(api="lookup", status=200)) == NUMBER
    assert number_of({"request": {"From": "+14155550000"}}) is None
    assert number_of({"request": None}) is None
    assert number_of({"request": {"To": ["+14155550100"]}}) is None
