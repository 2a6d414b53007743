"""The cost of one large job from two measured job sizes (bench/cost.py).

A priced line's units are fitted as units(n) = fixed + per_row * n through a small and a large
run: what a job pays once (the split, S3's puts of its source and manifest, Secrets Manager reads
at cold starts, the job's item) lands in `fixed`, what every row pays in `per_row`. Scaling one
small job instead would count the fixed part once per small job.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib.config import ConfigError


@dataclass(frozen=True)
class Fit:
    """units(n) = fixed + per_row * n; `clipped` says which part was held at zero, and why."""

    fixed: float
    per_row: float
    clipped: str | None = None

    def units(self, rows: float) -> float:
        return self.fixed + self.per_row * rows


def fit(small_rows: int, small_units: float, large_rows: int, large_units: float) -> Fit:
    """The line through (small_rows, small_units) and (large_rows, large_units), neither part
    negative. Noise can put the line's slope or intercept below zero; clipped, the line is the
    lowest of its constrained form at or above both points, so no measured run costs more than
    the fit says: a flat line at the larger units, or one through the origin at the larger
    units a row."""
    if not 0 < small_rows < large_rows:
        raise ConfigError(f"two job sizes are needed, small then large: {small_rows}, {large_rows}")
    per_row = (large_units - small_units) / (large_rows - small_rows)
    fixed = small_units - per_row * small_rows
    if per_row < 0:
        return Fit(max(small_units, large_units), 0.0, "per_row < 0: flat at the larger units")
    if fixed < 0:
        slope = max(small_units / small_rows, large_units / large_rows)
        return Fit(0.0, slope, "fixed < 0: through zero at the larger units a row")
    return Fit(fixed, per_row)


def key(line: Mapping[str, Any]) -> tuple[str, str]:
    return (str(line["service"]), str(line["what"]))


def fit_lines(
    small: Sequence[Mapping[str, Any]],
    small_rows: int,
    large: Sequence[Mapping[str, Any]],
    large_rows: int,
) -> dict[tuple[str, str], tuple[Fit, str]]:
    """Each priced line's fit and its price's name; a line one run lacks had zero units there."""
    prices: dict[tuple[str, str], str] = {}
    units: dict[tuple[str, str], list[float]] = {}
    for index, lines in enumerate((small, large)):
        for line in lines:
            prices[key(line)] = str(line["price"])
            units.setdefault(key(line), [0.0, 0.0])[index] += float(line["units"])
    return {
        k: (fit(small_rows, u[0], large_rows, u[1]), prices[k]) for k, u in sorted(units.items())
    }


def job_lines(
    fits: Mapping[tuple[str, str], tuple[Fit, str]],
    rows: int,
    prices: Mapping[str, float],
) -> list[dict[str, Any]]:
    """The priced lines of one job of `rows` rows, costliest first, each with its fit."""
    lines = []
    for (service, what), (line_fit, price) in fits.items():
        units = line_fit.units(rows)
        line: dict[str, Any] = {
            "service": service,
            "what": what,
            "units": round(units),
            "cost": round(units * prices.get(price, 0.0), 4),
            "price": price,
            "fixed_units": round(line_fit.fixed, 3),
            "per_row_units": round(line_fit.per_row, 5),
        }
        if line_fit.clipped:
            line["clipped"] = line_fit.clipped
        lines.append(line)
    return sorted(lines, key=lambda x: -x["cost"])


def fixed_cost(
    fits: Mapping[tuple[str, str], tuple[Fit, str]], prices: Mapping[str, float]
) -> float:
    """What a job pays once, whatever its size."""
    return sum(f.fixed * prices.get(price, 0.0) for f, price in fits.values())


def per_row_units(
    fits: Mapping[tuple[str, str], tuple[Fit, str]], price: str, suffix: str
) -> dict[str, float]:
    """The fitted units a row of the lines priced `price`, by their `what` without `suffix`."""
    return {
        what.removesuffix(suffix): f.per_row
        for (_, what), (f, p) in fits.items()
        if p == price and what.endswith(suffix)
    }


# A run's own figures, kept beside the fit (its per-row units are the run's, not fitted).
MEASURED = (
    "rows", "calls", "wall_seconds", "duration_seconds", "dynamodb_write_units_per_row",
    "dynamodb_write_units_per_row_by_table", "dynamodb_read_units_per_row", "per_100000_calls_usd",
    "per_100000_calls_by_service_usd",
)  # fmt: skip
Run = tuple[dict[str, Any], list[dict[str, Any]]]  # a run's summary and its priced lines


def job_of(rows: int, small: Run, large: Run, prices: Mapping[str, float]) -> dict[str, Any]:
    """A summary of one job of `rows` rows from two runs' lines fitted as fixed + per_row x rows;
    the counts (requests, Lambda, item sizes, callbacks) are the large run's, as measured."""
    (first, first_lines), (second, second_lines) = small, large
    fits = fit_lines(first_lines, first["rows"], second_lines, second["rows"])
    lines = job_lines(fits, rows, prices)
    by_service: Counter[str] = Counter()
    for (service, _), (line_fit, price) in fits.items():
        by_service[service] += line_fit.units(rows) * prices.get(price, 0.0)
    writes = per_row_units(fits, "dynamodb_write_unit", " write units")
    reads = per_row_units(fits, "dynamodb_read_unit", " read units")
    return {
        **second,
        "method": f"one job of {rows:,} rows: each line's units fitted as fixed + per_row x rows "
        f"through jobs of {first['rows']} and {second['rows']} rows (bench/cost_fit.py)",
        "dynamodb_write_units_per_row": round(sum(writes.values()), 2),
        "dynamodb_write_units_per_row_by_table": {k: round(v, 2) for k, v in writes.items()},
        "dynamodb_read_units_per_row": round(sum(reads.values()), 2),
        "per_100000_calls_usd": round(sum(by_service.values()), 3),
        "per_100000_calls_from_small_jobs_usd": first["per_100000_calls_usd"],
        "per_job_fixed_usd": round(fixed_cost(fits, prices), 4),
        "per_100000_calls_by_service_usd": {k: round(v, 4) for k, v in by_service.most_common()},
        "per_100000_calls_by_operation": lines,
        "clipped": {line["what"]: line["clipped"] for line in lines if "clipped" in line},
        "runs_measured": [{k: run[k] for k in MEASURED} for run in (first, second)],
    }
