"""callqueue.local.cost_units against AWS's documented rules for on-demand DynamoDB units, on
moto's in-process tables (the cost log reads the items' sizes from them).

The rules and where AWS states them:
- item sizes (attribute names plus values; a number takes about a byte per two significant
  digits plus one): https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/CapacityUnitCalculations.html
- units per operation (a write unit per 1 KB, of the larger of the item before and after,
  also when the condition fails; a read unit per 4 KB, half for an eventually consistent read,
  twice in a transaction; an item that does not exist still costs the read; BatchGetItem
  rounds each item up to 4 KB on its own; Query and Scan round the items' total):
  https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/read-write-operations.html
- global secondary indexes (a write to the table writes the index entry of an item that has
  the index key, two when the key changes; an entry's size is its projected attributes plus
  100 bytes): https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/GSI.html
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from callqueue.local.cost_log import EMPTY_RECEIVE, AwsLog
from callqueue.local.cost_units import (
    READ_UNIT_BYTES,
    REGION,
    DynamoUnits,
    size_of,
    value_size,
)

TABLE = "units"
INDEXED = "indexed"


@pytest.fixture
def db() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("dynamodb", region_name=REGION)
        client.create_table(
            TableName=TABLE,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "k", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        client.create_table(
            TableName=INDEXED,
            KeySchema=[{"AttributeName": "k", "KeyType": "HASH"}],
            AttributeDefinitions=[
                {"AttributeName": "k", "AttributeType": "S"},
                {"AttributeName": "g", "AttributeType": "S"},
            ],
            GlobalSecondaryIndexes=[
                {
                    "IndexName": "by_g",
                    "KeySchema": [{"AttributeName": "g", "KeyType": "HASH"}],
                    "Projection": {"ProjectionType": "KEYS_ONLY"},
                }
            ],
            BillingMode="PAY_PER_REQUEST",
        )
        yield client


def item(key: str, size: int, **extra: str) -> dict[str, Any]:
    """An item of exactly `size` bytes as DynamoDB counts them (with `extra` string attributes)."""
    base = {"k": {"S": key}, **{name: {"S": value} for name, value in extra.items()}}
    padding = size - size_of(base) - len("p")
    assert padding >= 0
    full = {**base, "p": {"S": "x" * padding}}
    assert size_of(full) == size
    return full


def units(
    db: Any, operation: str, request: dict[str, Any], call: Callable[..., Any]
) -> DynamoUnits:
    """The units the cost log counts for one request, made against moto as the server would."""
    counted = DynamoUnits(operation, request)
    ok = True
    try:
        response: Any = call(**request)
    except db.exceptions.ConditionalCheckFailedException:
        ok, response = False, {}
    body = json.dumps(response, default=str).encode()
    counted.after(ok, body, lambda again: db.scan(**again))
    return counted


def total(counter: dict[str, float]) -> float:
    return sum(counter.values())


# Item sizes.


def test_a_string_is_its_utf8_bytes_and_a_name_counts_too() -> None:
    assert size_of({"name": {"S": "héllo"}}) == 4 + 6


@pytest.mark.parametrize(
    ("number", "size"),
    [("0", 2), ("7", 2), ("12", 2), ("123", 3), ("-1234.5", 4), ("1000", 2), ("0.0012", 2)],
)
def test_a_number_is_a_byte_per_two_significant_digits_plus_one(number: str, size: int) -> None:
    assert value_size({"N": number}) == size


@given(
    name=st.text(min_size=1, max_size=50).filter(lambda n: n != "k"), value=st.text(max_size=300)
)
def test_an_items_size_is_the_sum_of_its_names_and_values(name: str, value: str) -> None:
    expected = len(b"k") + len(b"key") + len(name.encode()) + len(value.encode())
    assert size_of({"k": {"S": "key"}, name: {"S": value}}) == expected


# Writes.


@pytest.mark.parametrize(("size", "expected"), [(10, 1), (1024, 1), (1025, 2), (3000, 3)])
def test_a_put_costs_a_write_unit_per_kb_rounded_up(db: Any, size: int, expected: int) -> None:
    request = {"TableName": TABLE, "Item": item("a", size)}
    assert total(units(db, "PutItem", request, db.put_item).write_units) == expected


def test_a_write_costs_the_larger_of_the_item_before_and_after(db: Any) -> None:
    db.put_item(TableName=TABLE, Item=item("a", 2500))
    request = {"TableName": TABLE, "Item": item("a", 100)}
    assert total(units(db, "PutItem", request, db.put_item).write_units) == 3


def test_a_write_whose_condition_fails_still_costs_at_least_a_unit(db: Any) -> None:
    db.put_item(TableName=TABLE, Item=item("a", 1500))
    request = {
        "TableName": TABLE,
        "Item": item("a", 100),
        "ConditionExpression": "attribute_not_exists(k)",
    }
    assert total(units(db, "PutItem", request, db.put_item).write_units) == 2
    request = {**request, "Item": item("b", 100), "ConditionExpression": "attribute_exists(k)"}
    assert total(units(db, "PutItem", request, db.put_item).write_units) == 1


def test_a_transactional_write_costs_twice(db: Any) -> None:
    request = {"TransactItems": [{"Put": {"TableName": TABLE, "Item": item("a", 1500)}}]}
    counted = units(db, "TransactWriteItems", request, db.transact_write_items)
    assert total(counted.write_units) == 4


def test_a_batch_write_costs_each_item_on_its_own(db: Any) -> None:
    puts = [{"PutRequest": {"Item": item(k, 600)}} for k in "abc"]
    request = {"RequestItems": {TABLE: puts}}
    # 3 x 600 bytes is 1,800 bytes, but each item rounds up on its own.
    assert total(units(db, "BatchWriteItem", request, db.batch_write_item).write_units) == 3


def test_a_write_to_an_item_with_the_index_key_writes_the_index_too(db: Any) -> None:
    request = {"TableName": INDEXED, "Item": item("a", 500, g="one")}
    assert total(units(db, "PutItem", request, db.put_item).write_units) == 1 + 1
    # Without the index key the item is not in the index: the table's write only.
    request = {"TableName": INDEXED, "Item": item("b", 500)}
    assert total(units(db, "PutItem", request, db.put_item).write_units) == 1


def test_a_write_that_changes_the_index_key_writes_the_index_twice(db: Any) -> None:
    db.put_item(TableName=INDEXED, Item=item("a", 500, g="one"))
    request = {"TableName": INDEXED, "Item": item("a", 500, g="two")}
    assert total(units(db, "PutItem", request, db.put_item).write_units) == 1 + 2


# Reads.


@pytest.mark.parametrize(
    ("size", "consistent", "expected"),
    [(100, True, 1), (4096, True, 1), (4097, True, 2), (4097, False, 1), (100, False, 0.5)],
)
def test_a_get_costs_a_read_unit_per_4kb_half_when_eventually_consistent(
    db: Any, size: int, consistent: bool, expected: float
) -> None:
    db.put_item(TableName=TABLE, Item=item("a", size))
    request = {"TableName": TABLE, "Key": {"k": {"S": "a"}}, "ConsistentRead": consistent}
    assert total(units(db, "GetItem", request, db.get_item).read_units) == expected


@pytest.mark.parametrize(("consistent", "expected"), [(True, 1), (False, 0.5)])
def test_a_get_of_an_item_that_does_not_exist_still_costs_the_read(
    db: Any, consistent: bool, expected: float
) -> None:
    request = {"TableName": TABLE, "Key": {"k": {"S": "none"}}, "ConsistentRead": consistent}
    assert total(units(db, "GetItem", request, db.get_item).read_units) == expected


def test_a_batch_get_rounds_each_item_up_on_its_own_found_or_not(db: Any) -> None:
    for key in "ab":
        db.put_item(TableName=TABLE, Item=item(key, 100))
    keys = [{"k": {"S": k}} for k in "abcd"]  # c and d do not exist
    for consistent, expected in ((True, 4), (False, 2)):
        request = {"RequestItems": {TABLE: {"Keys": keys, "ConsistentRead": consistent}}}
        assert total(units(db, "BatchGetItem", request, db.batch_get_item).read_units) == expected


def test_a_transactional_read_costs_twice(db: Any) -> None:
    db.put_item(TableName=TABLE, Item=item("a", 100))
    request = {"TransactItems": [{"Get": {"TableName": TABLE, "Key": {"k": {"S": "a"}}}}]}
    counted = units(db, "TransactGetItems", request, db.transact_get_items)
    assert total(counted.read_units) == 2


def test_a_scan_rounds_the_total_of_the_items_read_whatever_its_projection(db: Any) -> None:
    for key in "abcdefghij":
        db.put_item(TableName=TABLE, Item=item(key, 1000))
    request = {"TableName": TABLE, "ProjectionExpression": "k", "ConsistentRead": True}
    # Ten items of 1,000 bytes: 10,000 bytes, three units (not ten, not one for the keys alone).
    assert total(units(db, "Scan", request, db.scan).read_units) == math_ceil(
        10_000, READ_UNIT_BYTES
    )
    request = {"TableName": TABLE}
    assert total(units(db, "Scan", request, db.scan).read_units) == 1.5


def math_ceil(size: int, unit: int) -> int:
    return -(-size // unit)


# The cost log's request counts (callqueue.local.cost_log.AwsLog).


def sqs_request(operation: str, body: bytes = b"{}") -> dict[str, Any]:
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/",
        "HTTP_X_AMZ_TARGET": f"AmazonSQS.{operation}",
        "HTTP_AUTHORIZATION": "AWS4-HMAC-SHA256 "
        "Credential=AKID/20261207/us-east-1/sqs/aws4_request, SignedHeaders=host, Signature=0",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }


def answering(body: bytes) -> Callable[..., list[bytes]]:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [])
        return [body]

    return app


def test_an_sqs_receive_that_found_nothing_is_counted_apart(tmp_path: Path) -> None:
    empty = AwsLog(answering(b"{}"), tmp_path)
    empty(sqs_request("ReceiveMessage"), lambda *_: None)
    found = AwsLog(answering(b'{"Messages": [{"Body": "x"}]}'), tmp_path)
    found(sqs_request("ReceiveMessage"), lambda *_: None)

    assert dict(empty.requests) == {f"sqs:{EMPTY_RECEIVE}": 1}
    assert dict(found.requests) == {"sqs:ReceiveMessage": 1}


@pytest.mark.parametrize(("size", "chunks"), [(0, 1), (65_536, 1), (65_537, 2), (200_000, 4)])
def test_an_sqs_request_is_billed_per_64_kb_chunk_of_its_payload(
    tmp_path: Path, size: int, chunks: int
) -> None:
    log = AwsLog(answering(b"{}"), tmp_path)
    log(sqs_request("SendMessage", b"x" * size), lambda *_: None)

    assert dict(log.chunks) == {"sqs:SendMessage": chunks}
