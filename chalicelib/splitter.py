"""The splitter: validates an uploaded file and cuts it into chunks, then starts the release loop.

It streams: records are read, validated and appended to the current chunk one at a time, and a
chunk is staged on disk past a few MB, so memory does not grow with the file. A delivery of the
same upload again (S3 events are at least once) finds the job already recorded and resumes it
instead of starting a second one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import BinaryIO

from chalicelib.config import ConfigError, Settings
from chalicelib.jobs import Job, JobExists, JobStore
from chalicelib.observability import Metrics, bound
from chalicelib.parsing import FileFormatError, Format, detect_format
from chalicelib.planning import Schedule
from chalicelib.records import ChunkRow
from chalicelib.release import LoopState
from chalicelib.release_loop import ReleaseLoop
from chalicelib.rows import Rejected, checked_rows
from chalicelib.storage import SpooledFile, Storage, chunk_key, rejects_key

log = logging.getLogger(__name__)


def job_id_for(bucket: str, key: str, etag: str) -> str:
    """A job id that is the same for every delivery of one upload (bucket, key and content).

    It names the Step Functions execution too, hence the alphabet and the 80-character limit.
    """
    digest = hashlib.sha256(f"{bucket}/{key}/{etag}".encode()).hexdigest()[:12]
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", key.rsplit("/", 1)[-1].rsplit(".", 1)[0]).strip("-")
    return f"{stem[:40] or 'job'}-{digest}"


# A job id chosen before the upload (POST /jobs signs it into the upload URL as
# `x-amz-meta-job-id`): the same alphabet and length as job_id_for's.
_CHOSEN_JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,80}")


def job_id_of(bucket: str, key: str, etag: str, metadata: dict[str, str]) -> str:
    """The job id an upload names in its metadata, else the one derived from the upload."""
    chosen = metadata.get("job-id", "")
    if _CHOSEN_JOB_ID.fullmatch(chosen):
        return chosen
    return job_id_for(bucket, key, etag)


@dataclass(frozen=True)
class Counts:
    rows: int
    valid: int
    rejected: int
    chunks: int


class Splitter:
    def __init__(
        self,
        storage: Storage,
        jobs: JobStore,
        loop: ReleaseLoop,
        settings: Settings,
        *,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self._storage = storage
        self._jobs = jobs
        self._loop = loop
        self._settings = settings
        self._clock = clock
        self._metrics = metrics

    def split(self, bucket: str, key: str) -> Job:
        stream, metadata, etag = self._storage.open_source(bucket, key)
        job_id = job_id_of(bucket, key, etag, metadata)
        with bound(job_id=job_id):
            return self._split(bucket, key, stream, metadata, etag, job_id)

    def _split(
        self,
        bucket: str,
        key: str,
        stream: BinaryIO,
        metadata: dict[str, str],
        etag: str,
        job_id: str,
    ) -> Job:
        job = Job(
            job_id=job_id,
            bucket=bucket,
            key=key,
            etag=etag,
            state="splitting",
            cps=self._settings.cps,
            window_seconds=self._settings.window_seconds,
            created_at=self._clock(),
        )
        try:
            job = self._with_overrides(job, metadata)
            self._jobs.create(job)
        except ConfigError as error:
            self._jobs.create(job)
            return self._fail(job, f"invalid job settings in object metadata: {error}")
        except JobExists:
            existing = self._jobs.get(job_id)
            assert existing is not None  # noqa: S101 - it was just found to exist
            if existing.state != "splitting":
                log.info("job %s already recorded (%s): duplicate delivery", job_id, existing.state)
                self._resume(existing)
                return existing
            log.info("job %s was interrupted while splitting: splitting again", job_id)
            job = existing
        try:
            fmt = detect_format(key)
            counts = self._write_chunks(job, stream, fmt)
        except FileFormatError as error:
            return self._fail(job, str(error))
        finally:
            stream.close()
        # The first chunk is released now; its first row is due once the release lead has passed.
        started = self._clock() + Schedule(job.cps, job.window_seconds).lead_seconds
        state = "running" if counts.chunks else "completed"
        self._jobs.update(
            job_id,
            rows=counts.rows,
            valid=counts.valid,
            rejected=counts.rejected,
            chunks=counts.chunks,
            started_at=started,
            state=state,
            rejects_key=rejects_key(job_id) if counts.rejected else None,
        )
        job = self._jobs.get(job_id) or job
        self._resume(job)
        log.info(
            "job %s split: %d rows, %d valid, %d rejected, %d chunks",
            job_id,
            counts.rows,
            counts.valid,
            counts.rejected,
            counts.chunks,
        )
        if self._metrics is not None:
            self._metrics.count("RowsAccepted", counts.valid)
            self._metrics.count("RowsRejected", counts.rejected)
            self._metrics.count("Chunks", counts.chunks)
            self._metrics.flush()
        return job

    def _with_overrides(self, job: Job, metadata: dict[str, str]) -> Job:
        """A file may carry its own rate and window as S3 object metadata (x-amz-meta-cps)."""
        cps = int(metadata.get("cps", job.cps))
        window = int(metadata.get("window", job.window_seconds))
        Schedule(cps, window)  # validates
        return Job(**{**job.__dict__, "cps": cps, "window_seconds": window})

    def _resume(self, job: Job) -> None:
        if job.state in ("running", "released") and job.started_at is not None:
            schedule = Schedule(job.cps, job.window_seconds)
            first = LoopState.first(job.job_id, job.chunks, job.started_at, schedule)
            self._loop.start(job.job_id, first.to_json())

    def _fail(self, job: Job, reason: str) -> Job:
        log.warning("job %s failed: %s", job.job_id, reason)
        self._jobs.update(job.job_id, state="failed", error=reason)
        return self._jobs.get(job.job_id) or job

    def _write_chunks(self, job: Job, stream: BinaryIO, fmt: Format) -> Counts:
        schedule = Schedule(job.cps, job.window_seconds)
        settings = self._settings
        rows = valid = rejected = chunks = 0
        chunk = SpooledFile()
        rejects = SpooledFile()
        rejects.write_row(["row", "reason"])

        def reject(number: int, reason: str) -> None:
            nonlocal rejected
            rejected += 1
            rejects.write_row([str(number), reason])

        def flush_chunk() -> None:
            nonlocal chunk, chunks
            self._storage.put_file(
                settings.holding_bucket,
                chunk_key(job.job_id, chunks),
                chunk,
                "application/x-ndjson",
                job_id=job.job_id,
                chunk=str(chunks),
            )
            chunk.close()
            chunk = SpooledFile()
            chunks += 1

        try:
            for item in checked_rows(stream, fmt):
                rows += 1
                if isinstance(item, Rejected):
                    reject(item.number, item.reason)
                    continue
                request = item.request
                row = ChunkRow(item.number, request.api, request.params, schedule.offset(valid))
                chunk.write_line(json.dumps(row.to_json(), separators=(",", ":")))
                valid += 1
                if chunk.lines == schedule.chunk_size:
                    flush_chunk()
            if chunk.lines:
                flush_chunk()
            if rejected:
                self._storage.put_file(
                    settings.reports_bucket, rejects_key(job.job_id), rejects, "text/csv"
                )
        finally:
            chunk.close()
            rejects.close()
        return Counts(rows=rows, valid=valid, rejected=rejected, chunks=chunks)
