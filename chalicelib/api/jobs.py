"""The jobs REST API: creating jobs, reading their progress, and pausing, resuming or cancelling
them. app.py's routes hand their request here; errors are Chalice's HTTP errors, which API Gateway
answers as JSON `{"Code": ..., "Message": ...}` with their status code.

A job is created in one of two ways (POST /jobs):
- with the rows in the body (`{"rows": [...]}`, at most API_MAX_ROWS): they are written to the
  SOURCE bucket as JSON Lines under a key that is a digest of the request, so the job id, derived
  from bucket, key and ETag as for any upload, is known at once, and the same request sent again
  (a client's retry) is the same job and is not sent twice;
- with a file name (`{"filename": "calls.csv"}`): the answer is a presigned PUT URL for the SOURCE
  bucket. The job id is chosen now and signed into the URL as the object's `x-amz-meta-job-id`
  (the upload must send the headers returned with the URL, or S3 refuses it), and the splitter
  takes the id from there. One URL makes one job: a second upload through it is taken for a
  redelivery of the first and ignored. With `"resend": true` the URL also signs
  `x-amz-meta-resend: true`: the intake then sends a file whose content it has sent before within
  the retention window, which it otherwise refuses as a duplicate of the earlier job.

Either way `"params"` (job-wide parameters, which may hold placeholders) is written first as
the job's manifest beside the file's key (chalicelib.intake.manifest), where the splitter reads it.

A file staged to be planned first (`{"staged_key": ...}`, chalicelib.api.staged) is copied into
SOURCE server-side as an upload's object, with the job's metadata, and the staged object deleted:
the splitter makes the job as it does from an upload. CopyObject copies at most 5 GB.

Pausing, resuming and cancelling answer 409 with a reason a person reads when the job's state
makes the change meaningless (a finished job, a job still splitting, a second cancel). Resuming
also restarts a release loop that died (its execution failed, timed out or was aborted), from
the job's next unreleased chunk; a running job whose loop is alive has nothing to resume.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from chalice.app import (
    BadRequestError,
    ConflictError,
    IAMAuthorizer,
    NotFoundError,
    Request,
    Response,
)

from chalicelib.api.request_bodies import (
    PayloadTooLargeError,
    current,
    job_name,
    job_request,
    params_of,
    request_identity,
)
from chalicelib.api.staged import COPY_MAX_BYTES, staged_key_of
from chalicelib.aws.buckets import Bucket
from chalicelib.aws.jobs_table import JobStore, StateChanged
from chalicelib.aws.results_table import Progress
from chalicelib.aws.staging import StagedFiles
from chalicelib.config import Settings
from chalicelib.core.job_details import eta_seconds, job_extras, timing_view
from chalicelib.core.jobs import CANCELLABLE, SENDING, Job, final_counts_view, job_settled
from chalicelib.core.records import FINAL_OUTCOMES
from chalicelib.intake.manifest import MANIFEST_SUFFIX, is_manifest, manifest_bytes
from chalicelib.intake.parsing import FileFormatError, detect_format
from chalicelib.intake.splitter import job_id_for
from chalicelib.release.keeper import LoopKeeper

URL_EXPIRES_SECONDS = 900
# The current rate is the rows that ended over this many seconds before the request.
RATE_WINDOW_SECONDS = 10.0
DEFAULT_LIST_LIMIT = 20
MAX_LIST_LIMIT = 100
# A job still splitting is not cancellable yet: the splitter would overwrite the state.
# Why a change means nothing to a job in this state, as the 409's message ends.
NO_CHANGE = {
    "splitting": "is still being split; try again once it is running",
    "completed": "is completed: every row has its outcome",
    "cancelled": "was cancelled",
    "failed": "failed",
    "duplicate": "is a duplicate of an earlier upload and sends nothing",
}


def route_auth(settings: Settings) -> dict[str, Any]:
    """The job routes' decorator arguments: an API key (API Gateway checks the `x-api-key`
    header against the stage's usage plans) or IAM (SigV4-signed requests), by stage."""
    if settings.api_auth == "iam":
        return {"authorizer": IAMAuthorizer()}
    return {"api_key_required": True}


