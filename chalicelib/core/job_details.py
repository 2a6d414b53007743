"""What a job record holds of a campaign beyond its counts: the cost the splitter estimated, the
user's columns that travel with each row, and its timing (start, send window, daily cap, what its
rows wait for); as the record stores them and as the API shows them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, Final, Literal
from zoneinfo import ZoneInfo

from chalicelib.core.costs import CostEstimate
from chalicelib.core.jobs import RELEASING, SENDING, Job
from chalicelib.core.schedule import Schedule

Wait = Literal["start", "send window", "daily cap"]
_UTC: Final = ZoneInfo("UTC")


def cost_fields(cost: CostEstimate | None) -> dict[str, str]:
    """The job record's `estimated_cost` for a split's estimate (nothing without one)."""
    return {} if cost is None else {"estimated_cost": json.dumps(cost.summary())}


def job_extras(job: Job) -> dict[str, Any]:
    """GET /jobs/{id}'s `estimated_cost` (None until split, or for a job split before costs
    were estimated), `reference_column`, `keep_columns` and `retry_of`."""
    # Only the splitter writes it, as JSON (cost_fields).
    cost = json.loads(job.estimated_cost) if job.estimated_cost else None
    keep = [c for c in (job.keep_columns or "").split(",") if c]
    return {
        "estimated_cost": cost,
        "reference_column": job.reference_column or "reference",
        "keep_columns": keep,
        "retry_of": job.retry_of,
    }


def waiting_for(job: Job, now: float, zone: ZoneInfo = _UTC) -> Wait | None:
    """What a job's rows wait for at `now`: its start, a send window or a daily cap (days of the
    account's `zone`); None while its rows are due at its rate, or it releases nothing.

    A job releasing at its rate has its next row due within one window (and the release lead)
    of now (chalicelib.release.releaser); a later one means the loop waits in one Wait."""
    if job.state not in RELEASING or job.next_slot_at is None:
        return None
    if job.state == "scheduled" and (job.start_at or 0.0) > now:
        return "start"
    pacing = Schedule(job.cps, job.window_seconds)
    if job.next_slot_at <= now + pacing.lead_seconds + job.window_seconds:
        return None
    if job.send_window is None or _capped_today(job, now, zone):
        return "daily cap"
    return "send window"


def _capped_today(job: Job, now: float, zone: ZoneInfo) -> bool:
    if job.max_per_day is None:
        return False
    day = datetime.fromtimestamp(now, zone).date().isoformat()
    return int(json.loads(job.day_counts or "{}").get(day, 0)) >= job.max_per_day


def utc_iso(epoch: float | None) -> str | None:
    """ISO 8601 in UTC to the second, as the API shows a job's times of day."""
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def timing_view(job: Job, now: float, zone: ZoneInfo = _UTC) -> dict[str, Any]:
    """GET /jobs/{id}'s timing: the settings, the rows released so far, what the rows wait for
    and when the release loop next releases (`next_window` while they wait, else null)."""
    waiting = waiting_for(job, now, zone)
    next_release = utc_iso(job.next_release_at) if job.state in RELEASING else None
    return {
        "start_at": utc_iso(job.start_at),
        "send_window": job.send_window,
        "send_days": job.send_days,
        "max_per_day": job.max_per_day,
        "released_rows": job.released_rows,
        "waiting_for": waiting,
        "next_release_at": next_release,
        "next_window": utc_iso(job.next_slot_at) if waiting is not None else None,
    }


def eta_seconds(job: Job, now: float, *, account_capped: bool = False) -> float | None:
    """Seconds until the job's last row is due; None while it is not sending (splitting,
    paused) or is finished, and when only a plan could tell: its rows wait for send windows or
    a daily cap (the job's, or the account's when `account_capped`)."""
    if job.state not in SENDING or job.started_at is None:
        return None
    if job.send_window is not None or job.max_per_day is not None or account_capped:
        return None
    if job.released_rows and job.next_slot_at is not None:
        # The rows not yet out follow at the job's (current) rate from the next slot; with
        # none left, the last row out was due one slot before it.
        last_due = job.next_slot_at + (job.valid - job.released_rows - 1) / job.cps
    else:
        last_due = job.started_at + Schedule(job.cps, job.window_seconds).eta_seconds(job.valid)
    return round(max(0.0, last_due - now), 3)
