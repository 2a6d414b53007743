"""S3 adapter: source files, chunk files, chunk release and job reports, and one bucket's
objects written and read whole (the archive's batches, a job's reports, the API's rows and the
presigned URLs it answers with)."""

from __future__ import annotations

import csv
import io
import json
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any

from chalicelib.core.records import ChunkRow

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

# Chunks and reports are staged on local disk (Lambda's /tmp) beyond this size, so memory stays flat
# whatever the window and rate.
SPOOL_BYTES = 8 * 1024 * 1024
# A stored file read back line by line is read in blocks of this size.
READ_BYTES = 1024 * 1024


def chunk_key(job_id: str, chunk: int) -> str:
    return f"jobs/{job_id}/chunk-{chunk:05d}.jsonl"


def group_chunk_key(job_id: str, group: int, chunk: int) -> str:
    """Chunk `chunk` of a job's row group `group` (chalicelib.core.slices): the first group's
    are the job's chunks as a job without send windows has them."""
    if group == 0:
        return chunk_key(job_id, chunk)
    return f"jobs/{job_id}/group-{group:03d}-chunk-{chunk:05d}.jsonl"


def rejects_key(job_id: str) -> str:
    return f"jobs/{job_id}/rejects.csv"


def outcomes_key(job_id: str) -> str:
    return f"jobs/{job_id}/outcomes.csv"


def _inert(value: str) -> str:
    # A cell starting with one of these is a formula in Excel and Sheets (CSV injection).
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


class SpooledFile:
    """A file built line by line in memory, then on disk once it grows past SPOOL_BYTES."""

    def __init__(self) -> None:
        self._file: IO[bytes] = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES)  # noqa: SIM115
        self.lines = 0

    def write_line(self, text: str) -> None:
        self._file.write(text.encode("utf-8"))
        self._file.write(b"\n")
        self.lines += 1

    def write_row(self, values: list[str]) -> None:
        """One CSV row, with spreadsheet formula prefixes neutralised (a reason can quote input)."""
        text = io.StringIO()
        csv.writer(text).writerow([_inert(v) for v in values])
        self._file.write(text.getvalue().encode("utf-8"))
        self.lines += 1

    def write_raw(self, data: bytes) -> None:
        """Bytes already in the file's form (a stored file's lines, endings included)."""
        self._file.write(data)
        self.lines += data.count(b"\n")

    def rewind(self) -> IO[bytes]:
        self._file.seek(0)
        return self._file

    def close(self) -> None:
        self._file.close()


@dataclass(frozen=True)
class Source:
    """An uploaded file: its body (read once, as a stream), its user metadata (x-amz-meta-*),
    its ETag and when it was written (the same for every delivery of one upload)."""

    body: Any
    metadata: dict[str, str]
    etag: str
    last_modified: str


class Storage:
    def __init__(self, s3: S3Client) -> None:
        self._s3 = s3

    def open_source(self, bucket: str, key: str) -> Source:
        """The object's body as a stream, with what identifies the upload."""
        response = self._s3.get_object(Bucket=bucket, Key=key)
        return Source(
            body=response["Body"],
            metadata=response.get("Metadata", {}),
            etag=response["ETag"].strip('"'),
            last_modified=response["LastModified"].isoformat(),
        )

    def lines_of(self, bucket: str, key: str) -> Iterator[bytes]:
        """An object's lines, each with its line ending, streamed."""
        body = self._s3.get_object(Bucket=bucket, Key=key)["Body"]
        try:
            rest = b""
            while block := body.read(READ_BYTES):
                lines = (rest + block).split(b"\n")
                rest = lines.pop()
                yield from (line + b"\n" for line in lines)
            if rest:
                yield rest
        finally:
            body.close()

    def read_small(self, bucket: str, key: str, limit: int) -> bytes | None:
        """At most `limit` + 1 bytes of an object (enough to tell it is too large); None when
        there is no such object."""
        try:
            response = self._s3.get_object(Bucket=bucket, Key=key)
        except self._s3.exceptions.NoSuchKey:
            return None
        body = response["Body"]
        try:
            data: bytes = body.read(limit + 1)
        finally:
            body.close()
        return data

    def put_file(
        self, bucket: str, key: str, spooled: SpooledFile, content_type: str, **metadata: str
    ) -> None:
        self._s3.upload_fileobj(
            spooled.rewind(),
            bucket,
            key,
            ExtraArgs={"ContentType": content_type, "Metadata": metadata},
        )

    def release_chunk(
        self,
        holding_bucket: str,
        process_bucket: str,
        key: str,
        *,
        target: str | None = None,
        **metadata: str,
    ) -> None:
        """Copy a chunk into PROCESS (as `target`, else its own key), stamping on it what the
        enqueuer needs: the job's start, and which of its rows go when.

        The copy asks for a CRC32 of its own: a chunk over 8 MB was uploaded in parts, and the
        enqueuer's read checks the whole object against the checksum it is served (moto served
        a copy with the parts' composite checksum as if it were the whole object's, and every
        read of it failed at its end: docs/emulator-fidelity.md)."""
        self._s3.copy_object(
            Bucket=process_bucket,
            Key=target or key,
            CopySource={"Bucket": holding_bucket, "Key": key},
            MetadataDirective="REPLACE",
            ContentType="application/x-ndjson",
            Metadata=metadata,
            ChecksumAlgorithm="CRC32",
        )

    def read_chunk(self, bucket: str, key: str) -> tuple[Iterator[ChunkRow], dict[str, str]]:
        response = self._s3.get_object(Bucket=bucket, Key=key)
        body = response["Body"]
        return _chunk_rows(body.iter_lines()), response.get("Metadata", {})


class Bucket:
    """One bucket's objects, each written and read whole."""

    def __init__(self, s3: S3Client, name: str) -> None:
        self._s3 = s3
        self.name = name

    def put(
        self, key: str, body: bytes, content_type: str, metadata: Mapping[str, str] | None = None
    ) -> str:
        """Write the object; returns its ETag (unquoted)."""
        extra: dict[str, Any] = {} if metadata is None else {"Metadata": dict(metadata)}
        response = self._s3.put_object(
            Bucket=self.name, Key=key, Body=body, ContentType=content_type, **extra
        )
        return response["ETag"].strip('"')

    def read(self, key: str) -> bytes:
        return self._s3.get_object(Bucket=self.name, Key=key)["Body"].read()

    def uri(self, key: str) -> str:
        return f"s3://{self.name}/{key}"

    def url_to_get(self, key: str, expires_in: int) -> str:
        """A presigned GET of the object."""
        url: str = self._s3.generate_presigned_url(
            "get_object", Params={"Bucket": self.name, "Key": key}, ExpiresIn=expires_in
        )
        return url

    def url_to_put(self, key: str, metadata: Mapping[str, str], expires_in: int) -> str:
        """A presigned PUT of the object, signing its user metadata: the upload must send each
        as its `x-amz-meta-` header, or S3 refuses it."""
        url: str = self._s3.generate_presigned_url(
            "put_object",
            Params={"Bucket": self.name, "Key": key, "Metadata": dict(metadata)},
            ExpiresIn=expires_in,
        )
        return url


def _chunk_rows(lines: Iterable[bytes]) -> Iterator[ChunkRow]:
    for line in lines:
        if line.strip():
            yield ChunkRow.from_json(json.loads(line))
