"""The results table's items: the item one response envelope writes, the row it reads back as,
and the keys of the table's indexes (chalicelib.aws.results_table reads and writes them).

One item per (job_id, row), holding what the API, the console, outcomes.csv, retries and the
status callbacks read: not the request or the response's headers, which the archive keeps (an
item under 1 KB is one write unit; docs/decisions/dynamodb-units.md). Beside its key, the table
(ResultsTable in .chalice/infrastructure.yaml) has one index, `by_error_code`: error_code +
job_row ("{job_id}#{row:09d}"), only rows that have an error code.
Items carry the number called, which is personal data, so each expires (`expires_at`, the table's
TTL attribute) `retention_days` after it was written.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from chalicelib.core.batching import SIZE_MARGIN_BYTES, item_size
from chalicelib.core.envelope import ResponseEnvelope
from chalicelib.core.limits import DYNAMODB_MAX_ITEM_BYTES

BY_ERROR_CODE = "by_error_code"
DAY_SECONDS = 86_400

# An item over DynamoDB's 400 KB is refused; one near it has its bulky attributes trimmed.
_MAX_ITEM_BYTES = DYNAMODB_MAX_ITEM_BYTES - SIZE_MARGIN_BYTES
# Past this an error message is cut in a trimmed item.
_KEPT_ERROR_CHARS = 1024
# What item_of writes; an attribute of an older attempt that the newer one lacks is removed
# (and `outcome_row`, `request` and `headers`, which items no longer carry).
_RESPONSE_ATTRIBUTES = (
    "api",
    "outcome",
    "outcome_row",
    "job_row",
    "error_message",
    "error_name",
    "sid",
    "to",
    "reference",
    "kept",
    "request",
    "headers",
    "attempt",
    "status",
    "error_code",
    "due_at",
    "started_at",
    "finished_at",
    "updated_at",
    "expires_at",
)


@dataclass(frozen=True)
class RowResult:
    """The latest recorded attempt of one row."""

    job_id: str
    row: int
    api: str
    outcome: str
    attempt: int
    status: int | None
    error_code: int | None
    sid: str | None
    to: str | None
    updated_at: float
    # A code that is not Twilio's (`cancelled`), for rows that ended without a call.
    error_name: str | None = None
    # The latest status Twilio's callbacks gave the row's message or call, and when it came;
    # a call's length in seconds and who answered it (AMD) with its final status.
    delivery_status: str | None = None
    delivery_error_code: int | None = None
    delivery_at: float | None = None
    call_duration: int | None = None
    answered_by: str | None = None
    # The row's own columns (chalicelib.intake.carry): its `reference` and any kept ones.
    carried: dict[str, str] = field(default_factory=dict)


def job_row(job_id: str, row: int) -> str:
    # Zero-padded so that the index's string order is row order.
    return f"{job_id}#{row:09d}"


def expires_at(now: float, retention_days: int) -> int:
    # TTL reads whole seconds.
    return int(now) + retention_days * DAY_SECONDS


def item_of(envelope: ResponseEnvelope, *, now: float, retention_days: int) -> dict[str, Any]:
    """The DynamoDB item (typed attribute values) recording one envelope."""
    result = envelope.result
    error = envelope.error
    code = None if error is None else error.code
    strings: dict[str, str | None] = {
        "job_id": envelope.job_id,
        "api": envelope.api,
        "outcome": envelope.outcome,
        # The index's sort key, so only on the rows it holds (an item under 1 KB is one unit).
        "job_row": job_row(envelope.job_id, envelope.row) if isinstance(code, int) else None,
        "error_message": None if error is None else error.message,
        "error_name": code if isinstance(code, str) else None,
        "sid": result.sid,
        "to": envelope.number,
        # The user's reference stands alone, to be read in the table; kept columns as JSON.
        "reference": envelope.carried.get("reference"),
        "kept": _kept_json(envelope.carried),
    }
    numbers: dict[str, float | int | None] = {
        "row": envelope.row,
        "attempt": envelope.attempt,
        "status": result.status,
        # Numeric: it keys the by_error_code index.
        "error_code": code if isinstance(code, int) else None,
        "due_at": envelope.due_at,
        "started_at": result.started_at,
        "finished_at": result.finished_at,
        "updated_at": now,
        "expires_at": expires_at(now, retention_days),
    }
    item: dict[str, Any] = {k: {"S": str(v)} for k, v in strings.items() if v is not None}
    item.update({k: {"N": str(v)} for k, v in numbers.items() if v is not None})
    return _fitted(item)


def _fitted(item: dict[str, Any]) -> dict[str, Any]:
    """The item within DynamoDB's item limit, so the row's outcome is recorded whatever its
    size: a long error message is cut (the rest is short, as before)."""
    message = item.get("error_message", {}).get("S")
    if item_size(item) > _MAX_ITEM_BYTES and message is not None:
        item["error_message"] = {"S": message[:_KEPT_ERROR_CHARS] + "…"}
    return item


def _kept_json(carried: Mapping[str, str]) -> str | None:
    kept = {k: v for k, v in carried.items() if k != "reference"}
    return json.dumps(kept, separators=(",", ":"), ensure_ascii=False) if kept else None


def _carried_of(item: Mapping[str, Any]) -> dict[str, str]:
    carried: dict[str, str] = json.loads(item["kept"]["S"]) if "kept" in item else {}
    if "reference" in item:
        carried["reference"] = str(item["reference"]["S"])
    return carried


def _optional_int(item: Mapping[str, Any], name: str) -> int | None:
    return int(item[name]["N"]) if name in item else None


def _optional_str(item: Mapping[str, Any], name: str) -> str | None:
    return str(item[name]["S"]) if name in item else None


def row_result_of(item: Mapping[str, Any]) -> RowResult:
    return RowResult(
        job_id=item["job_id"]["S"],
        row=int(item["row"]["N"]),
        api=item["api"]["S"],
        outcome=item["outcome"]["S"],
        attempt=int(item["attempt"]["N"]),
        status=_optional_int(item, "status"),
        error_code=_optional_int(item, "error_code"),
        sid=_optional_str(item, "sid"),
        to=_optional_str(item, "to"),
        updated_at=float(item["updated_at"]["N"]),
        error_name=_optional_str(item, "error_name"),
        delivery_status=_optional_str(item, "delivery_status"),
        delivery_error_code=_optional_int(item, "delivery_error_code"),
        delivery_at=float(item["delivery_at"]["N"]) if "delivery_at" in item else None,
        call_duration=_optional_int(item, "call_duration"),
        answered_by=_optional_str(item, "answered_by"),
        carried=_carried_of(item),
    )


def update_of(
    item: Mapping[str, Any], also: Mapping[str, Any] | None = None, drop: Sequence[str] = ()
) -> dict[str, Any]:
    """UpdateItem arguments that set the item's response attributes and remove those it lacks,
    leaving the delivery attributes (and the call ledger's: `state`, `claimed_at`, `envelope`,
    `callback_sid`, `first_claimed_at`) as they are; and set the attributes in `also` and
    remove those in `drop`. The item's attempt is `:attempt`, under `#attempt`, for the
    update's condition."""
    names: dict[str, str] = {"#attempt": "attempt"}
    values: dict[str, Any] = {":attempt": item["attempt"]}
    sets: list[str] = []
    removes: list[str] = []
    for i, name in enumerate(_RESPONSE_ATTRIBUTES):
        placeholder = "#attempt" if name == "attempt" else f"#r{i}"
        names[placeholder] = name
        if name in item:
            value = ":attempt" if name == "attempt" else f":r{i}"
            values[value] = item[name]
            sets.append(f"{placeholder} = {value}")
        else:
            removes.append(placeholder)
    for i, (name, value) in enumerate((also or {}).items()):
        names[f"#a{i}"] = name
        values[f":a{i}"] = value
        sets.append(f"#a{i} = :a{i}")
    for i, name in enumerate(drop):
        names[f"#d{i}"] = name
        removes.append(f"#d{i}")
    expression = "SET " + ", ".join(sets)
    if removes:
        expression += " REMOVE " + ", ".join(removes)
    return {
        "UpdateExpression": expression,
        "ExpressionAttributeNames": names,
        "ExpressionAttributeValues": values,
    }
