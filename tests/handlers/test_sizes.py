"""Size-aware batching against moto: SQS SendMessageBatch, SNS PublishBatch and the results
table's transactions, cut by bytes as well as by count; envelopes and items trimmed to fit.

Moto enforces some of AWS's size limits and not others, so beside the state (what arrived,
what is stored) each test asserts the sizes of the requests sent, recorded through botocore's
own event hooks on the client.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from itertools import pairwise
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from hypothesis import given
from hypothesis import strategies as st
from moto import mock_aws

from chalicelib.aws.buckets import SpooledFile, Storage
from chalicelib.aws.results_table import ResultsTable
from chalicelib.aws.send_queue import RowTooLargeError, SendQueue
from chalicelib.core.batching import (
    MAX_ENVELOPE_BYTES,
    EntryTooLargeError,
    chunked_by_size,
    compact_json,
    fit_envelope,
    item_size,
    message_size,
)
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.limits import (
    KIB,
    MAX_ROW_BYTES,
    SNS_MAX_BATCH_BYTES,
    SQS_MAX_BATCH_BYTES,
)
from chalicelib.core.records import ChunkRow, QueuedRow
from chalicelib.release.enqueuer import Enqueuer
from chalicelib.sending.publisher import ResponsePublisher
from tests.envelopes import published
from tests.handlers.test_results import TABLE, create_results_table
from tests.handlers.test_results import envelope as results_envelope
from tests.stack import subscribe_queue

NOW = 1_700_000_000.0


class Recorded:
    """The parameters of every call of one operation a client makes, as the caller gave them
    (botocore's `before-parameter-build` event)."""

    def __init__(self, client: Any, operation: str) -> None:
        self.calls: list[dict[str, Any]] = []
        service = client.meta.service_model.service_name
        client.meta.events.register(f"before-parameter-build.{service}.{operation}", self._add)

    def _add(self, params: dict[str, Any], **_: Any) -> None:
        self.calls.append(params)


def sqs_request_bytes(params: dict[str, Any]) -> int:
    return sum(
        message_size(e["MessageBody"], e.get("MessageAttributes")) for e in params["Entries"]
    )


def sns_request_bytes(params: dict[str, Any]) -> int:
    return sum(
        message_size(e["Message"], e.get("MessageAttributes"))
        for e in params["PublishBatchRequestEntries"]
    )


@pytest.fixture
def aws() -> Iterator[None]:
    with mock_aws():
        yield


@pytest.fixture
def sqs(aws: None) -> Any:
    client = boto3.client("sqs")
    client.create_queue(QueueName="send")
    client.create_queue(QueueName="send-dlq")
    return client


def queued(row: int, params: dict[str, Any], job_id: str = "job-1") -> QueuedRow:
    return QueuedRow(job_id=job_id, row=row, api="messages", params=params, due_at=NOW)


def drain(sqs: Any, name: str) -> list[dict[str, Any]]:
    return [json.loads(body) for body in drain_bodies(sqs, name)]


def drain_bodies(sqs: Any, name: str) -> list[str]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    bodies: list[str] = []
    while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", []):
        bodies.extend(m["Body"] for m in messages)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )
    return bodies


def send_queue(sqs: Any) -> SendQueue:
    return SendQueue(sqs, "send", "send-dlq", clock=lambda: NOW, sleep=lambda _: None)


# --- the chunking helper ---------------------------------------------------------------------


@given(
    sizes=st.lists(st.integers(min_value=0, max_value=100), max_size=60),
    max_bytes=st.integers(min_value=100, max_value=400),
    max_count=st.integers(min_value=1, max_value=12),
)
def test_chunked_by_size_keeps_every_batch_within_both_limits_in_order(
    sizes: list[int], max_bytes: int, max_count: int
) -> None:
    entries = list(enumerate(sizes))
    batches = list(chunked_by_size(entries, lambda e: e[1], max_bytes, max_count))

    assert [e for batch in batches for e in batch] == entries  # nothing lost, repeated, moved
    assert all(batch for batch in batches)
    assert all(len(batch) <= max_count for batch in batches)
    assert all(sum(size for _, size in batch) <= max_bytes for batch in batches)
    # Greedy: a batch is closed only when the next entry would not fit it.
    for batch, following in pairwise(batches):
        full = len(batch) == max_count
        assert full or sum(s for _, s in batch) + following[0][1] > max_bytes


def test_chunked_by_size_refuses_an_entry_over_the_limit_alone() -> None:
    with pytest.raises(EntryTooLargeError, match="500 bytes is over the limit of 100"):
        list(chunked_by_size([10, 20, 500, 5], lambda size: size, 100))


