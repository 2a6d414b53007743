"""The splitter: validates an uploaded file and cuts it into chunks, then starts the release loop.

It streams: records are read, validated and appended to the current chunk one at a time, and a
chunk is staged on disk past a few MB, so memory does not grow with the file. The file's SHA-256
is taken on the same read.

What an upload can end in, and why nothing is left `splitting` without a trace:

- A delivery of the same upload again (S3 events are at least once) finds the job already
  recorded and resumes it instead of starting a second one.
- Bad job settings in the object metadata (x-amz-meta-cps, x-amz-meta-window) or its manifest
  (chalicelib.intake.manifest), a template naming a column the file lacks, or an unreadable
  file: the job is recorded `failed`, with the reason for the user. A manifest is no job.
- The same content as a job still within the retention window (another key, a multipart upload
  of the same bytes): the job ends `duplicate` and nothing is released, unless the upload says
  `x-amz-meta-resend: true` (chalicelib.intake.content).
- Anything else (an S3 read error, a bug): the job records the error and its `split_attempts`
  and the exception goes back to Lambda, which retries the event; on the last attempt the job
  is recorded `failed` instead.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Final

from chalicelib.aws.buckets import Storage, rejects_key
from chalicelib.aws.jobs_table import JobExists, JobStore
from chalicelib.config import MAX_WINDOW_SECONDS, ConfigError, Settings
from chalicelib.core.job_details import cost_fields
from chalicelib.core.jobs import SENDING, Job
from chalicelib.core.schedule import Schedule
from chalicelib.core.slices import groups_json
from chalicelib.intake.carry import Carry
from chalicelib.intake.checkpoint import Budget, Checkpoint
from chalicelib.intake.content import ContentClaims, HashingStream, Holder, is_resend
from chalicelib.intake.manifest import MAX_MANIFEST_BYTES, is_manifest, manifest_key, read_manifest
from chalicelib.intake.parsing import ByteStream, FileFormatError, detect_format
from chalicelib.intake.split_pass import Counts, SplitPass, load_checkpoint
from chalicelib.intake.timing import JobTiming
from chalicelib.intake.validation.templates import JobParams
from chalicelib.observability import Metrics, bound
from chalicelib.release.releaser import LoopState
from chalicelib.release.state_machine import ReleaseLoop

log = logging.getLogger(__name__)

# Lambda runs an asynchronous event (the S3 notification) once and retries it twice.
MAX_SPLIT_ATTEMPTS: Final = 3

_WHOLE_NUMBER: Final = re.compile(r"[+-]?[0-9]+")
# Longer than any setting in range, and short of what int() refuses (4,300 digits).
_MAX_SETTING_DIGITS: Final = 9


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


def job_id_of(
    bucket: str, key: str, etag: str, metadata: dict[str, str], last_modified: str = ""
) -> str:
    """The job id an upload names in its metadata, else the one derived from the upload.

    A resend of the same bytes to the same key has the same ETag as the upload it repeats, but
    must be a job (and a Step Functions execution, whose name is taken for 90 days) of its own:
    its id also covers when it was written, which every delivery of one upload shares."""
    chosen = metadata.get("job-id", "")
    if _CHOSEN_JOB_ID.fullmatch(chosen):
        return chosen
    if is_resend(metadata):
        return job_id_for(bucket, key, f"{etag}@{last_modified}")
    return job_id_for(bucket, key, etag)


def _setting(metadata: dict[str, str], name: str, unit: str, low: int, high: int | None) -> int:
    """A whole-number job setting from the object metadata; ConfigError says what is wrong in
    the user's words. A blank value is as if the setting were not given."""
    raw = metadata[name]
    text = raw.strip()
    bounds = f"at least {low}" if high is None else f"{low}..{high}"
    if not _WHOLE_NUMBER.fullmatch(text):
        raise ConfigError(f"x-amz-meta-{name} must be a whole number of {unit}, got {raw!r}")
    digits = text.lstrip("+-").lstrip("0")
    if len(digits) > _MAX_SETTING_DIGITS:
        raise ConfigError(f"x-amz-meta-{name} must be {bounds} {unit}, got {raw!r}")
    value = int(text)
    if value < low or (high is not None and value > high):
        raise ConfigError(f"x-amz-meta-{name} must be {bounds} {unit}, got {raw!r}")
    return value


