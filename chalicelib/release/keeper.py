"""Keeping a job's release loop alive: restart one that died (its execution failed, timed out
or was aborted) from the job's record, and replace a waiting one when a cancelled job's rows
must end at once. Asked for by resume and cancel (chalicelib/api/jobs.py)."""

from __future__ import annotations

import logging
from dataclasses import replace

from chalicelib.aws.jobs_table import JobStore
from chalicelib.core.jobs import LOOPING, Job
from chalicelib.release.releaser import RESTART_ATTEMPTS, LoopState
from chalicelib.release.state_machine import LoopNotStarted, ReleaseLoop

log = logging.getLogger(__name__)


class LoopKeeper:
    """Restarts a job's release loop that died (its execution failed, timed out or was
    aborted) from the job's next unreleased chunk."""

    def __init__(self, jobs: JobStore, loop: ReleaseLoop) -> None:
        self._jobs = jobs
        self._loop = loop

    def needs_loop(self, job: Job) -> bool:
        """Whether the job has chunks left to release and a loop should be releasing them."""
        return (
            job.state in LOOPING and job.started_at is not None and job.released_chunks < job.chunks
        )

    def ensure_running(self, job_id: str) -> bool:
        """Start a new execution if the job needs a loop and none is running; True if this
        call started one. Raises LoopNotStarted if no generation's execution could be
        started.

        The executions are looked at before the job's record is read: a loop that ends has
        recorded its last release first (and one that continues as new has started the next
        execution first), so a loop seen ended never leaves a record that looks unfinished."""
        if self._loop.running(job_id):
            return False
        job = self._jobs.get(job_id)
        if job is None or not self.needs_loop(job):
            return False
        generation = job.loop_generation
        for _ in range(RESTART_ATTEMPTS):
            generation += 1
            state = LoopState.resumed(job, generation)
            if self._loop.start(job.job_id, state.to_json(), generation):
                self._jobs.raise_to(job.job_id, "loop_generation", generation)
                log.warning(
                    "job %s: release loop was not running; restarted at chunk %d of %d",
                    job.job_id,
                    job.released_chunks,
                    job.chunks,
                )
                return True
            if self._loop.running(job.job_id):
                return False  # started by someone else (a resume at the same moment)
        raise LoopNotStarted(
            f"job {job.job_id}: no release loop could be started after {RESTART_ATTEMPTS} tries"
        )

    def end_now(self, job_id: str) -> bool:
        """For a cancelled job with rows not yet released: a loop that releases them at once
        (the sender ends them `cancelled`), in place of one waiting for a later release (a
        scheduled start, a send window, tomorrow's cap) or one that died. True if started."""
        job = self._jobs.get(job_id)
        if job is None or job.state != "cancelled" or not self.needs_loop(job):
            return False
        generation = job.loop_generation
        for _ in range(RESTART_ATTEMPTS):
            generation += 1
            state = replace(LoopState.resumed(job, generation), next_at="")
            if self._loop.start(job.job_id, state.to_json(), generation):
                self._jobs.raise_to(job.job_id, "loop_generation", generation)
                self._loop.stop(job.job_id, keep=generation)
                log.info("job %s cancelled: its rows not released end now", job.job_id)
                return True
        raise LoopNotStarted(
            f"job {job.job_id}: no release loop could be started after {RESTART_ATTEMPTS} tries"
        )
