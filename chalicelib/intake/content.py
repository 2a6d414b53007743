"""One job per content: a file's SHA-256, taken as the splitter reads it, and the claim a job
holds on that content in the jobs table.

A job id names one upload (bucket, key and ETag), but the same bytes arrive under other ids: under
a second key, or uploaded in parts (a multipart ETag is not the MD5 of the bytes). The claim is an
item of the jobs table keyed `content#<sha256>`, written with a conditional put before the job's
release loop starts, so of two uploads of one content only one ever sends. It expires after the
retention window (`expires_at`, Unix seconds, also the table's TTL attribute), after which the
same content is a new job again.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from chalicelib.intake.parsing import ByteStream

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

log = logging.getLogger(__name__)

DEFAULT_RETENTION_DAYS: Final = 30
DAY_SECONDS: Final = 24 * 60 * 60

CONTENT_PREFIX: Final = "content#"

# S3 metadata values (x-amz-meta-resend) that ask for the content to be sent again.
_RESEND_VALUES: Final = frozenset({"true", "1", "yes"})

# Draining what a parser left unread, to finish the digest: S3's own read size.
_DRAIN_BYTES: Final = 64 * 1024


def content_key(sha256: str) -> str:
    return f"{CONTENT_PREFIX}{sha256}"


def is_resend(metadata: dict[str, str]) -> bool:
    """Whether an upload asks to be sent even though its content was sent before."""
    return metadata.get("resend", "").strip().casefold() in _RESEND_VALUES


class HashingStream:
    """A byte stream that hashes what is read through it, so the digest costs no second read."""

    def __init__(self, stream: ByteStream) -> None:
        self._stream = stream
        self._sha256 = hashlib.sha256()
        self.bytes_read = 0

    def read(self, size: int = -1, /) -> bytes:
        data = self._stream.read(size)
        self._sha256.update(data)
        self.bytes_read += len(data)
        return data

    def hexdigest(self) -> str:
        """The digest of the whole stream: reads (and hashes) whatever is still unread first.

        A parser stops at the end of its last record; the bytes after it (trailing whitespace)
        are part of the content too."""
        while self.read(_DRAIN_BYTES):
            pass
        return self._sha256.hexdigest()


@dataclass(frozen=True)
class Holder:
    """The job that holds a content, and when that job was created."""

    job_id: str
    uploaded_at: float


class ContentClaims:
    """The `content#<sha256>` items of the jobs table."""

    def __init__(
        self,
        dynamodb: DynamoDBClient,
        table: str,
        *,
        retention_seconds: float = DEFAULT_RETENTION_DAYS * DAY_SECONDS,
    ) -> None:
        self._db = dynamodb
        self._table = table
        self._retention = retention_seconds

    def claim(self, sha256: str, holder: Holder, now: float) -> Holder | None:
        """Claim the content for `holder`; None when it is now held by it, else the other job
        that holds it.

        Claiming again for the same job succeeds: a split interrupted after its claim and run
        again must go on, not find itself a duplicate. A claim past its expiry is taken over
        (DynamoDB's TTL deletes expired items only eventually)."""
        try:
            self._db.put_item(
                TableName=self._table,
                Item=self._item(sha256, holder, now),
                ConditionExpression=(
                    "attribute_not_exists(job_id) OR holder = :me OR expires_at <= :now"
                ),
                ExpressionAttributeValues={
                    ":me": {"S": holder.job_id},
                    ":now": {"N": str(int(now))},
                },
                ReturnValuesOnConditionCheckFailure="ALL_OLD",
            )
        except self._db.exceptions.ConditionalCheckFailedException as refused:
            old: dict[str, Any] = refused.response.get("Item") or {}  # type: ignore[assignment]
            return Holder(old["holder"]["S"], float(old["uploaded_at"]["N"]))
        return None

    def take(self, sha256: str, holder: Holder, now: float) -> None:
        """Claim the content for `holder` whoever held it: a deliberate resend. The window then
        runs from the latest sending, so an accidental upload after a resend is caught too."""
        self._db.put_item(TableName=self._table, Item=self._item(sha256, holder, now))

    def _item(self, sha256: str, holder: Holder, now: float) -> dict[str, Any]:
        return {
            "job_id": {"S": content_key(sha256)},
            "holder": {"S": holder.job_id},
            "uploaded_at": {"N": repr(holder.uploaded_at)},
            # Whole seconds: DynamoDB's TTL reads only a Number of Unix seconds.
            "expires_at": {"N": str(int(now + self._retention))},
        }
