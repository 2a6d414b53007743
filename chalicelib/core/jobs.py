"""A job's record, its states and the moves between them: the one place they are written down.

    splitting -> scheduled (its start is later) | running | completed (nothing to send)
                 | failed | duplicate
    scheduled -> running (its start came) | paused | cancelled | failed
    running   -> released (every chunk out) | paused | cancelled | failed
    released  -> completed (every row has its outcome) | paused | cancelled
    paused    -> scheduled | running | released (resumed) | cancelled
                 | completed (every row ended anyway)
    cancelled, completed, failed, duplicate: final (a cancelled job still gets its outcomes.csv)

The groups other modules use (SENDING for what a pause stops, CANCELLABLE, FINAL, ...) are
derived from the table or named beside it, and a change of state is made conditional on its
group (JobStore.update_if), so two changes racing cannot make a move the table does not allow.
tests/unit/test_job_states.py checks that no other module spells out its own tuple of states.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from chalicelib.core.records import FINAL_OUTCOMES

JobState = Literal[
    "splitting",
    # Split and planned; nothing is released before its start (start_at).
    "scheduled",
    "running",
    "released",
    "paused",
    "completed",
    "failed",
    "cancelled",
    # The same content as another job within the retention window: nothing released.
    "duplicate",
]

TRANSITIONS: Final[Mapping[JobState, frozenset[JobState]]] = {
    "splitting": frozenset({"scheduled", "running", "completed", "failed", "duplicate"}),
    "scheduled": frozenset({"running", "paused", "cancelled", "failed"}),
    "running": frozenset({"released", "paused", "cancelled", "failed"}),
    "released": frozenset({"completed", "paused", "cancelled"}),
    "paused": frozenset({"scheduled", "running", "released", "cancelled", "completed"}),
    "cancelled": frozenset(),
    "completed": frozenset(),
    "failed": frozenset(),
    "duplicate": frozenset(),
}


def sources_of(target: JobState) -> tuple[JobState, ...]:
    """The states a job may move to `target` from, in the table's order."""
    return tuple(state for state, targets in TRANSITIONS.items() if target in targets)


# Rows are being called: what a pause stops.
SENDING: Final = sources_of("paused")
# What a cancel may stop.
CANCELLABLE: Final = sources_of("cancelled")
# No move leads out of these: the release loop ends.
FINAL: Final = tuple(state for state, targets in TRANSITIONS.items() if not targets)
# The sender calls none of these jobs' rows (a paused job's wait; a cancelled job's end).
HELD: Final[tuple[JobState, ...]] = ("paused", "cancelled")
# Jobs whose release loop has chunks to release (a cancelled job's are released at once).
LOOPING: Final[tuple[JobState, ...]] = ("scheduled", "running", "paused", "cancelled")
# Jobs whose rows are expected to keep settling: the reconciler flags one whose count stops.
SETTLING: Final[tuple[JobState, ...]] = ("running", "released", "cancelled")
# Jobs the reconciler looks at: not final, and a cancelled job until its outcomes are written.
ACTIVE: Final[tuple[JobState, ...]] = ("splitting", "scheduled", "running", "released", "paused")
# Jobs whose release loop releases rows when their time comes.
RELEASING: Final[tuple[JobState, ...]] = ("scheduled", "running")
# Jobs whose rate may change: rows are still to be released (chalicelib.release.rate).
RATE_CHANGEABLE: Final[tuple[JobState, ...]] = ("scheduled", "running", "paused")
# Jobs whose failed rows may be sent again as a new job (chalicelib.api.retry).
RETRIABLE: Final[tuple[JobState, ...]] = ("completed", "cancelled")
# Jobs whose rows have all ended: their outcomes.csv is written, and written again as delivery
# statuses come (downstream.reconciler).
ENDED: Final[tuple[JobState, ...]] = ("completed", "cancelled")