class JobsApi:
    def __init__(
        self,
        source: Bucket,
        reports: Bucket,
        jobs: JobStore,
        settings: Settings,
        *,
        progress: Callable[[str, float], Progress],
        resume: Callable[[str, float], float],
        loops: LoopKeeper,
        clock: Callable[[], float] = time.time,
        new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
        staged: StagedFiles | None = None,
    ) -> None:
        """`source` takes the rows and uploads; `reports` holds each job's CSVs.
        `progress(job_id, since)`: a job's counts by final outcome, how many rows ended
        since `since`, and its sent rows' delivery statuses; `resume(job_id, now)` continues a
        paused job (downstream.systemic); `loops` restarts a job's release loop that died;
        `staged`: where staged files are (None: no job from a staged file)."""
        self._source = source
        self._reports = reports
        self._jobs = jobs
        self._settings = settings
        self._progress = progress
        self._resume = resume
        self._loops = loops
        self._clock = clock
        self._new_token = new_token
        self._staged = staged

    # -- creating ---------------------------------------------------------------------------

    def create(self, request: Request | None) -> Response:
        """202: the job is made once the splitter has read its file (moments later), so
        GET /jobs/{id} answers 404 until then."""
        body, metadata = job_request(request, self._clock())
        if "rows" in body:
            created = self._create_from_rows(body, metadata)
        elif "staged_key" in body:
            created = self._create_from_staged(body, metadata)
        else:
            created = self._create_upload(body, metadata)
        return Response(created, status_code=202, headers={"Location": created["links"]["self"]})

    def _create_from_rows(self, body: dict[str, Any], metadata: dict[str, str]) -> dict[str, Any]:
        rows = body["rows"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise BadRequestError("`rows` must be a non-empty list of objects")
        if len(rows) > self._settings.api_max_rows:
            raise PayloadTooLargeError(
                f"{len(rows)} rows is over the {self._settings.api_max_rows} a request may hold; "
                "upload a file instead"
            )
        name = job_name(body.get("name", "rows"))
        params = params_of(body)
        content = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
        digest = hashlib.sha256(
            content
            + json.dumps(request_identity(body, metadata), sort_keys=True).encode()
            + json.dumps(dict(params.values), sort_keys=True).encode()
        ).hexdigest()[:16]
        key = f"api/{name}-{digest}.jsonl"
        if params:
            self._source.put(key + MANIFEST_SUFFIX, manifest_bytes(params), "application/json")
        etag = self._source.put(key, content, "application/x-ndjson", metadata)
        job_id = job_id_for(self._source.name, key, etag)
        return {"job_id": job_id, "key": key, "rows": len(rows), "links": _links(job_id)}

    def _create_upload(self, body: dict[str, Any], metadata: dict[str, str]) -> dict[str, Any]:
        filename = body["filename"]
        if not isinstance(filename, str) or not filename or "/" in filename:
            raise BadRequestError("`filename` must be a file name such as calls.csv")
        try:
            detect_format(filename)
        except FileFormatError as error:
            raise BadRequestError(str(error)) from None
        if is_manifest(filename):
            raise BadRequestError(f"{filename} is a job manifest's name; rename the file")
        params = params_of(body)
        token = self._new_token()
        key = f"uploads/{token}/{filename}"
        job_id = job_id_for(self._source.name, key, token)
        if params:
            self._source.put(key + MANIFEST_SUFFIX, manifest_bytes(params), "application/json")
        signed = {"job-id": job_id, **metadata}
        url = self._source.url_to_put(key, signed, URL_EXPIRES_SECONDS)
        headers = {f"x-amz-meta-{name}": value for name, value in signed.items()}
        return {
            "job_id": job_id,
            "key": key,
            "upload": {
                "url": url,
                "method": "PUT",
                "headers": headers,
                "expires_in": URL_EXPIRES_SECONDS,
            },
            "links": _links(job_id),
        }

    def _create_from_staged(self, body: dict[str, Any], metadata: dict[str, str]) -> dict[str, Any]:
        key, token, filename = staged_key_of(body["staged_key"])
        size = None if self._staged is None else self._staged.size(key)
        if self._staged is None or size is None:
            raise NotFoundError(f"no staged file {key}: upload it first, or it expired")
        if size > COPY_MAX_BYTES:
            raise PayloadTooLargeError(
                f"{filename} is {size} bytes, over the {COPY_MAX_BYTES} a staged file may be;"
                " split it into smaller files"
            )
        params = params_of(body)
        # The token is the staged file's: a retry of this request names the same job.
        target = f"uploads/{token}/{filename}"
        job_id = job_id_for(self._source.name, target, token)
        if params:
            self._source.put(target + MANIFEST_SUFFIX, manifest_bytes(params), "application/json")
        self._staged.copy_to(key, self._source.name, target, {"job-id": job_id, **metadata})
        self._staged.delete(key)
        return {"job_id": job_id, "key": target, "staged_key": key, "links": _links(job_id)}

    # -- reading ----------------------------------------------------------------------------

    def recent(self, request: Request | None) -> dict[str, Any]:
        query: Mapping[str, str] = current(request).query_params or {}
        raw = query.get("limit", str(DEFAULT_LIST_LIMIT))
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_LIST_LIMIT:
            raise BadRequestError(f"`limit` must be 1..{MAX_LIST_LIMIT}")
        now = self._clock()
        return {"jobs": [self._summary(job, now) for job in self._jobs.recent(int(raw))]}

    def status(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        now = self._clock()
        counts, recent, delivery = self._progress(job_id, now - RATE_WINDOW_SECONDS)
        outcomes = {o: counts.get(o, 0) for o in FINAL_OUTCOMES}
        outcomes["rejected"] = job.rejected
        settled = sum(outcomes.values())
        return {
            **self._summary(job, now),
            "started_at": job.started_at,
            "paused_at": job.paused_at,
            "cancelled_at": job.cancelled_at,
            "completed_at": job.completed_at,
            "error": job.error,
            "stalled": None
            if job.stalled_since is None
            else {"since": job.stalled_since, "reason": job.stalled_reason},
            "chunks": job.chunks,
            "released_chunks": job.released_chunks,
            "counts": outcomes,
            "pending": max(0, job.rows - settled) if job.state != "splitting" else None,
            # Sent rows by the final status Twilio's callbacks gave them (chalicelib.core.delivery).
            "delivery": delivery.view(),
            "delivery_error_codes": delivery.error_codes(),
            "rate": {
                "target_cps": job.cps,
                "current_cps": round(recent / RATE_WINDOW_SECONDS, 3),
                # The account's calls per second, shared by all its jobs: the ceiling.
                "account_cps": self._settings.account_cps,
            },
            "eta_seconds": eta_seconds(
                job, now, account_capped=self._settings.account_daily_limit is not None
            ),
            **job_extras(job),
            "links": {
                **_links(job_id),
                "rejects_csv": self._report_url(job.rejects_key),
                "outcomes_csv": self._report_url(job.outcomes_key),
            },
        }

    # -- steering ---------------------------------------------------------------------------

    def cancel(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.state not in CANCELLABLE:
            raise _refused(job, "cancel")
        try:
            self._jobs.update_if(job_id, CANCELLABLE, state="cancelled", cancelled_at=self._clock())
        except StateChanged as error:
            raise ConflictError(f"cannot cancel: {error} any more") from None
        # A cancelled job's unreleased rows are released at once so they end `cancelled`:
        # that needs a loop releasing now, not one waiting for a start or a window, nor one
        # that died.
        restarted = self._loops.end_now(job_id)
        return self._state(job_id, loop_restarted=restarted)

    def pause(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.state not in SENDING:
            raise _refused(job, "pause")
        if job.state == "released" and self._settled(job):
            raise ConflictError(
                f"cannot pause: job {job_id} has sent every row and every row has its outcome;"
                " it completes within a minute"
            )
        try:
            self._jobs.update_if(job_id, SENDING, state="paused", paused_at=self._clock())
        except StateChanged as error:
            raise ConflictError(f"cannot pause: {error} any more") from None
        return self._state(job_id)

    def resume(self, job_id: str) -> dict[str, Any]:
        job = self._job(job_id)
        if job.state == "paused":
            try:
                self._resume(job_id, self._clock())
            except StateChanged as error:
                raise ConflictError(f"cannot resume: {error}") from None
        elif job.state == "released":
            raise ConflictError(
                f"cannot resume: job {job_id} is not paused; every chunk is released and its"
                " rows are being sent"
            )
        elif job.state != "running":
            raise _refused(job, "resume")
        restarted = self._loops.ensure_running(job_id)
        if job.state == "running" and not restarted:
            raise ConflictError(
                f"cannot resume: job {job_id} is running, not paused, and its release loop is alive"
            )
        return self._state(job_id, loop_restarted=restarted)

    def _settled(self, job: Job) -> bool:
        counts, _, _ = self._progress(job.job_id, self._clock())
        return job_settled(job.rows, job.rejected, counts)

    def _state(self, job_id: str, *, loop_restarted: bool = False) -> dict[str, Any]:
        return {
            "job_id": job_id,
            "state": self._job(job_id).state,
            "loop_restarted": loop_restarted,
            "links": _links(job_id),
        }

    def _summary(self, job: Job, now: float) -> dict[str, Any]:
        zone = ZoneInfo(self._settings.account_time_zone)
        return {**_summary(job), **timing_view(job, now, zone)}

    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job

    def _report_url(self, key: str | None) -> str | None:
        return None if key is None else self._reports.url_to_get(key, URL_EXPIRES_SECONDS)


def _refused(job: Job, action: str) -> ConflictError:
    """The 409 for a change that means nothing in the job's state."""
    why = NO_CHANGE.get(job.state, f"is {job.state}")
    if job.state == "paused" and action == "pause":
        why = "is already paused"
    if job.state == "cancelled" and action == "cancel":
        why = "is already cancelled"
    if job.state == "failed" and job.error:
        why += f": {job.error}"
    return ConflictError(f"cannot {action}: job {job.job_id} {why}")


def _links(job_id: str) -> dict[str, str]:
    base = f"/jobs/{job_id}"
    return {
        "self": base,
        "cancel": f"{base}/cancel",
        "pause": f"{base}/pause",
        "resume": f"{base}/resume",
    }


def _summary(job: Job) -> dict[str, Any]:
    return {
        "job_id": job.job_id,
        "state": job.state,
        "created_at": job.created_at,
        "key": job.key,
        "rows": job.rows,
        "valid": job.valid,
        "rejected": job.rejected,
        "cps": job.cps,
        "window_seconds": job.window_seconds,
        # Rows by final outcome once the job ended (stored by the reconciler), else None; until
        # then `responses` (every attempt the router counted) shows that it moves.
        "counts": final_counts_view(job),
        "responses": job.responses,
    }
