"""The release step of the state machine: move one chunk from HOLDING to PROCESS.

The state machine passes a LoopState between iterations. This step releases `chunk`, then says
when to release the next one: an absolute time computed from the job's start (see
planning.Schedule.release_at), so the loop never drifts however long each release takes.

An execution's history holds at most 25,000 events and each iteration (a release, or a look at a
paused job) adds about 9, so after STEPS_PER_EXECUTION iterations the step hands its loop state to a
new execution (continue as new, chalicelib/release/state_machine.py) and its own execution ends: a
job of any number of chunks, paused for any time, stays within the limit.

What records a chunk's release is the job's `released_chunks`, written after the chunk is copied
into PROCESS. A loop that died is restarted (LoopKeeper) from that chunk: every chunk before it
is released and never released again; that one chunk may have been copied just before the step
died, and is then copied again. Its rows then reach the sender a second time, where the call
ledger (chalicelib/sending/ledger.py) gives each row already claimed its earlier outcome instead
of a second call; the same holds for a release step Step Functions retries.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from chalicelib.aws.buckets import Storage, chunk_key
from chalicelib.aws.jobs_table import JobStore, StateChanged
from chalicelib.core.jobs import FINAL, LOOPING, Job
from chalicelib.core.schedule import Schedule, iso_timestamp
from chalicelib.release.state_machine import LoopNotStarted, ReleaseLoop

log = logging.getLogger(__name__)

# A job in one of these has nothing more to release: its loop ends.
# How often the loop of a paused job looks again at whether it was resumed.
PAUSED_RECHECK_SECONDS = 30
# Iterations of one execution before it continues as a new one: about 9 history events each
# (the task's 5, the choice's 2, the wait's 2), 9,000 in all, leaving the rest of the 25,000 for
# the retries of a release step (3 events an attempt, up to 6 attempts).
STEPS_PER_EXECUTION = 1000
# Generations tried when a dead loop is restarted: a generation whose execution was started
# and ended without the job's record learning of it is skipped.
RESTART_ATTEMPTS = 5


@dataclass(frozen=True)
class LoopState:
    job_id: str
    chunk: int
    chunks: int
    start: float
    window: int
    cps: int
    next_at: str = ""
    done: bool = False
    stopped: str = ""
    # Which execution of the job's loop this is (release_loop.execution_name), and how many
    # iterations it has made.
    generation: int = 0
    steps: int = 0

    @classmethod
    def first(cls, job_id: str, chunks: int, start: float, schedule: Schedule) -> LoopState:
        return cls(
            job_id=job_id,
            chunk=0,
            chunks=chunks,
            start=start,
            window=schedule.window_seconds,
            cps=schedule.cps,
        )

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopState:
        return cls(
            job_id=str(data["job_id"]),
            chunk=int(data["chunk"]),
            chunks=int(data["chunks"]),
            start=float(data["start"]),
            window=int(data["window"]),
            cps=int(data["cps"]),
            # Absent from a state written before loops continued as new: generation 0.
            generation=int(data.get("generation", 0)),
            steps=int(data.get("steps", 0)),
        )

    @classmethod
    def resumed(cls, job: Job, generation: int) -> LoopState:
        """The state a new execution starts from for a job whose loop died: its next
        unreleased chunk, at that chunk's time (at once if that is past)."""
        if job.started_at is None:
            raise LoopNotStarted(f"job {job.job_id} has not started")
        schedule = Schedule(job.cps, job.window_seconds)
        chunk = job.released_chunks
        return cls(
            job_id=job.job_id,
            chunk=chunk,
            chunks=job.chunks,
            start=job.started_at,
            window=job.window_seconds,
            cps=job.cps,
            next_at=iso_timestamp(job.started_at + schedule.release_at(chunk)),
            generation=generation,
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class Releaser:
    def __init__(
        self,
        storage: Storage,
        jobs: JobStore,
        holding_bucket: str,
        process_bucket: str,
        *,
        loop: ReleaseLoop,
        steps_per_execution: int = STEPS_PER_EXECUTION,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._jobs = jobs
        self._holding = holding_bucket
        self._process = process_bucket
        self._loop = loop
        self._steps_per_execution = steps_per_execution
        self._clock = clock

    def release(self, state: LoopState) -> LoopState:
        following = self._step(replace(state, steps=state.steps + 1))
        if following.done or following.steps < self._steps_per_execution:
            return following
        return self._continue_as_new(following)

    def _continue_as_new(self, state: LoopState) -> LoopState:
        """Start the loop's next execution with `state` and end this one. The new execution
        is started before the job's record is told: a resume meanwhile finds it running. A
        start refused because that execution exists means this step ran before (Step
        Functions retried it) or a resume started it: either way it runs, and this one ends."""
        generation = state.generation + 1
        started = self._loop.start(
            state.job_id, replace(state, generation=generation, steps=0).to_json(), generation
        )
        self._jobs.raise_to(state.job_id, "loop_generation", generation)
        log.info(
            "job %s: release loop continues as execution %d at chunk %d (%s)",
            state.job_id,
            generation,
            state.chunk,
            "started" if started else "already started",
        )
        return replace(state, done=True, stopped="continued")

    def _step(self, state: LoopState) -> LoopState:
        job = self._jobs.get(state.job_id)
        if job is not None and job.state == "cancelled":
            # Every row must end in an outcome: the chunks not yet released go out now, and the
            # sender ends their rows `failed` (code `cancelled`) without calling Twilio.
            for chunk in range(state.chunk, job.chunks):
                self._storage.release_chunk(
                    self._holding,
                    self._process,
                    chunk_key(state.job_id, chunk),
                    job_id=state.job_id,
                    job_start=repr(job.started_at or state.start),
                    chunk=str(chunk),
                )
            self._jobs.update(state.job_id, released_chunks=job.chunks)
        if job is None or job.state in FINAL:
            stopped = "missing" if job is None else job.state
            log.info("job %s is %s: release loop stops", state.job_id, stopped)
            return replace(state, done=True, stopped=stopped)
        if job.state == "paused":
            # Release nothing; look again later. A resume moves the job's start, so the next
            # chunk's time is recomputed from the job record then.
            return replace(
                state, next_at=iso_timestamp(self._clock() + PAUSED_RECHECK_SECONDS), done=False
            )
        # The job record's start is authoritative: a resumed job starts later than planned.
        state = replace(state, start=job.started_at or state.start)
        self._storage.release_chunk(
            self._holding,
            self._process,
            chunk_key(state.job_id, state.chunk),
            job_id=state.job_id,
            job_start=repr(state.start),
            chunk=str(state.chunk),
        )
        following = state.chunk + 1
        done = following >= state.chunks
        try:
            # Conditional: a pause that landed meanwhile must not be overwritten.
            self._jobs.update_if(
                state.job_id,
                ("running",),
                released_chunks=following,
                state="released" if done else "running",
            )
        except StateChanged:
            self._jobs.update(state.job_id, released_chunks=following)
        schedule = Schedule(state.cps, state.window)
        return replace(
            state,
            chunk=following,
            next_at=iso_timestamp(state.start + schedule.release_at(following)),
            done=done,
        )


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
