"""What the API answers about jobs, as typed records: a job's summary (GET /jobs), its status
(GET /jobs/{id}) and the rows of its outcomes.csv and rejects.csv."""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from callqueue.report import OUTCOMES
from chalicelib.core.delivery import counts_of, delivery_of
from chalicelib.core.jobs import FINAL

# A job whose file is uploaded but not yet split: the API answers 404 for it until the splitter
# records it, moments later. Not one of the job's own states.
SUBMITTED = "submitted"
# A cell outcomes.csv starts with an apostrophe so a spreadsheet reads it as text (downstream/
# reconcile.py): the apostrophe goes when one of these follows it.
_NEUTRALISED = ("'=", "'+", "'-", "'@", "'\t", "'\r")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _epoch(value: Any) -> float | None:
    """Epoch seconds of the API's ISO 8601 time (None for none, or one it cannot read)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment.timestamp() if moment.tzinfo is not None else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class JobSummary:
    """A job as GET /jobs lists it."""

    job_id: str
    state: str
    created_at: float | None
    key: str | None
    rows: int | None
    rejected: int | None
    cps: int | None
    window_seconds: int | None
    # When it starts (asked for), what its rows wait for ("start", "send window", "daily cap")
    # and when its release loop next releases.
    start_at: float | None = None
    waiting_for: str | None = None
    next_release_at: float | None = None

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> JobSummary:
        created = body.get("created_at")
        return cls(
            job_id=str(body["job_id"]),
            state=str(body["state"]),
            created_at=float(created) if isinstance(created, int | float) else None,
            key=body.get("key"),
            rows=_int(body.get("rows")),
            rejected=_int(body.get("rejected")),
            cps=_int(body.get("cps")),
            window_seconds=_int(body.get("window_seconds")),
            start_at=_epoch(body.get("start_at")),
            waiting_for=_text(body.get("waiting_for")),
            next_release_at=_epoch(body.get("next_release_at")),
        )


@dataclass(frozen=True)
class JobStatus:
    """A job's progress as GET /jobs/{id} answers it. `rows` and `pending` are None while the
    file is being split; `counts` holds every final outcome (OUTCOMES)."""

    job_id: str
    state: str
    rows: int | None = None
    counts: Mapping[str, int] = field(default_factory=dict)
    pending: int | None = None
    target_cps: int | None = None
    current_cps: float | None = None
    eta_seconds: float | None = None
    error: str | None = None
    start_at: float | None = None
    waiting_for: str | None = None
    next_release_at: float | None = None
    # Sent rows by the final status their callbacks gave, per API (chalicelib.core.delivery),
    # and those statuses' error codes.
    delivery: Mapping[str, Mapping[str, int]] = field(default_factory=dict)
    delivery_error_codes: Mapping[str, int] = field(default_factory=dict)
    outcomes_url: str | None = field(default=None, repr=False)
    rejects_url: str | None = field(default=None, repr=False)
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> JobStatus:
        rate = body.get("rate") or {}
        links = body.get("links") or {}
        counts = body.get("counts") or {}
        state = str(body["state"])
        current = rate.get("current_cps")
        eta = body.get("eta_seconds")
        return cls(
            job_id=str(body["job_id"]),
            state=state,
            rows=None if state == "splitting" else _int(body.get("rows")),
            counts={o: _int(counts.get(o)) or 0 for o in OUTCOMES},
            pending=_int(body.get("pending")),
            target_cps=_int(rate.get("target_cps", body.get("cps"))),
            current_cps=float(current) if isinstance(current, int | float) else None,
            eta_seconds=float(eta) if isinstance(eta, int | float) else None,
            error=body.get("error"),
            start_at=_epoch(body.get("start_at")),
            waiting_for=_text(body.get("waiting_for")),
            next_release_at=_epoch(body.get("next_release_at")),
            delivery=delivery_of(body.get("delivery")),
            delivery_error_codes=counts_of(body.get("delivery_error_codes")),
            outcomes_url=links.get("outcomes_csv"),
            rejects_url=links.get("rejects_csv"),
            raw=dict(body),
        )

    @classmethod
    def submitted(cls, job_id: str) -> JobStatus:
        """A job whose upload is done and whose file the stack has not split yet."""
        return cls(job_id=job_id, state=SUBMITTED)

    @property
    def finished(self) -> bool:
        """Nothing more will happen: completed, failed or a duplicate; or cancelled with every
        row's outcome written (the rows still in flight settle a moment after the cancel)."""
        if self.state == "cancelled":
            return self.outcomes_url is not None
        return self.state in FINAL

    @property
    def settled(self) -> int:
        """Rows with their final outcome."""
        return sum(self.counts.values())


@dataclass(frozen=True)
class Outcome:
    """One row of a job's outcomes.csv. `reason` (a rejected row's) is as the file holds it:
    a reason quoting a value may begin with an apostrophe of its own."""

    row: int
    to: str | None
    api: str | None
    outcome: str
    error_code: str | None
    sid: str | None
    reason: str | None
    # The user's own id for the row (its `reference` column), and the columns the job kept.
    reference: str | None = None
    kept: dict[str, str] = field(default_factory=dict)
    # The latest status Twilio's callbacks gave a sent row's message or call (docs/outcomes.md).
    delivery_status: str | None = None
    delivery_error_code: str | None = None
    delivered_at: str | None = None
    call_duration: int | None = None
    answered_by: str | None = None


@dataclass(frozen=True)
class Reject:
    """One row of a job's rejects.csv: the row's number in the file and why it was refused."""

    row: int
    reason: str


def _value(cell: str) -> str | None:
    if not cell:
        return None
    return cell[1:] if cell.startswith(_NEUTRALISED) else cell


def parse_outcomes(lines: Iterable[str]) -> Iterator[Outcome]:
    reader = csv.DictReader(lines)
    # The columns after the last fixed one are the job's kept ones; a file written before
    # references (or delivery statuses) existed has fewer fixed columns.
    names = list(reader.fieldnames or [])
    last = next((n for n in ("answered_by", "reference") if n in names), None)
    kept = names[names.index(last) + 1 :] if last is not None else []
    for record in reader:
        duration = _value(record.get("call_duration") or "")
        yield Outcome(
            row=int(record["row"]),
            to=_value(record["to"]),
            api=_value(record["api"]),
            outcome=record["outcome"],
            error_code=_value(record["error_code"]),
            sid=_value(record["sid"]),
            reason=record["reason"] or None,
            reference=_value(record.get("reference") or ""),
            kept={name: v for name in kept if (v := _value(record[name] or "")) is not None},
            delivery_status=_value(record.get("delivery_status") or ""),
            delivery_error_code=_value(record.get("delivery_error_code") or ""),
            delivered_at=_value(record.get("delivered_at") or ""),
            call_duration=int(duration) if duration is not None and duration.isdigit() else None,
            answered_by=_value(record.get("answered_by") or ""),
        )


def parse_rejects(lines: Iterable[str]) -> Iterator[Reject]:
    for record in csv.DictReader(lines):
        yield Reject(row=int(record["row"]), reason=record["reason"])
