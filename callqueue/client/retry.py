"""What POST /jobs/{id}/retry answers, as a typed record: the new job made of a finished job's
failed rows."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Retried:
    # The new job, which appears once the splitter has read its rows (moments later).
    job_id: str
    retry_of: str
    rows: int

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> Retried:
        return cls(
            job_id=str(body["job_id"]), retry_of=str(body["retry_of"]), rows=int(body["rows"])
        )
