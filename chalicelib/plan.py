"""Plan a file without sending anything: what the splitter would do with it, and how long."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import BinaryIO

from chalicelib.parsing import Format
from chalicelib.planning import Schedule
from chalicelib.rows import Accepted, checked_rows
from chalicelib.segments import sms_segments


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

    def to_json(self) -> dict[str, object]:
        return {
            "rows": self.rows,
            "valid": self.valid,
            "rejected": self.rejected,
            "chunks": self.chunks,
            "cps": self.cps,
            "window_seconds": self.window_seconds,
            "eta_seconds": round(self.eta_seconds, 3),
            "by_api": self.by_api,
            "sms_segments": self.segments,
            "sms_messages_by_encoding": self.messages_by_encoding,
            "rejects": self.rejects,
        }


def plan(stream: BinaryIO, fmt: Format, schedule: Schedule) -> Plan:
    """Raises parsing.FileFormatError when the file cannot be read at all."""
    result = Plan(cps=schedule.cps, window_seconds=schedule.window_seconds)
    for item in checked_rows(stream, fmt):
        result.rows += 1
        if not isinstance(item, Accepted):
            result.rejected += 1
            result.rejects.append({"row": item.number, "reason": item.reason})
            continue
        result.valid += 1
        api = item.request.api
        result.by_api[api] = result.by_api.get(api, 0) + 1
        body = item.request.params.get("Body")
        if api == "messages" and isinstance(body, str):
            encoding, count = sms_segments(body)
            result.segments[encoding] += count
            result.messages_by_encoding[encoding] += 1
    result.chunks = schedule.chunk_count(result.valid)
    result.eta_seconds = schedule.eta_seconds(result.valid)
    return result
