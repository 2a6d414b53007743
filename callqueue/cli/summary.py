"""The summary a run ends with (rich, on standard output): every job's outcomes under their full
names, the rate, the error codes with what they mean, and the first rejected rows with their
reasons and where the whole list is. Tables fit the console's width by wrapping cells, never by
cutting names."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from callqueue.cli.twilio_codes import name_of
from callqueue.report import OUTCOMES
from chalicelib.core.delivery import FINAL_STATUSES

# Rejected rows shown per job; the rest are in the file the summary names.
REJECTS_SHOWN = 5

_MEANINGS = {
    "rows": "in the file",
    "rejected": "invalid, never called",
    "suppressed": "number on the suppression list",
    "sent": "Twilio accepted the call",
    "failed": "Twilio refused it",
    "unknown": "no answer; Twilio may have it",
    "dead_lettered": "gave up retrying",
    "unaccounted": "no outcome yet",
}


# What each final status means, as docs/outcomes.md says it.
_DELIVERY_MEANINGS = {
    "messages": {
        "delivered": "the carrier confirmed delivery",
        "undelivered": "the carrier could not deliver it (see the error codes)",
        "failed": "Twilio could not send it (see the error codes)",
        "canceled": "a scheduled message cancelled before it was sent",
        "pending": "no final status yet (or no status callback)",
        "read": "read (WhatsApp), counted in delivered too",
    },
    "calls": {
        "completed": "answered and ended",
        "busy": "the line was busy",
        "no-answer": "rang, nobody answered",
        "failed": "could not be placed",
        "canceled": "cancelled before it was answered",
        "pending": "no final status yet (or no status callback)",
        "answered_by_machine": "answered by a machine (MachineDetection), in completed too",
    },
}
_EXTRA = {"messages": ("read",), "calls": ("answered_by_machine",)}


def print_summary(
    console: Console,
    report: Mapping[str, Any],
    rejects: Mapping[str, Sequence[tuple[int, str]]],
    rejects_file: Path | None,
) -> None:
    """`rejects`: each job's rejected rows (row, reason); `rejects_file`: where they were all
    written, or None when they were not."""
    _outcomes(console, report)
    rate = report["rate"]
    console.print(
        f"rate: target {rate['target_cps']} calls/s, achieved {rate['achieved_cps']}, "
        f"at most {rate['max_calls_in_any_1s']} in any second; lag p50 "
        f"{rate['lag_seconds_p50']} s, p99 {rate['lag_seconds_p99']} s; "
        f"{report['duration_seconds']} s in all",
        highlight=False,
    )
    _delivery(console, report)
    _error_codes(console, report["by_error_code"])
    _error_codes(console, report["by_delivery_error_code"], "delivery error code")
    _rejects(console, report, rejects, rejects_file)


def _outcomes(console: Console, report: Mapping[str, Any]) -> None:
    jobs = report["jobs"]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column("outcome", no_wrap=True)
    for job in jobs:
        table.add_column(PurePath(job["file"]).name, justify="right", overflow="fold")
    if len(jobs) > 1:
        table.add_column("total", justify="right")
    table.add_column("meaning", style="dim", ratio=1)
    for name in ("rows", *OUTCOMES, "unaccounted"):
        cells = [str(job["totals"][name]) for job in jobs]
        if len(jobs) > 1:
            cells.append(str(report["totals"][name]))
        table.add_row(name.replace("_", " "), *cells, _MEANINGS[name])
    console.print(table)
    for job in jobs:
        line = f"{PurePath(job['file']).name}: job {job['job_id']}, {job['state']}"
        console.print(line, highlight=False)
        if job.get("error"):
            console.print(f"  failed: {job['error']}", highlight=False)


def _delivery(console: Console, report: Mapping[str, Any]) -> None:
    """The sent rows by the final status Twilio's callbacks gave them, per API that has any."""
    jobs = report["jobs"]
    for api, statuses in FINAL_STATUSES.items():
        if api not in report.get("delivery", {}):
            continue
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        table.add_column(f"{api[:-1]} status", no_wrap=True)
        for job in jobs:
            table.add_column(PurePath(job["file"]).name, justify="right", overflow="fold")
        if len(jobs) > 1:
            table.add_column("total", justify="right")
        table.add_column("meaning", style="dim", ratio=1)
        total = report["delivery"][api]
        names = [*statuses, "pending", *(n for n in _EXTRA[api] if total.get(n))]
        for name in names:
            cells = [str(job.get("delivery", {}).get(api, {}).get(name, 0)) for job in jobs]
            if len(jobs) > 1:
                cells.append(str(total.get(name, 0)))
            table.add_row(name, *cells, _DELIVERY_MEANINGS[api][name])
        console.print(table)


def _error_codes(console: Console, codes: Mapping[str, int], title: str = "error code") -> None:
    if not codes:
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    table.add_column(title, no_wrap=True)
    table.add_column("rows", justify="right")
    table.add_column("meaning", ratio=1)
    for code, count in sorted(codes.items(), key=lambda item: -item[1]):
        table.add_row(code, str(count), name_of(code))
    console.print(table)


def _rejects(
    console: Console,
    report: Mapping[str, Any],
    rejects: Mapping[str, Sequence[tuple[int, str]]],
    rejects_file: Path | None,
) -> None:
    total = 0
    for job in report["jobs"]:
        rows = rejects.get(job["job_id"], ())
        total += len(rows)
        if not rows:
            continue
        shown = min(len(rows), REJECTS_SHOWN)
        console.print(
            f"rejected rows of {PurePath(job['file']).name} (first {shown} of {len(rows)}):",
            highlight=False,
        )
        # A reason wraps under itself, not under the row numbers.
        grid = Table.grid(padding=(0, 1), pad_edge=False)
        grid.add_column(justify="right", no_wrap=True)
        grid.add_column(overflow="fold")
        for row, reason in rows[:REJECTS_SHOWN]:
            grid.add_row(f"  row {row}:", Text(reason))
        console.print(grid)
    if not total:
        return
    if rejects_file is not None:
        console.print(f"all {total} rejected rows with their reasons:", highlight=False)
        # A path stays whole (the terminal wraps it, if it must), so it can be copied.
        console.print(f"  {rejects_file}", soft_wrap=True, highlight=False, markup=False)
    else:
        console.print(
            f"all {total} with their reasons: pass --rejects FILE, "
            "or `callqueue plan FILE` (sends nothing)",
            highlight=False,
            markup=False,
        )
