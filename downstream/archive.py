"""The archive sink: every response envelope, as JSON Lines in S3, partitioned for a data lake.

Envelopes are written in batches, one object per partition (the UTC day the response finished,
its outcome, its job) per batch: at 100,000 calls, one PUT per response would be half the run's
AWS bill. The key layout (`date=`, `outcome=`, `job=`) is the Hive convention that Athena and
Glue read as partition columns.

An object is named by a digest of the (row, attempt) pairs it holds, so a batch delivered again
as it was overwrites its own objects instead of adding copies. SQS may regroup the messages of a
failed batch, and a regrouped batch writes new objects, so readers still deduplicate on
(job_id, row, attempt).
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from chalicelib.aws.buckets import Bucket
from chalicelib.core.envelope import ResponseEnvelope

CONTENT_TYPE = "application/x-ndjson"

# (date, outcome, job_id)
Partition = tuple[str, str, str]


def archive_key(
    prefix: str, date: str, outcome: str, job_id: str, members: Iterable[tuple[int, int]]
) -> str:
    """The key of the object holding `members`, the (row, attempt) pairs of one partition.

    The name depends on the set of pairs only, not on the order they arrived in.
    """
    pairs = "\n".join(f"{row}:{attempt}" for row, attempt in sorted(set(members)))
    name = hashlib.sha256(pairs.encode()).hexdigest()[:20]
    return f"{prefix}/date={date}/outcome={outcome}/job={job_id}/{name}.jsonl"


def partition_of(envelope: ResponseEnvelope) -> Partition:
    finished = datetime.fromtimestamp(envelope.result.finished_at, tz=UTC)
    return finished.strftime("%Y-%m-%d"), envelope.outcome, envelope.job_id


class ResponseArchive:
    def __init__(self, bucket: Bucket, *, prefix: str = "responses") -> None:
        self._bucket = bucket
        self._prefix = prefix

    def write(self, envelopes: Sequence[ResponseEnvelope]) -> list[str]:
        """Write the batch, one object per partition, each envelope as its to_json (which is
        the message as it arrived: ResponseEnvelope.from_json); returns the keys written.

        A failed PUT raises: the invocation fails and SQS delivers the batch again, and the
        objects already written are overwritten with the same content.
        """
        partitions: dict[Partition, dict[tuple[int, int], ResponseEnvelope]] = defaultdict(dict)
        for envelope in envelopes:
            # SNS and SQS deliver at least once: a duplicate of one attempt is kept once.
            partitions[partition_of(envelope)][(envelope.row, envelope.attempt)] = envelope
        keys = []
        for (date, outcome, job_id), members in sorted(partitions.items()):
            key = archive_key(self._prefix, date, outcome, job_id, members)
            lines = (
                json.dumps(members[member].to_json(), separators=(",", ":"), ensure_ascii=False)
                + "\n"
                for member in sorted(members)
            )
            self._bucket.put(key, "".join(lines).encode("utf-8"), CONTENT_TYPE)
            keys.append(key)
        return keys
