"""Resuming a paused job: a job-lifecycle operation, asked for by the REST API and the CLI."""

from __future__ import annotations

from chalicelib.aws.jobs_table import JobStore, StateChanged


def resume(jobs: JobStore, job_id: str, *, now: float) -> float:
    """Continue a paused job: its start moves by the time it spent paused, so the rows that were
    held back keep their spacing instead of going out in a burst. Returns the new start."""
    job = jobs.get(job_id)
    if job is None:
        raise StateChanged(f"no job {job_id}")
    if job.state != "paused" or job.paused_at is None or job.started_at is None:
        raise StateChanged(f"job {job_id} is {job.state}, not paused")
    start = job.started_at + (now - job.paused_at)
    state = "released" if job.released_chunks >= job.chunks else "running"
    # A pause flagged as forgotten (downstream/reconcile.lifecycle_stall) is over.
    jobs.update_if(
        job_id,
        ("paused",),
        state=state,
        started_at=start,
        paused_at=None,
        systemic_errors=0,
        stalled_since=None,
        stalled_reason=None,
    )
    return start
