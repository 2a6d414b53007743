"""POST /jobs/{job_id}/rate: change the rate of a job whose rows are still to be released.

The body is `{"cps": N}` (an integer of at least 1). The answer is the job's state with its old
and new rate; 409 with a reason a person reads when the job's rate no longer matters (every row
released, finished, still splitting), 400 naming a bad `cps`. What the change does to the rows
already queued is chalicelib.core.pace's; how it reaches the release loop, chalicelib.release.rate.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from chalice.app import BadRequestError, ConflictError, NotFoundError, Request

from chalicelib.api.request_bodies import current, json_of, raw_body_of
from chalicelib.aws.jobs_table import JobStore, StateChanged
from chalicelib.core.jobs import RATE_CHANGEABLE, Job
from chalicelib.release.rate import change_rate, restart_loop
from chalicelib.release.state_machine import ReleaseLoop

# Why the rate of a job in this state means nothing, as the 409's message ends.
NO_RATE = {
    "splitting": "is still being split; try again once it is running",
    "released": "has every row released; the rows queued keep their times",
    "completed": "is completed: every row has its outcome",
    "cancelled": "was cancelled",
    "failed": "failed",
    "duplicate": "is a duplicate of an earlier upload and sends nothing",
}


class RateApi:
    def __init__(
        self, jobs: JobStore, loop: ReleaseLoop, *, clock: Callable[[], float] = time.time
    ) -> None:
        self._jobs = jobs
        self._loop = loop
        self._clock = clock

    def set_rate(self, job_id: str, request: Request | None) -> dict[str, Any]:
        cps = cps_of(current(request))
        job = self._job(job_id)
        if job.state not in RATE_CHANGEABLE:
            raise _refused(job)
        try:
            changed = change_rate(self._jobs, job_id, cps, now=self._clock())
        except StateChanged:
            raise _refused(self._job(job_id)) from None
        restarted = changed.moved and restart_loop(self._jobs, self._loop, changed.job)
        return {
            "job_id": job_id,
            "state": changed.job.state,
            "cps": changed.new,
            "previous_cps": changed.old,
            "next_release_at": changed.job.next_release_at,
            "loop_restarted": restarted,
        }

    def _job(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise NotFoundError(f"no job {job_id}")
        return job


def cps_of(request: Request) -> int:
    """The body's `cps`: a JSON integer of at least 1 (not a string, a fraction or a bool)."""
    body = json_of(raw_body_of(request), 'the body must be JSON: {"cps": N}')
    if not isinstance(body, dict) or "cps" not in body:
        raise BadRequestError("the body must be a JSON object with `cps`")
    cps = body["cps"]
    if isinstance(cps, bool) or not isinstance(cps, int) or cps < 1:
        raise BadRequestError(f"`cps` must be an integer of at least 1, got {json.dumps(cps)}")
    return cps


def _refused(job: Job) -> ConflictError:
    why = NO_RATE.get(job.state, f"is {job.state}")
    if job.state == "failed" and job.error:
        why += f": {job.error}"
    return ConflictError(f"cannot change the rate: job {job.job_id} {why}")
