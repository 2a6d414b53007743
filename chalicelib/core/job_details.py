"""What a job record holds of a campaign beyond its counts: the cost the splitter estimated and
the user's columns that travel with each row; as the record stores them and as the API shows
them."""

from __future__ import annotations

import json
from typing import Any

from chalicelib.core.costs import CostEstimate
from chalicelib.core.jobs import Job


def cost_fields(cost: CostEstimate | None) -> dict[str, str]:
    """The job record's `estimated_cost` for a split's estimate (nothing without one)."""
    return {} if cost is None else {"estimated_cost": json.dumps(cost.summary())}


def job_extras(job: Job) -> dict[str, Any]:
    """GET /jobs/{id}'s `estimated_cost` (None until split, or for a job split before costs
    were estimated), `reference_column` and `keep_columns`."""
    # Only the splitter writes it, as JSON (cost_fields).
    cost = json.loads(job.estimated_cost) if job.estimated_cost else None
    keep = [c for c in (job.keep_columns or "").split(",") if c]
    return {
        "estimated_cost": cost,
        "reference_column": job.reference_column or "reference",
        "keep_columns": keep,
    }
