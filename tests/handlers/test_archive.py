"""The archive sink against moto's S3: partitions, object names and redelivery."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from chalicelib.aws.buckets import Bucket
from chalicelib.core.batching import compact_json
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.records import QueuedRow, TwilioResult
from chalicelib.sending.cancel import cancelled_envelope
from downstream.archive import ResponseArchive, archive_key
from downstream.messages import envelopes_of

BUCKET = "archive"
# 2023-11-14 22:13:20 UTC; midnight UTC is 6,400 seconds later.
T0 = 1_700_000_000.0
MIDNIGHT = 1_700_006_400.0


def envelope(
    row: int,
    *,
    attempt: int = 1,
    outcome: str = "sent",
    job_id: str = "job-1",
    finished_at: float = T0,
) -> ResponseEnvelope:
    status, code = (201, None) if outcome == "sent" else (400, 21211)
    result = TwilioResult(
        status=status,
        body={"sid": f"SM{row:032d}"},
        headers={"Twilio-Request-Id": f"RQ{row}"},
        started_at=finished_at - 0.2,
        finished_at=finished_at,
        error_code=code,
        error_message=None if code is None else "Invalid 'To' Phone Number",
    )
    return ResponseEnvelope(
        job_id=job_id,
        row=row,
        api="messages",
        attempt=attempt,
        outcome=outcome,  # type: ignore[arg-type]
        request={"To": f"+1415555{row:04d}", "From": "+14155550000", "Body": "hé"},
        result=result,
        due_at=finished_at - 0.5,
    )


@pytest.fixture
def s3() -> Iterator[Any]:
    with mock_aws():
        client = boto3.client("s3")
        client.create_bucket(Bucket=BUCKET)
        yield client


def stored(s3: Any) -> dict[str, bytes]:
    listing = s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {o["Key"]: s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listing}


def lines_of(body: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in body.decode("utf-8").splitlines()]


def test_archive_key_is_a_digest_of_the_sorted_members() -> None:
    key = archive_key("responses", "2023-11-14", "sent", "job-1", [(2, 1), (1, 3), (1, 1)])

    digest = hashlib.sha256(b"1:1\n1:3\n2:1").hexdigest()[:20]
    assert key == f"responses/date=2023-11-14/outcome=sent/job=job-1/{digest}.jsonl"
    assert key == archive_key("responses", "2023-11-14", "sent", "job-1", [(1, 1), (2, 1), (1, 3)])


def test_archive_groups_a_batch_into_one_object_per_partition(s3: Any) -> None:
    batch = [
        envelope(3, finished_at=MIDNIGHT - 0.5),
        envelope(1, attempt=2, finished_at=T0),
        envelope(2, outcome="failed"),
        envelope(1, attempt=1, finished_at=T0 + 1),
        envelope(4, finished_at=MIDNIGHT),
        envelope(1, job_id="job-2"),
    ]

    keys = ResponseArchive(Bucket(s3, BUCKET)).write(batch)

    expected = {
        archive_key("responses", "2023-11-14", "sent", "job-1", [(1, 1), (1, 2), (3, 1)]),
        archive_key("responses", "2023-11-14", "failed", "job-1", [(2, 1)]),
        archive_key("responses", "2023-11-15", "sent", "job-1", [(4, 1)]),
        archive_key("responses", "2023-11-14", "sent", "job-2", [(1, 1)]),
    }
    objects = stored(s3)
    assert set(keys) == set(objects) == expected
    sent = archive_key("responses", "2023-11-14", "sent", "job-1", [(1, 1), (1, 2), (3, 1)])
    assert [(e["row"], e["attempt"]) for e in lines_of(objects[sent])] == [(1, 1), (1, 2), (3, 1)]
    assert lines_of(objects[sent])[0] == batch[3].to_json()


def test_archive_writes_compact_json_lines_as_ndjson(s3: Any) -> None:
    [key] = ResponseArchive(Bucket(s3, BUCKET), prefix="lake/twilio").write(
        [envelope(1), envelope(2)]
    )

    head = s3.head_object(Bucket=BUCKET, Key=key)
    body = s3.get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert key.startswith("lake/twilio/date=2023-11-14/outcome=sent/job=job-1/")
    assert head["ContentType"] == "application/x-ndjson"
    assert body.endswith(b"\n") and body.count(b"\n") == 2
    assert b", " not in body and b'": ' not in body
    assert "hé" in body.decode("utf-8")


def test_archive_writes_each_envelope_as_the_message_it_arrived_in(s3: Any) -> None:
    cancelled = cancelled_envelope(QueuedRow("job-1", 2, "calls", {"To": "+1"}, T0 - 1), T0)
    # As the publisher writes them (compact, non-ASCII escaped).
    messages = [compact_json(envelope(1).to_json()), compact_json(cancelled)]

    [failed, sent] = ResponseArchive(Bucket(s3, BUCKET)).write(envelopes_of(messages))

    # The same keys in the same order with the same values, non-ASCII written as UTF-8.
    as_archived = [
        json.dumps(json.loads(m), separators=(",", ":"), ensure_ascii=False) + "\n"
        for m in messages
    ]
    objects = stored(s3)
    assert [objects[sent].decode("utf-8"), objects[failed].decode("utf-8")] == as_archived


def test_archive_redelivered_batch_overwrites_its_own_objects(s3: Any) -> None:
    batch = [envelope(1), envelope(2), envelope(3, outcome="failed")]
    archive = ResponseArchive(Bucket(s3, BUCKET))

    first_keys = archive.write(batch)
    first = stored(s3)
    second_keys = archive.write(list(reversed(batch)))

    assert sorted(first_keys) == sorted(second_keys)
    assert stored(s3) == first
    assert len(first) == 2


def test_archive_different_batches_get_different_keys(s3: Any) -> None:
    archive = ResponseArchive(Bucket(s3, BUCKET))

    first = archive.write([envelope(1), envelope(2)])
    second = archive.write([envelope(3), envelope(4)])
    retry = archive.write([envelope(1, attempt=2)])

    assert len({*first, *second, *retry}) == 3
    assert len(stored(s3)) == 3


def test_archive_keeps_a_duplicated_attempt_once(s3: Any) -> None:
    [key] = ResponseArchive(Bucket(s3, BUCKET)).write([envelope(1), envelope(2), envelope(1)])

    assert [e["row"] for e in lines_of(stored(s3)[key])] == [1, 2]
    assert key == archive_key("responses", "2023-11-14", "sent", "job-1", [(1, 1), (2, 1)])


def test_archive_put_failure_propagates(s3: Any) -> None:
    archive = ResponseArchive(Bucket(s3, "no-such-bucket"))

    with pytest.raises(ClientError) as raised:
        archive.write([envelope(1)])

    assert raised.value.response["Error"]["Code"] == "NoSuchBucket"