def test_message_size_counts_utf8_bytes_and_attributes() -> None:
    attributes = {"job_id": {"DataType": "String", "StringValue": "j-é"}}
    assert message_size("é€😀") == 2 + 3 + 4
    assert message_size("ab", attributes) == 2 + len("job_id") + len("String") + 4


def test_item_size_counts_names_and_values_as_dynamodb_does() -> None:
    item = {"job_id": {"S": "j€"}, "row": {"N": "12"}, "m": {"M": {"k": {"BOOL": True}}}}
    assert item_size(item) == (6 + 4) + (3 + 3) + (1 + 3 + 1 + 1 + 1)


# --- SQS -------------------------------------------------------------------------------------


def test_sizes_moto_refuses_a_send_message_batch_only_over_1_mib(sqs: Any) -> None:
    # Moto takes SQS's limit as raised in 2025 (1 MiB, counted in characters of the bodies);
    # the queue cuts at 256 KiB, which SNS keeps for the envelope either way. So moto accepts
    # five rows of 60 KB in one request, and refuses ten of 110 KB whole.
    url = sqs.get_queue_url(QueueName="send")["QueueUrl"]
    accepted = [{"Id": str(i), "MessageBody": "x" * 60_000} for i in range(5)]
    assert len(sqs.send_message_batch(QueueUrl=url, Entries=accepted)["Successful"]) == 5
    refused = [{"Id": str(i), "MessageBody": "x" * 110_000} for i in range(10)]
    with pytest.raises(ClientError, match="BatchRequestTooLong"):
        sqs.send_message_batch(QueueUrl=url, Entries=refused)


def test_sizes_eleven_rows_of_60_kb_all_arrive_in_several_requests(sqs: Any) -> None:
    requests = Recorded(sqs, "SendMessageBatch")
    rows = [queued(i, {"To": f"+1415555{i:04d}", "Body": "x" * 60_000}) for i in range(11)]

    assert send_queue(sqs).enqueue(rows) == 11

    assert sorted(body["row"] for body in drain(sqs, "send")) == list(range(11))
    assert len(requests.calls) > 1
    assert all(sqs_request_bytes(call) <= SQS_MAX_BATCH_BYTES for call in requests.calls)
    assert sum(len(call["Entries"]) for call in requests.calls) == 11


@pytest.mark.parametrize("char", ["é", "€", "😀"])
def test_sizes_rows_of_multibyte_utf8_at_the_row_limit_are_enqueued(sqs: Any, char: str) -> None:
    # A row of MAX_ROW_BYTES in UTF-8. The queue's JSON escapes non-ASCII (`\\u20ac`, and a
    # surrogate pair for an emoji), so the message is up to three times the row's bytes.
    length = (MAX_ROW_BYTES - 100) // len(char.encode("utf-8"))
    rows = [queued(i, {"To": "+14155550100", "Body": char * length}) for i in range(4)]
    requests = Recorded(sqs, "SendMessageBatch")

    assert send_queue(sqs).enqueue(rows) == 4

    arrived = drain(sqs, "send")
    assert sorted(body["row"] for body in arrived) == [0, 1, 2, 3]
    assert all(body["params"]["Body"] == char * length for body in arrived)
    assert all(sqs_request_bytes(call) <= SQS_MAX_BATCH_BYTES for call in requests.calls)


def test_sizes_a_row_over_the_message_limit_is_named_and_its_siblings_still_go(
    sqs: Any,
) -> None:
    rows = [queued(i, {"To": "+14155550100", "Body": "hi"}) for i in range(12)]
    rows[7] = queued(7, {"To": "+14155550100", "Body": "x" * 300_000})

    with pytest.raises(RowTooLargeError, match="job job-1 row 7 ") as raised:
        send_queue(sqs).enqueue(rows)

    assert raised.value.rows == [("job-1", 7)]
    assert sorted(body["row"] for body in drain(sqs, "send")) == [i for i in range(12) if i != 7]


def test_sizes_retry_later_and_dead_letter_cut_requests_by_bytes(sqs: Any) -> None:
    requests = Recorded(sqs, "SendMessageBatch")
    rows = [queued(i, {"To": "+14155550100", "Body": "y" * 50_000}) for i in range(6)]
    queue = send_queue(sqs)

    queue.retry_later([(row, 0.0) for row in rows])
    queue.dead_letter([(row, {"code": 20429}) for row in rows])

    assert sorted(body["row"] for body in drain(sqs, "send")) == list(range(6))
    assert sorted(body["row"] for body in drain(sqs, "send-dlq")) == list(range(6))
    assert len(requests.calls) >= 4
    assert all(sqs_request_bytes(call) <= SQS_MAX_BATCH_BYTES for call in requests.calls)


