"""Resuming a paused job: a job-lifecycle operation, asked for by the REST API and the CLI."""

from __future__ import annotations

from chalicelib.aws.jobs_table import JobStore, StateChanged


def resume(jobs: JobStore, job_id: str, *, now: float) -> float:
    """Continue a paused job. Rows already released keep their spacing instead of going out in
    a burst: the job's start, and the time its next slice is due, move by the time it spent
    paused. A job paused before its start keeps that start unless it passed meanwhile.
    Returns the new start."""
    job = jobs.get(job_id)
    if job is None:
        raise StateChanged(f"no job {job_id}")
    if job.state != "paused" or job.paused_at is None or job.started_at is None:
        raise StateChanged(f"job {job_id} is {job.state}, not paused")
    if job.releases == 0 and job.released_chunks == 0:
        # Nothing is out yet: the start stands, or is now if it went by during the pause.
        shift = max(0.0, now - max(job.paused_at, job.started_at))
        later = job.start_at is not None and job.started_at + shift > now
        state = "scheduled" if later else "running"
    else:
        shift = now - job.paused_at
        state = "released" if job.released_chunks >= job.chunks else "running"
    # The next slice follows the rows already out, which the pause moved; when every row out
    # was due before the pause, the loop was waiting (a window, a cap) and nothing moves.
    in_flight = job.next_slot_at is not None and job.next_slot_at > job.paused_at
    moved = {
        name: value + (shift if in_flight or job.releases == 0 else 0.0)
        for name in ("next_slot_at", "next_release_at", "last_run_at", "queued_until")
        if (value := getattr(job, name)) is not None
    }
    # A pause flagged as forgotten (downstream/reconcile.lifecycle_stall) is over.
    jobs.update_if(
        job_id,
        ("paused",),
        state=state,
        started_at=job.started_at + shift,
        **moved,
        paused_at=None,
        systemic_errors=0,
        stalled_since=None,
        stalled_reason=None,
    )
    return job.started_at + shift
