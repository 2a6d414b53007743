"""What the command shows of a run: a progress line while it runs, the summary after it, and
durations as a person reads them."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TextIO

from callqueue.report import OUTCOMES, JobTotals


class Progress:
    """A one-line progress bar on a terminal; a line every few seconds otherwise (CI logs)."""

    WIDTH = 28

    def __init__(self, stream: TextIO, cps: int) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._cps = cps
        self._last_line = 0.0

    def show(self, jobs: Sequence[JobTotals], arrivals: Sequence[float]) -> None:
        now = time.monotonic()
        if not self._tty and now - self._last_line < 2.0:
            return
        self._last_line = now
        line = self._line(jobs, arrivals)
        if self._tty:
            self._stream.write("\r" + line + "\x1b[K")
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def finish(self, jobs: Sequence[JobTotals], arrivals: Sequence[float]) -> None:
        line = self._line(jobs, arrivals)
        self._stream.write(("\r" + line + "\x1b[K\n") if self._tty else line + "\n")
        self._stream.flush()

    def _line(self, jobs: Sequence[JobTotals], arrivals: Sequence[float]) -> str:
        rows = sum(j.totals()["rows"] for j in jobs)
        counts = {o: sum(j.totals()[o] for j in jobs) for o in OUTCOMES}
        done = sum(counts.values())
        pending = max(0, rows - done)
        now = time.time()
        current = sum(1 for t in arrivals if t > now - 1.0)
        filled = int(self.WIDTH * done / rows) if rows else 0
        bar = "#" * filled + "." * (self.WIDTH - filled)
        eta = pending / self._cps if pending else 0.0
        state = "splitting" if any(j.rows is None for j in jobs) else f"{done}/{rows}"
        return (
            f"[{bar}] {state} sent {counts['sent']} failed {counts['failed']} "
            f"rejected {counts['rejected']} suppressed {counts['suppressed']} "
            f"other {counts['unknown'] + counts['dead_lettered']} "
            f"pending {pending} | {current}/s | ETA {duration(eta)}"
        )


def print_summary(report: dict[str, object]) -> None:
    columns = ("rows", *OUTCOMES, "unaccounted")
    header = f"{'job':<34} " + " ".join(f"{c[:8]:>8}" for c in columns)
    print(header)
    jobs = report["jobs"]
    assert isinstance(jobs, list)  # noqa: S101
    for job in jobs:
        totals = job["totals"]
        print(f"{job['job_id'][:34]:<34} " + " ".join(f"{totals[c]:>8}" for c in columns))
        if job.get("error"):
            print(f"  failed: {job['error']}")
    totals = report["totals"]
    assert isinstance(totals, dict)  # noqa: S101
    print(f"{'total':<34} " + " ".join(f"{totals[c]:>8}" for c in columns))
    rate = report["rate"]
    assert isinstance(rate, dict)  # noqa: S101
    print(
        f"rate: target {rate['target_cps']} CPS, achieved {rate['achieved_cps']} CPS, "
        f"max {rate['max_calls_in_any_1s']} calls in any 1 s, "
        f"lag p50 {rate['lag_seconds_p50']} s p99 {rate['lag_seconds_p99']} s; "
        f"{report['duration_seconds']} s in all"
    )
    codes = report["by_error_code"]
    assert isinstance(codes, dict)  # noqa: S101
    if codes:
        print("errors: " + ", ".join(f"{code} x{n}" for code, n in codes.items()))


def duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"
