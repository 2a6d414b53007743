"""Changing the rate of a job whose rows are still to be released: a job-lifecycle operation,
asked for by the REST API (POST /jobs/{id}/rate) and the CLI (`callqueue set-rate`).

The change is one conditional update of the job's record: its rate, the change (for the sender,
which re-times the rows already queued: chalicelib.core.pace), and the time its next slice
starts, moved to follow those rows as re-timed. The release loop, which may be waiting up to a
window for its next release, is then restarted from the record (a new generation, the old ones
stopped), so the change takes effect at once: a faster rate's next slice comes sooner, a slower
one's later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from chalicelib.aws.jobs_table import JobStore, StateChanged
from chalicelib.core import pace
from chalicelib.core.jobs import RATE_CHANGEABLE, RELEASING, Job
from chalicelib.core.schedule import Schedule
from chalicelib.release.releaser import RESTART_ATTEMPTS, LoopState
from chalicelib.release.state_machine import LoopNotStarted, ReleaseLoop

log = logging.getLogger(__name__)

# Tries of the conditional update when a release lands between the read and the write.
UPDATE_ATTEMPTS = 5


@dataclass(frozen=True)
class RateChanged:
    """The job as it was read for the change, and as it is after it."""

    before: Job
    job: Job

    @property
    def old(self) -> int:
        return self.before.cps

    @property
    def new(self) -> int:
        return self.job.cps

    @property
    def moved(self) -> bool:
        """Whether the loop's next release moved (the loop must be told)."""
        return self.job.next_release_at != self.before.next_release_at


def change_rate(jobs: JobStore, job_id: str, cps: int, *, now: float) -> RateChanged:
    """Set a job's rate to `cps`. Conditional on the job's state, release count and rate as
    read, so a release, a pause or resume, or another change made meanwhile is read again
    rather than overwritten. StateChanged when the job is missing or not in a state whose rate
    may change."""
    Schedule(cps, 1)  # the same check as any job's rate: ConfigError when below 1
    for _ in range(UPDATE_ATTEMPTS):
        job = jobs.get(job_id)
        if job is None:
            raise StateChanged(f"no job {job_id}")
        if job.state not in RATE_CHANGEABLE:
            raise StateChanged(f"job {job_id} is {job.state}")
        if job.cps == cps:
            return RateChanged(job, job)
        try:
            changes = _changes(job, cps, now)
            jobs.update_if_at(job_id, (job.state,), job.releases, job.cps, **changes)
        except StateChanged:
            continue
        log.info("job %s: rate %d -> %d CPS", job_id, job.cps, cps)
        return RateChanged(job, jobs.get(job_id) or job)
    raise StateChanged(f"job {job_id} kept releasing; try again")


def _changes(job: Job, cps: int, now: float) -> dict[str, Any]:
    """The record's new rate, its changes and its next slice's start (with its release)."""
    # A paused job's clock stopped at its pause: the change is placed there, and the resume
    # moves the job's start, its cursor and so its rows by the pause.
    at = job.paused_at if job.state == "paused" and job.paused_at is not None else now
    start = job.started_at if job.started_at is not None else at
    change = pace.RateChange(at, job.cps, cps)
    stretch = job.send_window is None
    queued = None
    if job.queued_until is not None:
        queued = (job.last_run_at or job.queued_until, job.queued_until)
    end = pace.queued_end(queued, change, stretch=stretch)
    # On the job's clock, as the sender reads it.
    own = pace.RateChange(at - start, job.cps, cps, end - start)
    changes: dict[str, Any] = {
        "cps": cps,
        "rate_changes": pace.with_change(job.rate_changes, own, stretch=stretch),
    }
    if queued is not None:
        # Where the last run now ends, as the sender times its rows (its first slot stays:
        # no later change moves a row before it).
        changes["queued_until"] = end
    if job.next_slot_at is not None:
        slot = pace.next_slot(job.next_slot_at, queued, change, stretch=stretch)
        changes["next_slot_at"] = slot
        if job.next_release_at is not None:
            changes["next_release_at"] = slot - Schedule(cps, job.window_seconds).lead_seconds
    return changes


def restart_loop(jobs: JobStore, loop: ReleaseLoop, job: Job) -> bool:
    """Start the job's loop anew from its record and stop the executions before it, so a loop
    waiting for the release the change moved releases at the new time. True if restarted;
    a paused job's loop is left to look again (a resume moves the times), and a job not yet
    started by its splitter has none."""
    if job.state not in RELEASING or job.started_at is None or job.released_chunks >= job.chunks:
        return False
    generation = job.loop_generation
    for _ in range(RESTART_ATTEMPTS):
        generation += 1
        # A name taken means that generation was started (a loop continuing as new): the next.
        if loop.start(job.job_id, LoopState.resumed(job, generation).to_json(), generation):
            jobs.raise_to(job.job_id, "loop_generation", generation)
            stopped = loop.stop(job.job_id, keep=generation)
            log.info(
                "job %s: release loop restarted as execution %d (%d stopped)",
                job.job_id,
                generation,
                stopped,
            )
            return True
    raise LoopNotStarted(
        f"job {job.job_id}: no release loop could be started after {RESTART_ATTEMPTS} tries"
    )
