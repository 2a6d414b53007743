"""The release step of the state machine: release the job's next slice of rows.

The state machine passes a LoopState between iterations. Each step reads the job's record (its
release cursor, rate, window and caps), works out the next slice (chalicelib.core.slices: runs
of the groups' chunks, each with the time its first row is due), copies each run's chunk into
PROCESS with that timing stamped on it for the enqueuer, records the cursor, and says when to
release the next: the next slice's first row's time less the release lead, an absolute time, so
the loop never drifts however long each release takes. A job whose send window is closed for
all its rows waits for the next opening in one Wait, at no cost per row.

An execution's history holds at most 25,000 events and each iteration (a release, or a look at a
paused job) adds about 9, so after STEPS_PER_EXECUTION iterations the step hands its loop state to a
new execution (continue as new, chalicelib/release/state_machine.py) and its own execution ends: a
job of any number of chunks, paused for any time, stays within the limit.

What records a release is the job's `releases` count, written (conditionally on the count the
step read) after the runs are copied into PROCESS. A step that ran before (Step Functions
retried it) finds the count moved on and takes the recorded cursor; a loop that died is
restarted (LoopKeeper) from the record. A run copied just before its step died is copied again
by the next try: its rows reach the sender twice, where the call ledger
(chalicelib/sending/ledger.py) gives each row already claimed its earlier outcome instead of a
second call.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from chalicelib.aws.buckets import Storage, group_chunk_key
from chalicelib.aws.daily_counts import DailyCounts
from chalicelib.aws.jobs_table import JobStore, StateChanged
from chalicelib.core.jobs import FINAL, RELEASING, Job
from chalicelib.core.schedule import Schedule, iso_timestamp
from chalicelib.core.slices import Caps, Group, Run, Slice, groups_json, groups_of, next_slice
from chalicelib.core.windows import SendWindow
from chalicelib.intake.zoning import openings
from chalicelib.release.state_machine import LoopNotStarted, ReleaseLoop

log = logging.getLogger(__name__)

# How often the loop of a paused job looks again at whether it was resumed.
PAUSED_RECHECK_SECONDS = 30
# Iterations of one execution before it continues as a new one: about 9 history events each
# (the task's 5, the choice's 2, the wait's 2), 9,000 in all, leaving the rest of the 25,000 for
# the retries of a release step (3 events an attempt, up to 6 attempts).
STEPS_PER_EXECUTION = 1000
# Generations tried when a dead loop is restarted: a generation whose execution was started
# and ended without the job's record learning of it is skipped.
RESTART_ATTEMPTS = 5
# Days of the account's zone whose counts a job keeps (for max_per_day).
_DAYS_KEPT = 3


@dataclass(frozen=True)
class LoopState:
    job_id: str
    next_at: str = ""
    done: bool = False
    stopped: str = ""
    # Which execution of the job's loop this is (release_loop.execution_name), and how many
    # iterations it has made.
    generation: int = 0
    steps: int = 0
    # The job's releases made when this step runs: a step that finds more ran before.
    seq: int = 0

    @classmethod
    def first(cls, job: Job, *, now: float, lead: float) -> LoopState:
        """The loop's first state: release at once, or wait for a later start."""
        start = job.next_slot_at or job.started_at or now
        at = "" if start - lead <= now else iso_timestamp(start - lead)
        return cls(job_id=job.job_id, next_at=at, seq=job.releases)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoopState:
        return cls(
            job_id=str(data["job_id"]),
            next_at=str(data.get("next_at", "")),
            # Absent from a state written before loops continued as new: generation 0.
            generation=int(data.get("generation", 0)),
            steps=int(data.get("steps", 0)),
            seq=int(data.get("seq", 0)),
        )

    @classmethod
    def resumed(cls, job: Job, generation: int) -> LoopState:
        """The state a new execution starts from for a job whose loop died: its next release,
        at the time the record gives (at once if that is past)."""
        if job.started_at is None:
            raise LoopNotStarted(f"job {job.job_id} has not started")
        at = job.next_release_at if job.next_release_at is not None else job.started_at
        return cls(
            job_id=job.job_id,
            next_at=iso_timestamp(at),
            generation=generation,
            seq=job.releases,
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
        daily: DailyCounts | None = None,
        daily_limit: int | None = None,
        account_zone: str = "UTC",
    ) -> None:
        self._storage = storage
        self._jobs = jobs
        self._holding = holding_bucket
        self._process = process_bucket
        self._loop = loop
        self._steps_per_execution = steps_per_execution
        self._clock = clock
        self._daily = daily if daily_limit else None
        self._daily_limit = daily_limit
        self._zone = ZoneInfo(account_zone)

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
            "job %s: release loop continues as execution %d at release %d (%s)",
            state.job_id,
            generation,
            state.seq,
            "started" if started else "already started",
        )
        return replace(state, done=True, stopped="continued")

    def _step(self, state: LoopState) -> LoopState:
        job = self._jobs.get(state.job_id)
        if job is not None and job.state == "cancelled":
            # Every row must end in an outcome: the rows not yet released go out now, and the
            # sender ends them `failed` (code `cancelled`) without calling Twilio.
            self._release_rest(job)
        if job is None or job.state in FINAL:
            stopped = "missing" if job is None else job.state
            log.info("job %s is %s: release loop stops", state.job_id, stopped)
            return replace(state, done=True, stopped=stopped)
        if job.state == "paused":
            # Release nothing; look again later. A resume moves the cursor's times by the
            # pause, so the next slice is worked out from the record then.
            return replace(
                state, next_at=iso_timestamp(self._clock() + PAUSED_RECHECK_SECONDS), done=False
            )
        if job.releases != state.seq:
            # This step ran before (a retry) or another execution released meanwhile: the
            # record says where the loop is.
            return self._as_recorded(state, job)
        return self._release_slice(state, job)

    def _release_slice(self, state: LoopState, job: Job) -> LoopState:
        now = self._clock()
        lead = Schedule(job.cps, job.window_seconds).lead_seconds
        start = max(job.next_slot_at or job.started_at or now, now)
        window = SendWindow.parse(job.send_window, job.send_days)
        planned, day = self._slice(job, window, start, state.seq)
        for run in planned.runs:
            zones = planned.groups[run.group].zones
            until = openings(window, zones).closes_at(run.at) if window and zones else None
            self._copy(job, run, now, until=until)
        done = all(group.remaining == 0 for group in planned.groups)
        changes: dict[str, Any] = {
            "groups": groups_json(planned.groups),
            "releases": state.seq + 1,
            "released_rows": job.released_rows + planned.rows,
            "released_chunks": _chunks_out(planned.groups, _chunk_rows(job)),
            "next_slot_at": planned.next_at,
            "next_release_at": None if done or planned.next_at is None else planned.next_at - lead,
        }
        if planned.runs:
            changes.update(last_run_at=planned.runs[-1].at, queued_until=planned.next_at)
        if day and planned.rows:
            changes["day_counts"] = _counted(job.day_counts, day, planned.rows)
        try:
            self._jobs.record_release(job.job_id, state.seq, **changes)
        except StateChanged:
            fresh = self._jobs.get(job.job_id)
            return self._as_recorded(state, fresh or job)
        self._move_state(job, released=bool(planned.runs), done=done)
        if planned.waiting:
            log.info(
                "job %s: nothing to release at %s (%s); next at %s",
                job.job_id,
                iso_timestamp(start),
                planned.waiting,
                "never" if planned.next_at is None else iso_timestamp(planned.next_at),
            )
        if planned.next_at is None and not done:
            log.error("job %s: its rows left can never open in their send window", job.job_id)
            self._jobs.update(
                job.job_id, stalled_reason="rows left that can never open in their send window"
            )
            return replace(state, seq=state.seq + 1, done=True, stopped="never")
        following = "" if done or planned.next_at is None else iso_timestamp(planned.next_at - lead)
        return replace(state, seq=state.seq + 1, next_at=following, done=done)

    def _slice(
        self, job: Job, window: SendWindow | None, start: float, turn: int
    ) -> tuple[Slice, str]:
        """The slice due at `start`, within the job's and the account's caps for the day."""
        groups = groups_of(job.groups)
        windows = [
            None if window is None or not g.zones else openings(window, g.zones) for g in groups
        ]
        caps, day = self._caps(job, start)

        def cut(caps: Caps) -> Slice:
            return next_slice(
                start,
                groups,
                windows,
                cps=job.cps,
                window_seconds=job.window_seconds,
                chunk_size=_chunk_rows(job),
                caps=caps,
                turn=turn,
            )

        planned = cut(caps)
        if self._daily is not None and self._daily_limit and planned.rows:
            granted = self._daily.reserve(day, planned.rows, self._daily_limit)
            if granted < planned.rows:
                planned = cut(replace(caps, left_today=granted))
        return planned, day

    def _caps(self, job: Job, start: float) -> tuple[Caps, str]:
        if job.max_per_day is None and not self._daily_limit:
            return Caps(), ""
        local = datetime.fromtimestamp(start, self._zone)
        day = local.date().isoformat()
        midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time())
        ends = midnight.replace(tzinfo=self._zone).timestamp()
        left: int | None = None
        if job.max_per_day is not None:
            left = job.max_per_day - json.loads(job.day_counts or "{}").get(day, 0)
        if self._daily is not None and self._daily_limit:
            account = self._daily_limit - self._daily.used(day)
            left = account if left is None else min(left, account)
        return Caps(left_today=max(0, left or 0), day_ends=ends), day

    def _copy(self, job: Job, run: Run, now: float, *, until: float | None = None) -> None:
        """Copy the run's chunk into PROCESS with the run's timing (and when its send window
        closes, for the sender) stamped on it."""
        key = group_chunk_key(job.job_id, run.group, run.chunk)
        window = {"until": repr(until)} if until is not None else {}
        self._storage.release_chunk(
            self._holding,
            self._process,
            key,
            target=run_key(key, run.first),
            job_id=job.job_id,
            job_start=repr(job.started_at or now),
            group=str(run.group),
            chunk=str(run.chunk),
            first=str(run.first),
            count=str(run.count),
            at=repr(run.at),
            cps=str(job.cps),
            released_at=repr(now),
            **window,
        )

    def _move_state(self, job: Job, *, released: bool, done: bool) -> None:
        """scheduled -> running at its first release, -> released when every row is out.
        Conditional: a pause or cancel that landed meanwhile stays."""
        target = "released" if done else "running" if released else job.state
        if target == job.state:
            return
        with contextlib.suppress(StateChanged):
            self._jobs.update_if(job.job_id, RELEASING, state=target)

    def _as_recorded(self, state: LoopState, job: Job) -> LoopState:
        done = job.released_chunks >= job.chunks or job.state in FINAL
        at = job.next_release_at
        following = "" if done or at is None else iso_timestamp(at)
        return replace(state, seq=job.releases, next_at=following, done=done)

    def _release_rest(self, job: Job) -> None:
        """Every row not yet released, at once (a cancelled job's: ended without a call)."""
        now = self._clock()
        size = _chunk_rows(job)
        groups = groups_of(job.groups)
        for index in range(len(groups)):
            while groups[index].remaining > 0:
                chunk, first, left = groups[index].position(size)
                self._copy(job, Run(index, chunk, first, left, now), now)
                groups[index] = replace(groups[index], taken=groups[index].taken + left)
        self._jobs.update(
            job.job_id,
            groups=groups_json(groups),
            released_chunks=job.chunks,
            released_rows=job.valid,
        )


def run_key(chunk: str, first: int) -> str:
    """Where a run is released in PROCESS: the chunk's own key for a run from its first row."""
    return chunk if first == 0 else chunk.replace(".jsonl", f"-from-{first:06d}.jsonl")


def _chunk_rows(job: Job) -> int:
    return job.chunk_rows or Schedule(job.cps, job.window_seconds).chunk_size


def _chunks_out(groups: tuple[Group, ...] | list[Group], size: int) -> int:
    """Chunks whose every row is released."""
    out = 0
    for group in groups:
        full, rest = divmod(group.taken, size)
        out += full + (1 if group.taken == group.rows and rest else 0)
    return out


def _counted(day_counts: str | None, day: str, rows: int) -> str:
    counts: dict[str, int] = json.loads(day_counts or "{}")
    counts[day] = counts.get(day, 0) + rows
    kept = dict(sorted(counts.items())[-_DAYS_KEPT:])
    return json.dumps(kept, separators=(",", ":"))
