"""Plan a file without sending anything: what the splitter would do with it, and how long."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from chalicelib.core.costs import CostEstimate, PriceTable
from chalicelib.core.metering import SENDER_QUEUE_SECONDS, SenderLimits
from chalicelib.core.records import CallRequest
from chalicelib.core.schedule import Schedule
from chalicelib.core.segments import message_cost, sms_segments
from chalicelib.intake.carry import DEFAULT_CARRY, Carry
from chalicelib.intake.parsing import ByteStream, Format
from chalicelib.intake.rows import Accepted, checked_rows, zoned
from chalicelib.intake.timing import JobTiming
from chalicelib.intake.validation.templates import JobParams

DEFAULT_PREVIEW_ROWS: Final = 3


@dataclass
class Plan:
    cps: int
    window_seconds: int
    rows: int = 0
    valid: int = 0
    rejected: int = 0
    chunks: int = 0
    eta_seconds: float = 0.0
    by_api: dict[str, int] = field(default_factory=dict)
    segments: dict[str, int] = field(default_factory=lambda: {"GSM-7": 0, "UCS-2": 0})
    messages_by_encoding: dict[str, int] = field(default_factory=lambda: {"GSM-7": 0, "UCS-2": 0})
    rejects: list[dict[str, int | str]] = field(default_factory=list)
    # Per `From` of messages: how many segments it sends.
    sender_segments: dict[str, int] = field(default_factory=dict)
    senders: SenderLimits = field(default_factory=lambda: SenderLimits.parse("auto"))
    # The first valid rows as they are sent: placeholders filled, job-wide parameters applied.
    preview: list[dict[str, object]] = field(default_factory=list)
    cost: CostEstimate = field(default_factory=lambda: CostEstimate(PriceTable.load()))
    # Valid rows per set of possible time zones, in the order their first rows came, as the
    # splitter groups them (one group () without a send window).
    groups: dict[tuple[str, ...], int] = field(default_factory=dict)

    def sender_seconds(self) -> dict[str, float]:
        """How long each limited sender takes to send its segments at its messages per second."""
        out = {}
        for sender, segments in self.sender_segments.items():
            mps = self.senders.mps(sender)
            if mps:
                out[sender] = segments / mps
        return out

    @property
    def eta_with_sender_limits(self) -> float:
        return max([self.eta_seconds, *self.sender_seconds().values()])

    def warnings(self) -> list[str]:
        found = []
        for sender, seconds in sorted(self.sender_seconds().items(), key=lambda kv: -kv[1]):
            if seconds > SENDER_QUEUE_SECONDS:
                found.append(
                    f"{sender} sends {self.sender_segments[sender]} segments at "
                    f"{self.senders.mps(sender):g} per second: {seconds / 3600:.1f} h, more than "
                    "the 10 hours of messages Twilio queues for a sender (30001 beyond that) "
                    "unless SENDER_LIMITS paces it; add senders or use a Messaging Service"
                )
            elif seconds > self.eta_seconds:
                found.append(
                    f"{sender} needs {seconds:.0f} s at {self.senders.mps(sender):g} segments "
                    f"per second, longer than the job's {self.eta_seconds:.0f} s at "
                    f"{self.cps} CPS: its messages queue at Twilio (or, with SENDER_LIMITS, "
                    "wait on the queue here)"
                )
        return found

    def to_json(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "valid": self.valid,
            "rejected": self.rejected,
            "chunks": self.chunks,
            "groups": [{"zones": list(z), "rows": n} for z, n in self.groups.items()],
            "cps": self.cps,
            "window_seconds": self.window_seconds,
            "eta_seconds": round(self.eta_seconds, 3),
            "by_api": self.by_api,
            "sms_segments": self.segments,
            "sms_messages_by_encoding": self.messages_by_encoding,
            "rejects": self.rejects,
            "sender_segments": self.sender_segments,
            "eta_seconds_with_sender_limits": round(self.eta_with_sender_limits, 3),
            "warnings": self.warnings(),
            "preview": self.preview,
            "cost": self.cost.to_json(),
        }


def plan(
    stream: ByteStream,
    fmt: Format,
    schedule: Schedule,
    senders: SenderLimits | None = None,
    default_region: str | None = None,
    *,
    params: JobParams | None = None,
    preview_rows: int = DEFAULT_PREVIEW_ROWS,
    prices: PriceTable | None = None,
    carry: Carry = DEFAULT_CARRY,
    timing: JobTiming | None = None,
    stop: Callable[[int], bool] | None = None,
) -> Plan:
    """Raises parsing.FileFormatError when the file cannot be read at all. `senders`: the
    per-sender limits the ETA is reported under (Twilio's defaults when not given);
    `default_region`: the region national phone numbers are read in, as the splitter's
    DEFAULT_REGION (None: they are rejected); `params`: the job-wide parameters, as the
    splitter applies them (templates.MissingColumn when they name a column the file lacks);
    `preview_rows`: how many of the first valid rows the plan shows as they are sent; `prices`:
    the cost is estimated from them (the shipped table when None); `carry`: the user's columns
    that travel with each row; `timing`: the job's timing, whose send window groups the rows
    by their time zones and rejects those it never opens for, as the splitter does; `stop(rows)`,
    asked before each row with the rows planned so far: True plans no more (a sample)."""
    result = Plan(cps=schedule.cps, window_seconds=schedule.window_seconds)
    if prices is not None:
        result.cost = CostEstimate(prices)
    if senders is not None and senders.enabled:
        result.senders = senders
    window = timing.window if timing is not None else None
    for read in checked_rows(stream, fmt, default_region, params=params, carry=carry):
        if stop is not None and stop(result.rows):
            break
        result.rows += 1
        item, zones = zoned(read, window)
        if not isinstance(item, Accepted):
            result.rejected += 1
            result.rejects.append({"row": item.number, "reason": item.reason})
            continue
        result.valid += 1
        result.groups[zones] = result.groups.get(zones, 0) + 1
        if len(result.preview) < preview_rows:
            result.preview.append(preview_of(item))
        api = item.request.api
        result.by_api[api] = result.by_api.get(api, 0) + 1
        if api == "messages":
            _count_message(result, item.request)
        else:
            result.cost.add(item.request)
    # Each group's rows fill chunks of their own (chalicelib.intake.chunking).
    size = schedule.chunk_size
    result.chunks = sum(math.ceil(rows / size) for rows in result.groups.values())
    result.eta_seconds = schedule.eta_seconds(result.valid)
    return result


def _count_message(result: Plan, request: CallRequest) -> None:
    """A message's segments, counted once for the plan's totals, its sender and its cost."""
    params = request.params
    body = params.get("Body")
    count = None
    if isinstance(body, str):
        encoding, count = sms_segments(body)
        result.segments[encoding] += count
        result.messages_by_encoding[encoding] += 1
    result.cost.add(request, count)
    sender = params.get("From")
    if isinstance(sender, str):
        cost = message_cost(params, count)
        result.sender_segments[sender] = result.sender_segments.get(sender, 0) + cost


def preview_of(item: Accepted) -> dict[str, object]:
    """One row as it is sent, with a message's segments and encoding."""
    shown: dict[str, object] = {"row": item.number, "api": item.request.api}
    shown["params"] = dict(item.request.params)
    body = item.request.params.get("Body")
    if item.request.api == "messages" and isinstance(body, str):
        encoding, count = sms_segments(body)
        shown["encoding"] = encoding
        shown["segments"] = count
    return shown
