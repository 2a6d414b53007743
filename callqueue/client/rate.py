"""What POST /jobs/{id}/rate answers, as a typed record: a job's rate changed (or found as
asked already)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class RateChanged:
    job_id: str
    state: str
    previous_cps: int
    cps: int
    # When the release loop next releases (Unix seconds), at the new rate's timing.
    next_release_at: float | None
    loop_restarted: bool

    @classmethod
    def from_api(cls, body: Mapping[str, Any]) -> RateChanged:
        at = body.get("next_release_at")
        return cls(
            job_id=str(body["job_id"]),
            state=str(body["state"]),
            previous_cps=int(body["previous_cps"]),
            cps=int(body["cps"]),
            next_release_at=float(at) if isinstance(at, int | float) else None,
            loop_restarted=bool(body.get("loop_restarted", False)),
        )
