"""The release step of the state machine: move one chunk from HOLDING to PROCESS.

The state machine passes a LoopState between iterations. This step releases `chunk`, then says
when to release the next one: an absolute time computed from the job's start (see
planning.Schedule.release_at), so the loop never drifts however long each release takes.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, replace
from typing import Any

from chalicelib.jobs import JobStore
from chalicelib.planning import Schedule, iso_timestamp
from chalicelib.storage import Storage, chunk_key

log = logging.getLogger(__name__)

STOPPED_STATES = ("cancelled", "failed")


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
        self, storage: Storage, jobs: JobStore, holding_bucket: str, process_bucket: str
    ) -> None:
        self._storage = storage
        self._jobs = jobs
        self._holding = holding_bucket
        self._process = process_bucket

    def release(self, state: LoopState) -> LoopState:
        job = self._jobs.get(state.job_id)
        if job is None or job.state in STOPPED_STATES:
            stopped = "missing" if job is None else job.state
            log.info("job %s is %s: release loop stops", state.job_id, stopped)
            return replace(state, done=True, stopped=stopped)
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
        self._jobs.update(
            state.job_id,
            released_chunks=following,
            state="released" if done else "running",
        )
        schedule = Schedule(state.cps, state.window)
        return replace(
            state,
            chunk=following,
            next_at=iso_timestamp(state.start + schedule.release_at(following)),
            done=done,
        )
