"""The delivery statuses of a local run's jobs: what the emulator's signed status callbacks, sent
to the runtime's API, recorded on the stack's results table (chalicelib.core.delivery), read for
`callqueue run`'s summary, report and --outcomes, and waited for once the rows have settled."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, NamedTuple

from chalicelib.aws.result_items import RowResult
from chalicelib.aws.results_table import ResultsTable
from downstream.reconcile import RowOutcome

if TYPE_CHECKING:
    from callqueue.local.runtime import LocalRuntime

# A run that reads the results table again and again reads it in moto's small pages.
_PAGE_SIZE = 200

View = dict[str, dict[str, int]]


def _table(runtime: LocalRuntime) -> ResultsTable:
    return ResultsTable(
        runtime.client("dynamodb"), runtime.env["RESULTS_TABLE"], page_size=_PAGE_SIZE
    )


class Deliveries(NamedTuple):
    """Each submitted job's delivery counts by API, the error codes of the final statuses (all
    jobs), and how many sent rows the results table does not have yet (its sink writes in
    batches, after the run has counted them from the response topic)."""

    views: dict[str, View]
    error_codes: dict[str, int]
    missing: int

    @property
    def pending(self) -> int:
        views = self.views.values()
        return self.missing + sum(c.get("pending", 0) for v in views for c in v.values())


def deliveries(runtime: LocalRuntime) -> Deliveries:
    table = _table(runtime)
    views, codes, missing = {}, Counter[str](), 0
    for submitted in runtime.jobs:
        progress = table.progress(submitted.job_id, 0.0)
        views[submitted.job_id] = progress.delivery.view()
        codes.update(progress.delivery.error_codes())
        sent = runtime.tally.counts(submitted.job_id).get("sent", 0)
        missing += max(0, sent - progress.counts.get("sent", 0))
    return Deliveries(views, dict(sorted(codes.items())), missing)


def wait_for_deliveries(
    runtime: LocalRuntime,
    quiet_limit: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    # Each look reads every item of every job (moto pages of 200): once a second is enough for
    # statuses that come a step apart.
    poll: float = 1.0,
) -> Deliveries:
    """The jobs' deliveries once no sent row is waiting for its final status, or once none has
    come for `quiet_limit` seconds (0: read once, do not wait)."""
    now = last = deliveries(runtime)
    changed_at = clock()
    while now.pending and quiet_limit > 0 and clock() - changed_at < quiet_limit:
        sleep(poll)
        now = deliveries(runtime)
        if now != last:
            last, changed_at = now, clock()
    return now


def with_delivery(
    runtime: LocalRuntime, job_id: str, outcomes: list[RowOutcome]
) -> list[RowOutcome]:
    """The job's outcome rows with what the results table holds of their delivery."""
    rows: dict[int, RowResult] = {r.row: r for r in _table(runtime).outcomes(job_id)}
    merged = []
    for outcome in outcomes:
        result = rows.get(outcome.row)
        if result is None or outcome.outcome == "rejected":
            merged.append(outcome)
            continue
        merged.append(
            replace(
                outcome,
                delivery_status=result.delivery_status,
                delivery_error_code=result.delivery_error_code,
                delivered_at=result.delivery_at,
                call_duration=result.call_duration,
                answered_by=result.answered_by,
            )
        )
    return merged