def test_sizes_redrive_moves_large_dead_letters_back(sqs: Any) -> None:
    queue = send_queue(sqs)
    rows = [queued(i, {"To": "+14155550100", "Body": "z" * 60_000}) for i in range(5)]
    queue.dead_letter([(row, {"code": 20429}) for row in rows])

    assert queue.redrive_dead_letters() == 5

    assert sorted(body["row"] for body in drain(sqs, "send")) == list(range(5))
    assert drain(sqs, "send-dlq") == []


# --- SNS -------------------------------------------------------------------------------------


def response_envelope(row: int, body: dict[str, Any]) -> dict[str, Any]:
    return {
        "job_id": "job-1",
        "row": row,
        "api": "messages",
        "attempt": 1,
        "outcome": "sent",
        "request": {"To": "+14155550100", "From": "+14155550000", "Body": "hi"},
        "status": 201,
        "error": None,
        "sid": body.get("sid"),
        "body": body,
        "headers": {"Twilio-Request-Id": f"RQ{row}"},
        "timings": {"due_at": NOW, "started_at": NOW, "finished_at": NOW + 0.2},
    }


@pytest.fixture
def topic(aws: None) -> tuple[Any, str, Any, str]:
    sns = boto3.client("sns")
    sqs = boto3.client("sqs")
    arn = sns.create_topic(Name="responses")["TopicArn"]
    subscribe_queue(sqs, sns, arn, "sink")
    return sns, arn, sqs, "sink"


def test_sizes_an_envelope_with_a_300_kb_body_is_published_trimmed_and_marked(
    topic: tuple[Any, str, Any, str],
) -> None:
    sns, arn, sqs, sink = topic
    requests = Recorded(sns, "PublishBatch")
    bulky = {"sid": "SM" + "1" * 32, "status": "queued", "log": "x" * 300_000}
    small = response_envelope(1, {"sid": "SM" + "2" * 32, "status": "queued"})

    ResponsePublisher(sns, arn, sleep=lambda _: None).publish([response_envelope(0, bulky), small])

    arrived = {e["row"]: e for e in published(drain_bodies(sqs, sink))}
    assert arrived[1] == small
    trimmed = arrived[0]
    assert trimmed["outcome"] == "sent"
    assert trimmed["sid"] == "SM" + "1" * 32
    assert trimmed["body"] == {
        "sid": "SM" + "1" * 32,
        "status": "queued",
        "truncated": True,
        "truncated_bytes": len(compact_json(bulky)),
    }
    assert all(sns_request_bytes(call) <= SNS_MAX_BATCH_BYTES for call in requests.calls)


def test_sizes_ten_envelopes_of_40_kb_go_in_several_publish_batches(
    topic: tuple[Any, str, Any, str],
) -> None:
    sns, arn, sqs, sink = topic
    requests = Recorded(sns, "PublishBatch")
    envelopes = [response_envelope(i, {"sid": f"SM{i:032d}", "x": "y" * 40_000}) for i in range(10)]

    ResponsePublisher(sns, arn, sleep=lambda _: None, concurrency=3).publish(envelopes)

    arrived = published(drain_bodies(sqs, sink))
    assert sorted(e["row"] for e in arrived) == list(range(10))
    assert all("truncated" not in e["body"] for e in arrived)
    assert len(requests.calls) >= 2
    assert all(sns_request_bytes(call) <= SNS_MAX_BATCH_BYTES for call in requests.calls)
    assert sum(len(c["PublishBatchRequestEntries"]) for c in requests.calls) == 10


def test_fit_envelope_leaves_a_fitting_envelope_whole_and_trims_idempotently() -> None:
    small = response_envelope(0, {"sid": "SM1"})
    assert fit_envelope(small) == small

    large = response_envelope(1, {"sid": "SM1", "nested": {"k": "v" * 300_000}})
    once = fit_envelope(large)
    assert len(compact_json(once)) <= MAX_ENVELOPE_BYTES
    assert fit_envelope(once) == once


def test_fit_envelope_trims_the_request_when_the_body_is_not_enough() -> None:
    envelope = response_envelope(0, {"sid": "SM1"})
    envelope["request"] = {"To": "+14155550100", "Body": "b" * 300_000}

    fitted = fit_envelope(envelope)

    assert fitted["request"] == {
        "To": "+14155550100",
        "truncated": True,
        "truncated_bytes": len(compact_json(envelope["request"])),
    }
    assert fitted["body"]["truncated"] is True


# --- DynamoDB (results) ----------------------------------------------------------------------


@pytest.fixture
def dynamodb(aws: None) -> Any:
    client = boto3.client("dynamodb")
    create_results_table(client, TABLE)
    return client


def large_result(row: int, request_bytes: int) -> ResponseEnvelope:
    envelope = results_envelope(row)
    return replace(envelope, request={**envelope.request, "Body": "r" * request_bytes})


