"""The job reconciler (a schedule): marks a job complete when every row has its final outcome,
writes the job's per-row outcome CSV and announces it; flags jobs whose rows stopped moving."""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from chalicelib.jobs import Job, JobStore, StateChanged
from chalicelib.observability import Metrics
from chalicelib.storage import rejects_key
from downstream.reconcile import (
    RowOutcome,
    is_stalled,
    job_settled,
    merge_outcomes,
    read_rejects_csv,
    write_outcomes_csv,
)
from downstream.results import ResultsTable
from downstream.router import JOB_COMPLETED, SOURCE

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_s3 import S3Client
    from mypy_boto3_sns import SNSClient

log = logging.getLogger(__name__)


def outcomes_key(job_id: str) -> str:
    return f"jobs/{job_id}/outcomes.csv"


class Reconciler:
    def __init__(
        self,
        jobs: JobStore,
        results: ResultsTable,
        s3: S3Client,
        reports_bucket: str,
        events: EventBridgeClient,
        bus: str,
        sns: SNSClient,
        alert_topic_arn: str,
        *,
        stalled_after_seconds: float,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self._jobs = jobs
        self._results = results
        self._s3 = s3
        self._reports = reports_bucket
        self._events = events
        self._bus = bus
        self._sns = sns
        self._alerts = alert_topic_arn
        self._stalled_after = stalled_after_seconds
        self._clock = clock
        self._metrics = metrics

    def run(self) -> dict[str, str]:
        """Look at every unfinished job once; returns what was decided, by job."""
        decided: dict[str, str] = {}
        for job in self._jobs.active():
            if job.state == "paused":
                continue
            # Every settled row published at least one response and the router counted it, so
            # until the count reaches the valid rows the job cannot be settled: no need to read
            # all its results (a large job's rows) on every run.
            if job.responses >= job.valid:
                counts = self._results.count_by_outcome(job.job_id)
                if job_settled(job.rows, job.rejected, counts):
                    self._complete(job, counts)
                    decided[job.job_id] = "completed"
                    continue
            if self._check_stalled(job, job.responses):
                decided[job.job_id] = "stalled"
        if self._metrics is not None:
            # JobsStalled drives the job-stalled alarm; zeros keep its graph continuous.
            outcomes = Counter(decided.values())
            self._metrics.count("JobsCompleted", outcomes["completed"])
            self._metrics.count("JobsStalled", outcomes["stalled"])
            self._metrics.flush()
        return decided

    def _complete(self, job: Job, counts: Mapping[str, int]) -> None:
        key = outcomes_key(job.job_id)
        text = io.StringIO()
        write_outcomes_csv(text, merge_outcomes(self._rejects(job), self._rows(job)))
        self._s3.put_object(
            Bucket=self._reports, Key=key, Body=text.getvalue().encode(), ContentType="text/csv"
        )
        # A cancelled job stays cancelled; its outcome CSV is written once its rows have ended.
        finished = {"state": "completed"} if job.state != "cancelled" else {}
        try:
            self._jobs.update_if(
                job.job_id,
                ("cancelled",) if job.state == "cancelled" else ("running", "released"),
                completed_at=self._clock(),
                outcomes_key=key,
                **finished,
            )
        except StateChanged:
            return  # another run (or a pause) got there first
        self._events.put_events(
            Entries=[
                {
                    "Source": SOURCE,
                    "DetailType": JOB_COMPLETED,
                    "EventBusName": self._bus,
                    "Detail": json.dumps(
                        {
                            "job_id": job.job_id,
                            "rows": job.rows,
                            "outcomes": {"rejected": job.rejected, **dict(counts)},
                            "outcomes_csv": f"s3://{self._reports}/{key}",
                        }
                    ),
                }
            ]
        )
        log.info("job %s completed", job.job_id)

    def _rejects(self, job: Job) -> list[tuple[int, str]]:
        if not job.rejected:
            return []
        body = self._s3.get_object(Bucket=self._reports, Key=rejects_key(job.job_id))["Body"]
        # keepends: a quoted reason may hold a line break.
        return list(read_rejects_csv(body.read().decode("utf-8").splitlines(keepends=True)))

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
            )
            for r in self._results.outcomes(job.job_id)
            if r.outcome != "retrying"
        ]

    def _check_stalled(self, job: Job, responses: int) -> bool:
        """A job whose count of responses has not moved for a while is flagged once."""
        now = self._clock()
        if responses != job.progress or job.progress_at is None:
            self._jobs.update(job.job_id, progress=responses, progress_at=now)
            return False
        if job.stalled_at is not None or not is_stalled(
            job.progress_at, now, after_seconds=self._stalled_after
        ):
            return False
        self._jobs.update(job.job_id, stalled_at=now)
        self._sns.publish(
            TopicArn=self._alerts,
            Subject=f"callqueue: job {job.job_id} stalled"[:100],
            Message=json.dumps(
                {
                    "job_id": job.job_id,
                    "responses": responses,
                    "rows": job.rows,
                    "since": job.progress_at,
                }
            ),
        )
        log.warning("job %s stalled at %d responses, %d rows", job.job_id, responses, job.rows)
        return True