@dataclass(frozen=True)
class Job:
    job_id: str
    bucket: str
    key: str
    etag: str
    state: JobState
    cps: int
    window_seconds: int
    created_at: float
    rows: int = 0
    valid: int = 0
    rejected: int = 0
    chunks: int = 0
    started_at: float | None = None
    released_chunks: int = 0
    error: str | None = None
    rejects_key: str | None = None
    paused_at: float | None = None
    systemic_errors: int = 0
    outcomes_key: str | None = None
    stalled_at: float | None = None
    completed_at: float | None = None
    # Responses the reconciler last saw, and when that count last changed.
    progress: int = 0
    progress_at: float | None = None
    # Responses the router has seen (every attempt).
    responses: int = 0
    cancelled_at: float | None = None
    # The release loop's current Step Functions execution is the job's id for 0, else
    # `{job_id}-g{n}` (chalicelib/release/state_machine.py): raised as the loop continues as new.
    loop_generation: int = 0
    # Set by the reconciler when the job stopped progressing in a state that should move on
    # (splitting, released, paused), with why; the intake records the splitter's attempts.
    stalled_since: float | None = None
    stalled_reason: str | None = None
    split_attempts: int = 0
    # When a split that outlasts one invocation last went on to its next part (None: it has not).
    split_progress_at: float | None = None
    # The user's columns that travel with each row (chalicelib.intake.carry): the column its
    # reference is read from (None: `reference`) and the kept ones, comma-separated.
    reference_column: str | None = None
    keep_columns: str | None = None
    # The splitter's estimate of what the valid rows cost (CostEstimate.summary, as JSON).
    estimated_cost: str | None = None
    # When the job was asked to start (None: as soon as it is split); the release loop releases
    # nothing before it.
    start_at: float | None = None
    # The send window in each recipient's local time (chalicelib.core.windows.SendWindow.spec),
    # and how many rows it may release in one day of the account's time zone.
    send_window: str | None = None
    send_days: str | None = None
    max_per_day: int | None = None
    # The release cursor (chalicelib.core.slices): the row groups with their chunks and how many
    # rows of each are out (JSON), how many releases were made, when the next released row is
    # due at the earliest, and when the loop next releases (for the status's next window).
    groups: str | None = None
    # Rows in a full chunk (the window's rows at the rate the job was split at).
    chunk_rows: int = 0
    releases: int = 0
    released_rows: int = 0
    next_slot_at: float | None = None
    next_release_at: float | None = None
    # The last run released: when its first row is due, and its last row's next slot.
    last_run_at: float | None = None
    queued_until: float | None = None
    # Rows released per day of the account's time zone (JSON, the last few days).
    day_counts: str | None = None
    # Rate changes of a running job (JSON [[at, old cps, new cps, until], ...], times on the
    # job's clock): the sender re-times rows released before a change by them, until the last
    # of those rows is due (chalicelib.core.pace).
    rate_changes: str | None = None
    # The job this one retries the failed rows of (chalicelib.api.retry), from the upload's
    # `x-amz-meta-retry-of`.
    retry_of: str | None = None
    # Sent rows whose message or call has no final status yet, as of the last outcomes.csv, and
    # when the reconciler next writes it again with the statuses that came since (None: no
    # more; downstream.reconciler).
    delivery_pending: int = 0
    delivery_check_at: float | None = None
    # The rows' counts by final outcome (rejected aside) when the job ended (JSON object), so
    # GET /jobs lists them without reading each job's results; None until then.
    final_counts: str | None = None


def job_settled(rows: int, rejected: int, final_counts: Mapping[str, int]) -> bool:
    """Whether every row of a job has its final outcome.

    `final_counts` are the results table's counts by outcome; "retrying" and any other name that
    is not a final outcome are ignored, and rejected rows are counted by the splitter, not there.
    """
    finished = sum(final_counts.get(o, 0) for o in FINAL_OUTCOMES if o != "rejected")
    return rejected + finished >= rows


def final_counts_record(counts: Mapping[str, int]) -> str:
    """A job's `final_counts` from the results table's counts by outcome: every final outcome
    but rejected (the splitter counts those on the job), 0 for none; "retrying" and other names
    that are not final outcomes are left out."""
    return json.dumps({o: counts.get(o, 0) for o in FINAL_OUTCOMES if o != "rejected"})


def final_counts_view(job: Job) -> dict[str, Any] | None:
    """The ended job's rows by final outcome, rejected ones included; None before it ended."""
    if job.final_counts is None:
        return None
    stored = json.loads(job.final_counts)
    return {o: job.rejected if o == "rejected" else int(stored.get(o, 0)) for o in FINAL_OUTCOMES}
