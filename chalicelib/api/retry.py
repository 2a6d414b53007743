"""POST /jobs/{job_id}/retry: a new job of exactly the rows of a finished job that ended in the
outcomes asked for (default failed and dead_lettered), optionally only those with given error codes.

The rows are read from the job's chunks in HOLDING (what was sent, with job-wide parameters and
templates applied, and the carried columns) and their outcomes from the results table; the user's
original file is never read. They are written to SOURCE as JSON Lines with object metadata that
makes the splitter a job of them: the original's rate and window, `resend: true` (the content may
repeat an earlier job's), the carried columns kept plus `original_row` (the row's number in the
original job, so outcomes join back), and `retry-of`, recorded on the new job as `retry_of`.

`sent` and `suppressed` rows are never retried, nor `rejected` (never sent) or `retrying` (not a
row's end); asking for them is a 400. A sent row whose message or call did not get through
(chalicelib.core.delivery.not_delivered: undelivered, failed at delivery, busy, no-answer) is
`undelivered` here, retried only when named; its delivery error code is the one `errors`
matches. `unknown` rows may have been sent: only when named. A job
that is not completed or cancelled is a 409, and so is a retry that matches no row (no job is
made). A job with a send window is refused: its chunks do not keep each row's time zone.
"""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from chalice.app import BadRequestError, ConflictError, NotFoundError, Request, Response

from chalicelib.api.request_bodies import current, json_of, raw_body_of
from chalicelib.aws.buckets import Bucket, group_chunk_key
from chalicelib.aws.jobs_table import JobStore
from chalicelib.config import ConfigError
from chalicelib.core.delivery import UNDELIVERED, not_delivered
from chalicelib.core.jobs import RETRIABLE, Job
from chalicelib.core.records import ChunkRow
from chalicelib.core.slices import groups_of
from chalicelib.intake.carry import Carry

if TYPE_CHECKING:
    from chalicelib.aws.result_items import RowResult

RETRYABLE: Final = ("failed", "dead_lettered", "unknown", UNDELIVERED)
DEFAULT_OUTCOMES: Final = ("failed", "dead_lettered")
NEVER: Final = ("sent", "suppressed", "rejected", "retrying")
ORIGINAL_ROW: Final = "original_row"


@dataclass(frozen=True)
class Selection:
    """Which rows to retry: outcomes (a subset of RETRYABLE) and, if any, error codes."""

    outcomes: frozenset[str]
    errors: frozenset[int] | None = None

    def takes(self, result: RowResult) -> bool:
        outcome, code = result.outcome, result.error_code
        if outcome == "sent" and not_delivered(result.api, result.delivery_status):
            outcome, code = UNDELIVERED, result.delivery_error_code
        if outcome not in self.outcomes:
            return False
        return self.errors is None or code in self.errors


def selection_of(body: Any) -> Selection:
    """The request body `{"outcomes": [...], "errors": [...]}` (both optional); BadRequestError
    names what is wrong."""
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise BadRequestError(
            'the body must be a JSON object: {"outcomes": [...], "errors": [...]}'
        )
    outcomes = body.get("outcomes") or list(DEFAULT_OUTCOMES)
    if not isinstance(outcomes, list) or not all(isinstance(o, str) for o in outcomes):
        raise BadRequestError("`outcomes` must be a list of outcome names")
    for name in outcomes:
        if name in NEVER:
            raise BadRequestError(
                f"outcome {name!r} is never retried; retry one of {', '.join(RETRYABLE)}"
            )
        if name not in RETRYABLE:
            raise BadRequestError(
                f"unknown outcome {name!r}; expected one of {', '.join(RETRYABLE)}"
            )
    errors = body.get("errors")
    if errors is None:
        return Selection(frozenset(outcomes))
    if (
        not isinstance(errors, list)
        or not errors
        or not all(isinstance(e, int) and not isinstance(e, bool) and e > 0 for e in errors)
    ):
        raise BadRequestError("`errors` must be a non-empty list of Twilio error codes (integers)")
    return Selection(frozenset(outcomes), frozenset(errors))


class RetryApi:
    def __init__(
        self,
        jobs: JobStore,
        holding: Bucket,
        source: Bucket,
        outcomes: Callable[[str], Iterator[RowResult]],
        *,
        clock: Callable[[], float] = time.time,
        new_token: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        """`outcomes(job_id)`: every recorded row of a job with its latest outcome."""
        self._jobs = jobs
        self._holding = holding
        self._source = source
        self._outcomes = outcomes
        self._clock = clock
        self._new_token = new_token

    def retry(self, job_id: str, request: Request | None) -> Response:
        selection = selection_of(_json_body(current(request)))
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        if job.state not in RETRIABLE:
            raise ConflictError(
                f"cannot retry: job {job_id} is {job.state}; retry a completed or cancelled job"
            )
        if job.send_window is not None:
            raise ConflictError(f"cannot retry: job {job_id} has a send window (not supported)")
        chosen = {r.row for r in self._outcomes(job_id) if selection.takes(r)}
        if not chosen:
            raise ConflictError(f"cannot retry: no row of job {job_id} matches; no job made")
        carry = _carry_of(job)
        content = b"".join(_line(row) for row in self._rows(job, chosen))
        token = self._new_token()
        digest = hashlib.sha256(f"{job_id}/{token}".encode()).hexdigest()[:12]
        new_id = f"{job_id[:40]}-retry-{digest}"
        key = f"retries/{job_id}/{new_id}.jsonl"
        metadata = {
            "job-id": new_id,
            "retry-of": job_id,
            "resend": "true",
            "cps": str(job.cps),
            "window": str(job.window_seconds),
            **Carry(keep_columns=carry.keep_columns).metadata(),
        }
        self._source.put(key, content, "application/x-ndjson", metadata)
        created = {"job_id": new_id, "retry_of": job_id, "rows": len(chosen), "key": key}
        return Response(created, status_code=201, headers={"Location": f"/jobs/{new_id}"})

    def _rows(self, job: Job, chosen: set[int]) -> Iterator[ChunkRow]:
        """The job's chunk rows whose numbers are chosen, in the chunks' order."""
        groups = groups_of(job.groups)
        chunks = [(g, n) for g, group in enumerate(groups) for n in range(group.chunks)]
        if not groups:
            chunks = [(0, n) for n in range(job.chunks)]
        for group, number in chunks:
            body = self._holding.read(group_chunk_key(job.job_id, group, number))
            for line in body.splitlines():
                if line.strip():
                    row = ChunkRow.from_json(json.loads(line))
                    if row.row in chosen:
                        yield row


def _carry_of(job: Job) -> Carry:
    """The original's kept columns and `original_row`; its reference travels as `reference`."""
    kept = tuple(c for c in (job.keep_columns or "").split(",") if c and c != ORIGINAL_ROW)
    try:
        return Carry.of("reference", (*kept, ORIGINAL_ROW))
    except ConfigError as error:
        raise ConflictError(f"cannot retry: job {job.job_id}: {error}") from None


def _line(row: ChunkRow) -> bytes:
    # The original row number of a retry of a retry is its first job's.
    carried = {**row.carried, ORIGINAL_ROW: row.carried.get(ORIGINAL_ROW, str(row.row))}
    # The parameters win over a kept column of the same name: they are what was sent.
    record = {**carried, "api": row.api, **row.params}
    return json.dumps(record, separators=(",", ":")).encode() + b"\n"


def _json_body(request: Request) -> Any:
    return json_of(raw_body_of(request), "the body must be JSON")
