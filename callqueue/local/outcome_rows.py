"""The rows of `callqueue run --outcomes`: each job's outcomes as a deployed job's outcomes.csv
has them (downstream.reconcile.RowOutcome), from the runtime's tally and rejects report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from callqueue.local.deliveries import with_delivery
from chalicelib.intake.carry import Carry
from downstream.reconcile import RowOutcome

if TYPE_CHECKING:
    from callqueue.local.outcomes import Tally
    from callqueue.local.runtime import LocalRuntime


def kept_columns(runtime: LocalRuntime) -> list[str]:
    """The columns the run's jobs kept, each once, in the order the jobs name them."""
    kept: list[str] = []
    for submitted in runtime.jobs:
        job = runtime.job(submitted.job_id)
        if job is not None:
            kept += [c for c in Carry.of_job(job).keep_columns if c not in kept]
    return kept


def job_outcomes(runtime: LocalRuntime, tally: Tally, job_id: str) -> list[RowOutcome]:
    """Every settled or rejected row of the job, by row."""
    outcomes = [
        RowOutcome(row, None, None, "rejected", None, None, reason)
        for row, reason in runtime.rejects(job_id)
    ]
    for row, outcome, code in tally.rows(job_id):
        details = tally.details.get((job_id, row), {})
        outcomes.append(
            RowOutcome(
                row=row,
                to=details.get("to"),
                api=details.get("api"),
                outcome=outcome,
                error_code=code,
                sid=details.get("sid"),
                reason=None,
                carried=details.get("carried", {}),
            )
        )
    return with_delivery(runtime, job_id, sorted(outcomes, key=lambda o: o.row))
