"""The run report: every row's outcome, the rate achieved and the AWS requests made."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.delivery import merged_view

OUTCOMES = ("rejected", "suppressed", "sent", "failed", "unknown", "dead_lettered")


@dataclass(frozen=True)
class JobTotals:
    job_id: str
    file: str
    state: str
    rows: int | None
    counts: Mapping[str, int]
    error: str | None = None
    # When the job's first row is due (epoch seconds): its chunks are released a lead before.
    starts_at: float | None = None
    # Rows whose last attempt failed in a way worth another (a 429, a reset): not yet settled.
    retrying: int = 0
    # What the job's rows wait for ("start", "send window", "daily cap"; None: nothing), and
    # when its release loop next releases.
    waiting_for: str | None = None
    next_release_at: float | None = None
    # Sent rows by the final status their status callbacks gave (chalicelib.core.delivery).
    delivery: Mapping[str, Mapping[str, int]] = field(default_factory=dict)

    def totals(self) -> dict[str, int]:
        totals = {"rows": self.rows or 0, **{o: int(self.counts.get(o, 0)) for o in OUTCOMES}}
        totals["unaccounted"] = totals["rows"] - sum(totals[o] for o in OUTCOMES)
        return totals

    @property
    def settled(self) -> bool:
        """Every row has its final outcome, or the job failed as a whole."""
        if self.state == "failed":
            return True
        return self.rows is not None and self.state != "splitting" and not self.unaccounted

    @property
    def unaccounted(self) -> int:
        return self.totals()["unaccounted"]


def max_in_window(times: Sequence[float], width: float) -> int:
    """The largest number of events in any half-open interval of `width` seconds."""
    ordered = sorted(times)
    best = start = 0
    for end, t in enumerate(ordered):
        while ordered[start] <= t - width:
            start += 1
        best = max(best, end - start + 1)
    return best


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def rate(
    arrivals: Sequence[float],
    first_attempts: Sequence[float],
    lags: Sequence[float],
    target_cps: int,
) -> dict[str, Any]:
    """`arrivals`: every call Twilio received; `first_attempts`: when each row's first call
    started (retries come later, by design, so they do not count towards the achieved rate)."""
    achieved = 0.0
    if len(first_attempts) > 1:
        span = max(first_attempts) - min(first_attempts)
        achieved = (len(first_attempts) - 1) / span if span > 0 else float(len(first_attempts))
    p50, p99 = percentile(lags, 0.5), percentile(lags, 0.99)
    return {
        "target_cps": target_cps,
        "achieved_cps": round(achieved, 3),
        "max_calls_in_any_1s": max_in_window(arrivals, 1.0),
        "max_calls_in_any_100ms": max_in_window(arrivals, 0.1),
        "calls": len(arrivals),
        "lag_seconds_p50": None if p50 is None else round(p50, 3),
        "lag_seconds_p99": None if p99 is None else round(p99, 3),
    }


def build_report(
    jobs: Iterable[JobTotals],
    *,
    error_codes: Mapping[str, int],
    arrivals: Sequence[float],
    first_attempts: Sequence[float],
    lags: Sequence[float],
    target_cps: int,
    aws_requests: Mapping[str, int],
    duration_seconds: float,
    sender_scheduling: str | None = None,
    delivery_error_codes: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """`error_codes`: the API responses' Twilio codes; `delivery_error_codes`: those of the
    sent rows' final delivery statuses (30003, ...)."""
    job_list = list(jobs)
    totals: Counter[str] = Counter()
    for job in job_list:
        totals.update(job.totals())
    return {
        "totals": {k: totals.get(k, 0) for k in ("rows", *OUTCOMES, "unaccounted")},
        "delivery": merged_view([job.delivery for job in job_list]),
        "by_error_code": dict(sorted(error_codes.items())),
        "by_delivery_error_code": dict(sorted((delivery_error_codes or {}).items())),
        "rate": rate(arrivals, first_attempts, lags, target_cps),
        "aws_requests": dict(sorted(aws_requests.items())),
        "jobs": [
            {
                "job_id": job.job_id,
                "file": job.file,
                "state": job.state,
                "error": job.error,
                "totals": job.totals(),
                "delivery": {api: dict(counts) for api, counts in job.delivery.items()},
            }
            for job in job_list
        ],
        "duration_seconds": round(duration_seconds, 3),
        "sender_scheduling": sender_scheduling,
    }
