"""What the commands on a deployed stack show: a job's status, the summary after `submit`, and
the jobs as `run`'s progress line takes them."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

from callqueue.cli.progress import duration, wait_text
from callqueue.report import OUTCOMES, JobTotals

if TYPE_CHECKING:
    from callqueue.client import Job, JobStatus

# Rejected rows shown after a submit; the rest are in rejects.csv.
SHOWN_REJECTS = 5


class SettledRate:
    """An estimate of when rows settled, for the progress line's calls per second: the rows
    that settled between two polls, spread evenly over the time between them. Only the last
    few seconds are kept (the line counts the last one)."""

    KEEP_SECONDS = 5.0

    def __init__(self) -> None:
        self._last: tuple[float, int] | None = None
        self._times: list[float] = []

    def observe(self, now: float, settled: int) -> list[float]:
        if self._last is not None:
            before, count = self._last
            new = settled - count
            if new > 0 and now > before:
                step = (now - before) / new
                self._times.extend(before + step * (i + 1) for i in range(new))
        self._last = (now, settled)
        self._times = [t for t in self._times if t > now - self.KEEP_SECONDS]
        return list(self._times)


def totals_of(statuses: Sequence[JobStatus], files: Sequence[str]) -> list[JobTotals]:
    """The jobs as `run`'s progress line and summary count them."""
    return [
        JobTotals(
            s.job_id,
            file,
            s.state,
            s.rows,
            dict(s.counts),
            s.error,
            # Its first row is due at its start (the ETA counts from there).
            starts_at=s.start_at if s.waiting_for == "start" else None,
            waiting_for=s.waiting_for,
            next_release_at=s.next_release_at,
            delivery=s.delivery,
        )
        for s, file in zip(statuses, files, strict=True)
    ]


def print_status(status: JobStatus) -> None:
    raw = status.raw
    print(f"job       {status.job_id}")
    state = status.state
    if raw.get("chunks") and state != "scheduled":
        state += f" (chunks released {raw.get('released_chunks', 0)}/{raw['chunks']})"
    note = wait_text(status.waiting_for, status.start_at, status.next_release_at, time.time())
    if note:
        state = note if state == "scheduled" else f"{state}, {note}"
    print(f"state     {state}")
    if raw.get("send_window"):
        print(
            f"window    {raw['send_window']} {raw.get('send_days') or ''} (recipients' local time)"
        )
    if raw.get("max_per_day"):
        print(f"per day   at most {raw['max_per_day']} rows")
    if status.error:
        print(f"error     {status.error}")
    stalled = raw.get("stalled")
    if isinstance(stalled, dict):
        print(f"stalled   {stalled.get('reason')}")
    if status.rows is not None:
        pending = "" if status.pending is None else f", {status.pending} pending"
        print(f"rows      {status.rows}{pending}")
    print("outcomes  " + ", ".join(f"{o} {status.counts.get(o, 0)}" for o in OUTCOMES))
    for api, counts in status.delivery.items():
        print(f"{api:<9} " + ", ".join(f"{name} {n}" for name, n in counts.items()))
    if status.delivery_error_codes:
        listed = ", ".join(f"{code} x{n}" for code, n in status.delivery_error_codes.items())
        print(f"delivery  errors: {listed}")
    rate = f"target {status.target_cps} CPS"
    if status.current_cps is not None:
        rate += f", now {status.current_cps:g} CPS"
    if status.eta_seconds is not None:
        rate += f"; last row due in {duration(status.eta_seconds)}"
    print(f"rate      {rate}")
    ready = [
        name
        for name, url in (("outcomes", status.outcomes_url), ("rejects", status.rejects_url))
        if url
    ]
    if ready:
        print("reports   " + ", ".join(f"`callqueue {r} {status.job_id}`" for r in ready))


def print_summary(statuses: Sequence[JobStatus], files: Sequence[str], jobs: Sequence[Job]) -> None:
    """Each job's counts by outcome, the Twilio error codes of its rows, and its first rejected
    rows with their reasons (where the rest are)."""
    columns = ("rows", *OUTCOMES, "unaccounted")
    width = max(len("job"), *(len(s.job_id) for s in statuses))
    print(f"{'job':<{width}} {'state':<10} " + " ".join(f"{c:>{len(c)}}" for c in columns))
    for total in totals_of(statuses, files):
        counts = total.totals()
        print(
            f"{total.job_id:<{width}} {total.state:<10} "
            + " ".join(f"{counts[c]:>{len(c)}}" for c in columns)
        )
        if total.error:
            print(f"  {total.state}: {total.error}")
        for api, delivered in total.delivery.items():
            listed = ", ".join(f"{name} {n}" for name, n in delivered.items())
            print(f"  {api}: {listed}")
    for status, job in zip(statuses, jobs, strict=True):
        _print_details(status, job)


def _print_details(status: JobStatus, job: Job) -> None:
    prefix = f"{status.job_id}: "
    if status.outcomes_url is not None:
        codes = Counter(o.error_code for o in job.iter_outcomes() if o.error_code)
        if codes:
            listed = ", ".join(f"{code} x{n}" for code, n in sorted(codes.items()))
            print(f"{prefix}errors: {listed}")
    if status.rejects_url is not None and status.counts.get("rejected"):
        rejects = job.rejects()
        for reject in rejects[:SHOWN_REJECTS]:
            print(f"{prefix}rejected row {reject.row}: {reject.reason}")
        if len(rejects) > SHOWN_REJECTS:
            print(
                f"{prefix}... {len(rejects) - SHOWN_REJECTS} more: "
                f"`callqueue rejects {status.job_id} -o rejects.csv`"
            )


def local_time(epoch: float | None) -> str:
    return "" if epoch is None else time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(epoch))
