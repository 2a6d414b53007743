"""Systemic errors: one wrong setting (bad credentials, a From number the account does not own,
a region not enabled) would fail every row of a file, so after a few such failures the job is
paused and an alert goes out; `callqueue resume JOB` continues it.

A few rows with a bad sender among many good ones are those rows' own failures, not a wrong
setting: a job is paused when its systemic errors reach the threshold *and* are at least half of
its responses so far. The router counts responses and writes the count into each error's event
as it routes it; the share is judged against the highest such count seen for the job (kept on
the job), so it neither shrinks while an event travels (EventBridge, a queue, a poll) and good
responses behind it are counted, nor grows when an early error's event is handled late.
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from chalicelib.aws.alerts import Alerts
from chalicelib.aws.jobs_table import JobStore, StateChanged
from chalicelib.core.jobs import SENDING

log = logging.getLogger(__name__)

# The job's highest response count carried by a systemic error's event.
ROUTED_RESPONSES = "systemic_routed_responses"


class SystemicErrors:
    def __init__(
        self,
        jobs: JobStore,
        alerts: Alerts,
        *,
        threshold: int,
        min_share: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._jobs = jobs
        self._min_share = min_share
        self._alerts = alerts
        self._threshold = threshold
        self._clock = clock

    def handle(self, events: Sequence[Mapping[str, Any]]) -> list[str]:
        """Count each job's systemic errors; pause the jobs that reached the threshold.
        Returns the jobs this call paused."""
        codes: dict[str, Counter[int]] = defaultdict(Counter)
        routed: dict[str, int] = {}
        for event in events:
            detail = event["detail"]
            job_id = str(detail["job_id"])
            codes[job_id][int(detail["ErrorCode"])] += 1
            if detail.get("responses") is not None:
                routed[job_id] = max(routed.get(job_id, 0), int(detail["responses"]))
        paused = []
        for job_id, counter in codes.items():
            # The highest count is kept from every batch, below the threshold too: an early
            # error's event handled after later ones is then judged against their count.
            highest = (
                self._jobs.raise_to(job_id, ROUTED_RESPONSES, routed[job_id])
                if job_id in routed
                else None
            )
            total = self._jobs.add(job_id, "systemic_errors", sum(counter.values()))
            if total is None:
                log.warning("systemic errors for unknown job %s", job_id)
                continue
            if total < self._threshold:
                continue
            if highest is not None:
                responses = max(total, highest)
            else:  # an event routed before its count was carried (a deploy in between)
                job = self._jobs.get(job_id)
                responses = max(total, job.responses if job is not None else 0)
            if total >= self._min_share * responses and self._pause(job_id, counter, total):
                paused.append(job_id)
        return paused

    def _pause(self, job_id: str, codes: Counter[int], total: int) -> bool:
        try:
            self._jobs.update_if(job_id, SENDING, state="paused", paused_at=self._clock())
        except StateChanged:
            return False  # already paused (by an earlier batch), finished or cancelled
        summary = ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))
        log.warning("job %s paused after %d systemic errors (%s)", job_id, total, summary)
        self._alerts.send(
            f"callqueue: job {job_id} paused",
            {
                "job_id": job_id,
                "reason": "systemic Twilio errors",
                "systemic_errors": total,
                "error_codes": {str(k): v for k, v in codes.items()},
                "resume": f"callqueue resume {job_id}",
            },
        )
        return True
