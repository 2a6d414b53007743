"""S3 adapter for the files the console stages in HOLDING under `staged/` before their job
starts: a presigned PUT, a streamed read of the start of one, and its server-side copy into
SOURCE, where the upload becomes a job as any other (no function is triggered by HOLDING)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

STAGED_PREFIX = "staged/"


@dataclass(frozen=True)
class Staged:
    """A staged object's body (a stream, read once) and its size in bytes."""

    body: Any
    size: int


class StagedFiles:
    def __init__(self, s3: S3Client, holding_bucket: str) -> None:
        self._s3 = s3
        self.bucket = holding_bucket

    def url_to_put(self, key: str, expires_in: int) -> str:
        url: str = self._s3.generate_presigned_url(
            "put_object", Params={"Bucket": self.bucket, "Key": key}, ExpiresIn=expires_in
        )
        return url

    def open(self, key: str) -> Staged | None:
        """The object as a stream; None when there is none."""
        try:
            response = self._s3.get_object(Bucket=self.bucket, Key=key)
        except self._s3.exceptions.NoSuchKey:
            return None
        return Staged(response["Body"], int(response["ContentLength"]))

    def size(self, key: str) -> int | None:
        """The object's size; None when there is none."""
        try:
            response = self._s3.head_object(Bucket=self.bucket, Key=key)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey"):
                return None
            raise
        return int(response["ContentLength"])

    def copy_to(self, key: str, bucket: str, target: str, metadata: Mapping[str, str]) -> None:
        """Copy the object into `bucket` as `target`, with `metadata` as its user metadata
        (the job's settings, as an upload to SOURCE signs them)."""
        self._s3.copy_object(
            Bucket=bucket,
            Key=target,
            CopySource={"Bucket": self.bucket, "Key": key},
            MetadataDirective="REPLACE",
            Metadata=dict(metadata),
        )

    def delete(self, key: str) -> None:
        self._s3.delete_object(Bucket=self.bucket, Key=key)
