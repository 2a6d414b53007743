"""The job reconciler (a schedule): marks a job complete when every row has its final outcome,
writes the job's per-row outcome CSV and announces it; flags jobs whose rows stopped moving, and
jobs that stay splitting, released or paused for longer than they should.

Each job is reconciled on its own: one job's error (an unreadable record, a report that cannot
be read) is logged with its traceback, counted in the ReconcileFailures metric (an alarm) and the
pass goes on to the next job. The pass does not raise at its end: the schedule runs it again a
minute later whatever happens, while a raised error would only add Lambda's asynchronous retries
of the whole pass (every job again, twice) for a failure that is usually the same job's again.
"""

from __future__ import annotations

import io
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping

from chalicelib.aws.alerts import Alerts
from chalicelib.aws.buckets import Bucket, outcomes_key, rejects_key
from chalicelib.aws.event_bus import JOB_COMPLETED, EventPublisher
from chalicelib.aws.jobs_table import JobStore, MalformedJob, StateChanged
from chalicelib.aws.results_table import ResultsTable
from chalicelib.core.delivery import DeliveryTally
from chalicelib.core.jobs import ENDED, SETTLING, Job, final_counts_record
from chalicelib.intake.carry import Carry
from chalicelib.observability import Metrics
from downstream.reconcile import (
    RowOutcome,
    is_stalled,
    job_settled,
    lifecycle_stall,
    merge_outcomes,
    read_rejects_csv,
    write_outcomes_csv,
)

log = logging.getLogger(__name__)

# How long a finished job's delivery statuses are waited for. A message Twilio cannot hand to the
# carrier within its validity period (at most 36,000 s) fails; carriers' delivery receipts come
# later, some up to 72 hours; a status after that stays on the row (GET /jobs/{id}) and is not in
# outcomes.csv.
DELIVERY_WATCH_SECONDS = 72 * 3600.0
MIN_DELIVERY_CHECK_SECONDS = 60.0