def stored(dynamodb: Any, row: int) -> dict[str, Any]:
    key = {"job_id": {"S": "job-1"}, "row": {"N": str(row)}}
    item: dict[str, Any] = dynamodb.get_item(TableName=TABLE, Key=key)["Item"]
    return item


def test_sizes_moto_refuses_an_item_over_400_kb(dynamodb: Any) -> None:
    item = {"job_id": {"S": "job-1"}, "row": {"N": "1"}, "blob": {"S": "x" * 410_000}}
    with pytest.raises(ClientError, match="Item size has exceeded"):
        dynamodb.put_item(TableName=TABLE, Item=item)


def test_sizes_a_result_with_a_request_over_400_kb_is_recorded_in_one_write_unit(
    dynamodb: Any,
) -> None:
    # The request is in the archive, not the results item: whatever its size, the item is small.
    results = ResultsTable(dynamodb, TABLE, clock=lambda: NOW)
    envelopes = [large_result(i, size) for i, size in enumerate((420_000, 390_000, 64_000))]

    assert results.record(envelopes) == 3

    for row, envelope in enumerate(envelopes):
        item = stored(dynamodb, row)
        assert "request" not in item and item_size(item) < 1024
        assert item["outcome"]["S"] == "sent" and item["to"]["S"] == envelope.request["To"]
    assert [int(item["row"]["N"]) for item in _all_items(dynamodb)] == [0, 1, 2]


def _all_items(dynamodb: Any) -> list[dict[str, Any]]:
    # A scan's page holds 1 MB: a few of these items.
    pages = dynamodb.get_paginator("scan").paginate(TableName=TABLE)
    items = [item for page in pages for item in page["Items"]]
    return sorted(items, key=lambda item: int(item["row"]["N"]))


def test_sizes_limits_leave_room_for_a_row_escaped_in_an_envelope() -> None:
    # The largest row, escaped as the queue and the topic write it (up to three bytes of JSON
    # per byte of UTF-8), still fits one message with room for the rest of an envelope.
    assert 3 * MAX_ROW_BYTES + 16 * KIB <= MAX_ENVELOPE_BYTES


# --- the enqueuer ------------------------------------------------------------------------------


def test_enqueuer_fails_a_chunk_it_could_not_wholly_enqueue(sqs: Any) -> None:
    # Real S3 chunk, real queue: the row over SQS's limit (one the splitter's check would have
    # rejected) fails the invocation, so the chunk is not taken as enqueued; its siblings went.
    s3 = boto3.client("s3")
    s3.create_bucket(Bucket="process")
    lines = [
        ChunkRow(i, "messages", {"To": "+14155550100", "Body": "b" * size}, 0.0).to_json()
        for i, size in enumerate([10, 300_000, 10])
    ]
    s3.put_object(
        Bucket="process",
        Key="job-1/chunk-0.jsonl",
        Body="".join(json.dumps(line) + "\n" for line in lines).encode(),
        Metadata={"job_id": "job-1", "job_start": str(NOW)},
    )
    enqueuer = Enqueuer(Storage(s3), send_queue(sqs))

    with pytest.raises(RowTooLargeError, match="job job-1 row 1 "):
        enqueuer.enqueue_chunk("process", "job-1/chunk-0.jsonl")

    assert sorted(body["row"] for body in drain(sqs, "send")) == [0, 2]


def test_sizes_a_chunk_uploaded_in_parts_is_released_and_read_back_whole(aws: None) -> None:
    # Past 8 MB a chunk is uploaded in parts; its copy into PROCESS must read back whole, every
    # row of it, with its checksum checked to the end (a copy served with the parts' composite
    # checksum failed at its last line, and the chunk's last rows were never enqueued).
    s3 = boto3.client("s3")
    for bucket in ("holding-bucket", "process-bucket"):
        s3.create_bucket(Bucket=bucket)
    storage = Storage(s3)
    spooled = SpooledFile()
    rows = [
        ChunkRow(i, "messages", {"To": "+14155550100", "Body": "b" * 3_000}, i / 10)
        for i in range(3_500)
    ]
    for row in rows:
        spooled.write_line(json.dumps(row.to_json(), separators=(",", ":")))
    storage.put_file("holding-bucket", "jobs/j/chunk-00000.jsonl", spooled, "application/x-ndjson")
    parts = s3.head_object(Bucket="holding-bucket", Key="jobs/j/chunk-00000.jsonl")["ETag"]
    assert "-" in parts  # uploaded in parts

    storage.release_chunk(
        "holding-bucket", "process-bucket", "jobs/j/chunk-00000.jsonl", job_id="j"
    )
    read, metadata = storage.read_chunk("process-bucket", "jobs/j/chunk-00000.jsonl")

    assert [r.row for r in read] == [r.row for r in rows]
    assert metadata == {"job_id": "j"}
