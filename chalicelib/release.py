"""The release step of the state machine: move one chunk from HOLDING to PROCESS.

The state machine passes a LoopState between iterations. This step releases `chunk`, then says
when to release the next one: an absolute time computed from the job's start (see
planning.Schedule.release_at), so the loop never drifts however long each release takes.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from chalicelib.jobs import JobStore, StateChanged
from chalicelib.planning import Schedule, iso_timestamp
from chalicelib.storage import Storage, chunk_key

log = logging.getLogger(__name__)

STOPPED_STATES = ("cancelled", "failed")
# How often the loop of a paused job looks again at whether it was resumed.
PAUSED_RECHECK_SECONDS = 30


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
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._storage = storage
        self._jobs = jobs
        self._holding = holding_bucket
        self._process = process_bucket
        self._clock = clock

    def release(self, state: LoopState) -> LoopState:
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
        if job is None or job.state in STOPPED_STATES:
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