class Reconciler:
    def __init__(
        self,
        jobs: JobStore,
        results: ResultsTable,
        reports: Bucket,
        events: EventPublisher,
        alerts: Alerts,
        *,
        stalled_after_seconds: float,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self._jobs = jobs
        self._results = results
        self._reports = reports
        self._events = events
        self._alerts = alerts
        self._stalled_after = stalled_after_seconds
        self._clock = clock
        self._metrics = metrics

    def run(self) -> dict[str, str]:
        """Look at every unfinished job once; returns what was decided, by job: completed,
        stalled, or failed (this job's reconciling raised; the others went on)."""
        decided: dict[str, str] = {}
        for job in self._jobs.active(self._clock()):
            if isinstance(job, MalformedJob):
                log.error("job %s: unreadable job record skipped: %s", job.job_id, job.reason)
                decided[job.job_id] = "failed"
                continue
            try:
                outcome = self._reconcile(job)
            # The isolation boundary: whatever one job raises must not stop the other jobs'
            # completion; it is logged with its traceback and counted (an alarm).
            except Exception:
                log.error("job %s: reconciling failed", job.job_id, exc_info=True)
                decided[job.job_id] = "failed"
                continue
            if outcome is not None:
                decided[job.job_id] = outcome
        if self._metrics is not None:
            # JobsStalled and ReconcileFailures drive alarms; zeros keep their graphs continuous.
            outcomes = Counter(decided.values())
            self._metrics.count("JobsCompleted", outcomes["completed"])
            self._metrics.count("JobsStalled", outcomes["stalled"])
            self._metrics.count("ReconcileFailures", outcomes["failed"])
            self._metrics.flush()
        return decided

    def _reconcile(self, job: Job) -> str | None:
        if job.outcomes_key is not None and job.state in ENDED:
            # Finished: here only because its outcome CSV is due to be written again.
            return self._refresh_delivery(job)
        if job.state != "splitting" and job.responses >= job.valid:
            # Every settled row published at least one response and the router counted it, so
            # until the count reaches the valid rows the job cannot be settled: no need to read
            # all its results (a large job's rows) on every run.
            counts = self._results.count_by_outcome(job.job_id)
            # A paused job whose rows have all ended completes too: nothing is left to hold
            # back, and resuming it first would only restart a loop with nothing to release.
            if job_settled(job.rows, job.rejected, counts) and self._complete(job, counts):
                return "completed"
        if job.state in SETTLING and self._check_stalled(job, job.responses):
            return "stalled"
        reason = lifecycle_stall(job, self._clock())
        if reason is not None and job.stalled_since is None:
            self._flag(job, reason)
            return "stalled"
        return None

    def _flag(self, job: Job, reason: str) -> None:
        """Record once on the job (GET /jobs/{id} shows it) why it stopped, and alert."""
        now = self._clock()
        self._jobs.update(job.job_id, stalled_since=now, stalled_reason=reason)
        self._alerts.send(
            f"callqueue: job {job.job_id} stalled",
            {"job_id": job.job_id, "state": job.state, "reason": reason, "since": now},
        )
        log.error("job %s stalled (%s): %s", job.job_id, job.state, reason)

    def _complete(self, job: Job, counts: Mapping[str, int]) -> bool:
        """Write the outcome CSV and mark the job completed; False if its state changed in
        between (another run got there first, or it was paused or cancelled meanwhile)."""
        key, pending = self._write_outcomes(job)
        now = self._clock()
        # A cancelled job stays cancelled; its outcome CSV is written once its rows have ended.
        finished = {"state": "completed"} if job.state != "cancelled" else {}
        try:
            self._jobs.update_if(
                job.job_id,
                (job.state,),
                completed_at=now,
                outcomes_key=key,
                stalled_since=None,
                stalled_reason=None,
                delivery_pending=pending,
                delivery_check_at=next_delivery_check(now, now, pending),
                final_counts=final_counts_record(counts),
                **finished,
            )
        except StateChanged:
            return False
        completed = {
            "job_id": job.job_id,
            "rows": job.rows,
            "outcomes": {"rejected": job.rejected, **dict(counts)},
            "outcomes_csv": self._reports.uri(key),
        }
        self._events.put([(JOB_COMPLETED, completed)])
        log.info("job %s completed", job.job_id)
        return True

    def _write_outcomes(self, job: Job) -> tuple[str, int]:
        """Write the job's outcome CSV as its rows are now; its key, and how many sent rows
        have no final delivery status yet."""
        key = outcomes_key(job.job_id)
        rows = self._rows(job)
        text = io.StringIO()
        kept = Carry.of_job(job).keep_columns
        write_outcomes_csv(text, merge_outcomes(self._rejects(job), rows), kept)
        self._reports.put(key, text.getvalue().encode(), "text/csv")
        tally = DeliveryTally()
        for r in rows:
            tally.add(r.api, r.outcome, r.delivery_status, r.answered_by)
        return key, tally.total_pending()

    def _refresh_delivery(self, job: Job) -> str | None:
        """Write a finished job's outcome CSV again with the delivery statuses that came since,
        and when to next (never, once none is pending or the job is old enough)."""
        if job.delivery_check_at is None:
            return None
        _, pending = self._write_outcomes(job)
        now = self._clock()
        finished = now if job.completed_at is None else job.completed_at
        self._jobs.update(
            job.job_id,
            delivery_pending=pending,
            delivery_check_at=next_delivery_check(finished, now, pending),
        )
        log.info("job %s: outcomes.csv written again, %d deliveries pending", job.job_id, pending)
        return "delivery"

    def _rejects(self, job: Job) -> list[tuple[int, str]]:
        if not job.rejected:
            return []
        text = self._reports.read(rejects_key(job.job_id)).decode("utf-8")
        # keepends: a quoted reason may hold a line break.
        return list(read_rejects_csv(text.splitlines(keepends=True)))

    def _rows(self, job: Job) -> list[RowOutcome]:
        return [
            RowOutcome(
                row=r.row,
                to=r.to,
                api=r.api,
                outcome=r.outcome,
                error_code=r.error_code if r.error_name is None else r.error_name,
                sid=r.sid,
                reason=None,
                carried=r.carried,
                delivery_status=r.delivery_status,
                delivery_error_code=r.delivery_error_code,
                delivered_at=r.delivery_at,
                call_duration=r.call_duration,
                answered_by=r.answered_by,
            )
            for r in self._results.outcomes(job.job_id)
            if r.outcome != "retrying"
        ]

    def _check_stalled(self, job: Job, responses: int) -> bool:
        """A job whose count of responses has not moved for a while is flagged once."""
        now = self._clock()
        if responses != job.progress or job.progress_at is None or _waiting(job, now):
            self._jobs.update(job.job_id, progress=responses, progress_at=now)
            return False
        if job.stalled_at is not None or not is_stalled(
            job.progress_at, now, after_seconds=self._stalled_after
        ):
            return False
        self._jobs.update(
            job.job_id,
            stalled_at=now,
            stalled_since=job.stalled_since or now,
            stalled_reason=job.stalled_reason
            or f"no row has settled for {round((now - job.progress_at) / 60)} minutes",
        )
        self._alerts.send(
            f"callqueue: job {job.job_id} stalled",
            {
                "job_id": job.job_id,
                "responses": responses,
                "rows": job.rows,
                "since": job.progress_at,
            },
        )
        log.error("job %s stalled at %d responses, %d rows", job.job_id, responses, job.rows)
        return True


def next_delivery_check(completed_at: float, now: float, pending: int) -> float | None:
    """When a finished job's outcome CSV is next written again: never once no delivery is
    pending or the job finished DELIVERY_WATCH_SECONDS ago; else after as long again as it has
    been finished, at least a minute: a dozen rewrites in 72 hours, most while callbacks come."""
    if pending == 0 or now - completed_at >= DELIVERY_WATCH_SECONDS:
        return None
    return now + max(MIN_DELIVERY_CHECK_SECONDS, now - completed_at)


def _waiting(job: Job, now: float) -> bool:
    """Whether the job has answers for every row it released and its loop is waiting for a
    later release (a send window that opens later, tomorrow's cap, a scheduled start): no
    progress is expected until then, and the wait counts as progress."""
    return (
        job.next_release_at is not None
        and job.next_release_at > now
        and job.responses >= job.released_rows
    )