def _content_key(sha256: str, params: JobParams) -> str:
    """What makes two uploads the same content: the file's bytes and its job-wide parameters."""
    if not params:
        return sha256
    text = json.dumps(dict(params.values), sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(f"{sha256}\n{text}".encode()).hexdigest()


def _when(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


class Splitter:
    def __init__(
        self,
        storage: Storage,
        jobs: JobStore,
        loop: ReleaseLoop,
        settings: Settings,
        *,
        claims: ContentClaims,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self._storage = storage
        self._jobs = jobs
        self._loop = loop
        self._settings = settings
        self._claims = claims
        self._clock = clock
        self._metrics = metrics

    def split(self, bucket: str, key: str, budget: Budget | None = None) -> Job | None:
        """The job of an uploaded file; None for a job manifest, which is read with its file.
        `budget`: the invocation's time; a split that outlasts it stops at a checkpoint and
        starts its continuation, a delivery of the same upload (chalicelib.intake.checkpoint)."""
        if is_manifest(key):
            log.info("%s is a job manifest: it is read when its file is split", key)
            return None
        source = self._storage.open_source(bucket, key)
        metadata = source.metadata
        job_id = job_id_of(bucket, key, source.etag, metadata, source.last_modified)
        with bound(job_id=job_id):
            try:
                return self._split(bucket, key, source.body, metadata, source.etag, job_id, budget)
            finally:
                source.body.close()

    def _split(
        self,
        bucket: str,
        key: str,
        stream: ByteStream,
        metadata: dict[str, str],
        etag: str,
        job_id: str,
        budget: Budget | None = None,
    ) -> Job:
        job = self._new_job(bucket, key, etag, job_id)
        invalid: str | None = None
        params = JobParams()
        try:
            job = self._with_overrides(job, metadata)
            params, timing = self._manifest(bucket, key, metadata)
            job = (
                JobTiming.of(metadata, job.created_at)
                .merged(timing, "metadata and manifest")
                .on_job(job)
            )
        except ConfigError as error:
            invalid = str(error)
        try:
            self._jobs.create(job)
        except JobExists:
            existing = self._jobs.get(job_id)
            assert existing is not None  # noqa: S101 - it was just found to exist
            if existing.state != "splitting":
                log.info("job %s already recorded (%s): duplicate delivery", job_id, existing.state)
                self._resume(existing)
                return existing
            log.info("job %s is splitting: going on from its checkpoint, if any", job_id)
            job = existing
        if invalid is not None:
            return self._fail(job, invalid)
        attempt = self._jobs.add(job_id, "split_attempts", 1) or 1
        try:
            return self._split_content(
                job, key, stream, params, resend=is_resend(metadata), budget=budget
            )
        except Exception as error:
            reason = (
                f"splitting failed (attempt {attempt} of {MAX_SPLIT_ATTEMPTS}): "
                f"{type(error).__name__}: {error}"
            )
            if attempt >= MAX_SPLIT_ATTEMPTS:
                # Lambda will not retry again: the job must end, not stay `splitting`.
                log.exception("job %s: %s; the job has failed", job_id, reason)
                return self._fail(job, reason)
            log.exception("job %s: %s; raised for Lambda to retry", job_id, reason)
            self._jobs.update(job_id, error=reason)
            raise

    def _new_job(self, bucket: str, key: str, etag: str, job_id: str) -> Job:
        return Job(
            job_id=job_id,
            bucket=bucket,
            key=key,
            etag=etag,
            state="splitting",
            cps=self._settings.cps,
            window_seconds=self._settings.window_seconds,
            created_at=self._clock(),
        )

    def _split_content(
        self,
        job: Job,
        key: str,
        stream: ByteStream,
        params: JobParams,
        *,
        resend: bool,
        budget: Budget | None = None,
    ) -> Job:
        job_id = job.job_id
        # A continuation reads the file from its start too: the hash covers every byte.
        hashed = HashingStream(stream)
        counts = self._pass(job, key, hashed, params, budget)
        if isinstance(counts, Job):
            return counts
        sha256 = hashed.hexdigest()
        # One list sent with another template is another campaign: the claim covers both.
        claimed = _content_key(sha256, params)
        counted = {
            "rows": counts.rows,
            "valid": counts.valid,
            "rejected": counts.rejected,
            "chunks": counts.chunks,
            "rejects_key": rejects_key(job_id) if counts.rejected else None,
            "content_sha256": sha256,
            **cost_fields(counts.cost),
        }
        # Claimed before the release loop starts, so of two jobs of one content only one ever
        # releases a chunk. A job with nothing to send claims nothing: it cannot send twice.
        if counts.chunks:
            me = Holder(job_id, job.created_at)
            now = self._clock()
            if resend:
                self._claims.take(claimed, me, now)
            else:
                holder = self._claims.claim(claimed, me, now)
                if holder is not None:
                    return self._duplicate(job, holder, counted)
        job = self._start(job, counts, counted)
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

    def _pass(
        self, job: Job, key: str, stream: ByteStream, params: JobParams, budget: Budget | None
    ) -> Counts | Job:
        """The file's counts once it is all split; the job when this invocation ends without
        them (failed, stopped at a checkpoint, or finished by another invocation)."""
        part, resume = self._resume_point(job.job_id)
        split = SplitPass(self._storage, self._settings, job, resume=resume, budget=budget)
        try:
            counts = split.run(stream, detect_format(key), params)
        except FileFormatError as error:
            return self._fail(job, str(error))
        if isinstance(counts, Checkpoint):
            assert budget is not None and split.stopped is not None  # noqa: S101 - only a budget stops
            return self._continue(job, part, counts, split.stopped, budget)
        if not self._jobs.advance_split(job.job_id, part, None, self._clock()):
            # Another delivery of this part finished first (duplicate S3 events, a retried
            # continuation): the first to finish ends the split, once.
            log.info("job %s: its split was finished by another invocation", job.job_id)
            return self._jobs.get(job.job_id) or job
        return counts

    def _resume_point(self, job_id: str) -> tuple[int, tuple[str, Checkpoint] | None]:
        """The part the job's split is at, and the checkpoint it goes on from (None: none)."""
        part, prefix = self._jobs.split_progress(job_id)
        if prefix is None:
            return part, None
        return part, (prefix, load_checkpoint(self._storage, self._settings.holding_bucket, prefix))

    def _continue(self, job: Job, part: int, point: Checkpoint, prefix: str, budget: Budget) -> Job:
        if not self._jobs.advance_split(job.job_id, part, prefix, self._clock()):
            log.info("job %s: another invocation went on from part %d first", job.job_id, part)
            return self._jobs.get(job.job_id) or job
        log.info(
            "job %s: %d records split by part %d; continuing", job.job_id, point.records, point.part
        )
        budget.continue_split()
        return self._jobs.get(job.job_id) or job

    def _start(self, job: Job, counts: Counts, counted: Mapping[str, object]) -> Job:
        """Record the split and start the release loop. The first chunk is released now (or
        before the job's start, when that is later); its first row is due once the release
        lead has passed."""
        schedule = Schedule(job.cps, job.window_seconds)
        lead = schedule.lead_seconds
        started = max(self._clock() + lead, job.start_at or 0.0)
        state = "completed"
        if counts.chunks:
            state = "scheduled" if started > self._clock() + lead else "running"
        self._jobs.update(
            job.job_id,
            **counted,
            groups=groups_json(counts.groups),
            chunk_rows=schedule.chunk_size,
            started_at=started,
            next_slot_at=started,
            next_release_at=started - lead,
            state=state,
            error=None,
            # A long split the reconciler flagged is no longer stalled once it is done.
            stalled_since=None,
            stalled_reason=None,
        )
        job = self._jobs.get(job.job_id) or job
        self._resume(job)
        return job

    def _duplicate(self, job: Job, holder: Holder, counted: Mapping[str, object]) -> Job:
        reason = (
            f"the same content as job {holder.job_id} (uploaded {_when(holder.uploaded_at)}); "
            "to send it again upload with x-amz-meta-resend: true"
        )
        log.warning("job %s is a duplicate: %s", job.job_id, reason)
        self._jobs.update(
            job.job_id, **counted, state="duplicate", duplicate_of=holder.job_id, error=reason
        )
        if self._metrics is not None:
            self._metrics.count("DuplicateJobs", 1)
            self._metrics.flush()
        return self._jobs.get(job.job_id) or job

    def _with_overrides(self, job: Job, metadata: dict[str, str]) -> Job:
        """A file may carry its own rate and window as S3 object metadata (x-amz-meta-cps), and
        the job it retries (x-amz-meta-retry-of, chalicelib.api.retry)."""
        cps, window = job.cps, job.window_seconds
        if metadata.get("cps", "").strip():
            cps = _setting(metadata, "cps", "calls per second", 1, None)
        if metadata.get("window", "").strip():
            window = _setting(metadata, "window", "seconds", 1, MAX_WINDOW_SECONDS)
        Schedule(cps, window)  # validates
        retry_of = _CHOSEN_JOB_ID.fullmatch(metadata.get("retry-of", "")) and metadata["retry-of"]
        job = replace(job, cps=cps, window_seconds=window, retry_of=retry_of or None)
        return Carry.of_metadata(metadata).on_job(job)

    def _manifest(
        self, bucket: str, key: str, metadata: dict[str, str]
    ) -> tuple[JobParams, JobTiming]:
        """The job-wide parameters and timing of the file's manifest; none when it has none."""
        where, named = manifest_key(key, metadata)
        data = self._storage.read_small(bucket, where, MAX_MANIFEST_BYTES)
        if data is None:
            if named:
                raise ConfigError(f"x-amz-meta-manifest names {where}, which is not in {bucket}")
            return JobParams(), JobTiming()
        return read_manifest(data, where, self._clock())

    def _resume(self, job: Job) -> None:
        if job.state in SENDING and job.started_at is not None:
            lead = Schedule(job.cps, job.window_seconds).lead_seconds
            first = LoopState.first(job, now=self._clock(), lead=lead)
            self._loop.start(job.job_id, first.to_json())

    def _fail(self, job: Job, reason: str) -> Job:
        log.warning("job %s failed: %s", job.job_id, reason)
        self._jobs.update(job.job_id, state="failed", error=reason)
        return self._jobs.get(job.job_id) or job
