"""bench/cost_fit.py: a priced line's units fitted through two job sizes as fixed + per_row x rows,
neither part negative, and the cost of one large job from the fit."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.config import ConfigError
from tests.bench_modules import load_bench_module


@pytest.fixture(scope="module")
def cf() -> ModuleType:
    return load_bench_module("cost_fit")


def test_points_on_a_line_give_its_fixed_part_and_slope(cf: ModuleType) -> None:
    assert cf.fit(500, 1000 + 2 * 500, 2000, 1000 + 2 * 2000) == cf.Fit(1000.0, 2.0)
    assert cf.fit(500, 1500, 2000, 6000) == cf.Fit(0.0, 3.0)  # proportional: nothing fixed
    assert cf.fit(500, 7, 2000, 7) == cf.Fit(7.0, 0.0)  # once a job


def test_a_fixed_cost_measured_lower_in_the_large_job_stays_flat_at_the_larger(
    cf: ModuleType,
) -> None:
    # Cold starts' secret reads: 12 in the small job, 10 in the large one (noise, not savings).
    fitted = cf.fit(500, 12, 2000, 10)

    assert (fitted.fixed, fitted.per_row) == (12.0, 0.0)
    assert fitted.clipped and "per_row < 0" in fitted.clipped


def test_a_slope_steeper_than_proportional_goes_through_zero_at_the_larger_units_a_row(
    cf: ModuleType,
) -> None:
    # 1.8 a row, then 2.1 a row: the line through both points starts at -200.
    fitted = cf.fit(500, 900, 2000, 4200)

    assert fitted.fixed == 0.0
    assert fitted.per_row == pytest.approx(2.1)
    assert fitted.clipped and "fixed < 0" in fitted.clipped


@given(
    small=st.integers(1, 10_000),
    more=st.integers(1, 100_000),
    fixed=st.floats(0, 1e6),
    per_row=st.floats(0, 100),
)
def test_any_line_of_non_negative_parts_is_found_again(
    cf: ModuleType, small: int, more: int, fixed: float, per_row: float
) -> None:
    large = small + more
    fitted = cf.fit(small, fixed + per_row * small, large, fixed + per_row * large)

    assert fitted.fixed == pytest.approx(fixed, rel=1e-6, abs=1e-3)
    assert fitted.per_row == pytest.approx(per_row, rel=1e-6, abs=1e-6)


@given(
    small=st.integers(1, 10_000),
    more=st.integers(1, 100_000),
    small_units=st.floats(0, 1e7),
    large_units=st.floats(0, 1e7),
)
def test_a_fit_has_no_negative_part_and_no_run_above_it(
    cf: ModuleType, small: int, more: int, small_units: float, large_units: float
) -> None:
    large = small + more
    fitted = cf.fit(small, small_units, large, large_units)

    assert fitted.fixed >= 0 and fitted.per_row >= 0
    tolerance = 1e-6 * max(1.0, small_units, large_units)
    assert fitted.units(small) >= small_units - tolerance
    assert fitted.units(large) >= large_units - tolerance
    if fitted.clipped is None:  # unclipped, it goes through both points
        assert fitted.units(small) == pytest.approx(small_units, abs=tolerance)
        assert fitted.units(large) == pytest.approx(large_units, abs=tolerance)


@pytest.mark.parametrize(("small", "large"), [(500, 500), (2000, 500), (0, 500), (-1, 500)])
def test_a_fit_needs_two_job_sizes_small_then_large(cf: ModuleType, small: int, large: int) -> None:
    with pytest.raises(ConfigError, match="two job sizes"):
        cf.fit(small, 1, large, 2)


def line(what: str, units: float, price: str = "s3_put", service: str = "s3") -> dict[str, Any]:
    return {"service": service, "what": what, "units": units, "price": price, "cost": 0.0}


def test_a_line_one_run_lacks_had_no_units_there(cf: ModuleType) -> None:
    fits = cf.fit_lines([line("GetSecretValue requests", 2)], 500, [line("A", 40)], 2000)

    assert fits[("s3", "GetSecretValue requests")][0] == cf.Fit(
        2.0, 0.0, "per_row < 0: flat at the larger units"
    )
    assert fits[("s3", "A")][0] == cf.Fit(
        0.0, 0.02, "fixed < 0: through zero at the larger units a row"
    )


def run(rows: int, lines: list[dict[str, Any]], per_100000: float) -> tuple[dict[str, Any], Any]:
    summary = {key: None for key in ("wall_seconds", "duration_seconds")}
    summary |= {"rows": rows, "calls": rows, "per_100000_calls_usd": per_100000}
    summary |= {"per_100000_calls_by_service_usd": {"s3": per_100000}}
    summary |= {"dynamodb_write_units_per_row": 0, "dynamodb_read_units_per_row": 0}
    summary |= {"dynamodb_write_units_per_row_by_table": {}, "requests": {"s3:PutObject": 1}}
    return summary, lines


def test_one_large_job_pays_its_fixed_cost_once(cf: ModuleType) -> None:
    prices = {"s3_put": 0.01, "dynamodb_write_unit": 0.001}
    puts = line("PutObject requests", 10)  # 10 puts a job
    writes = line("T:PutItem write units", 1500, "dynamodb_write_unit", "dynamodb")  # 3 a row
    small = run(500, [puts, writes], 200 * (10 * 0.01 + 1500 * 0.001))
    large = run(2000, [puts, {**writes, "units": 6000}], 0.0)

    job = cf.job_of(100_000, small, large, prices)

    assert job["per_100000_calls_usd"] == pytest.approx(10 * 0.01 + 300_000 * 0.001)
    assert job["per_100000_calls_from_small_jobs_usd"] == pytest.approx(200 * 0.1 + 300)
    assert job["per_job_fixed_usd"] == pytest.approx(0.1)
    assert job["per_100000_calls_by_service_usd"] == {"dynamodb": 300.0, "s3": 0.1}
    assert job["dynamodb_write_units_per_row_by_table"] == {"T:PutItem": 3.0}
    assert job["dynamodb_write_units_per_row"] == 3.0
    by_what = {x["what"]: x for x in job["per_100000_calls_by_operation"]}
    assert (by_what["PutObject requests"]["units"], by_what["PutObject requests"]["cost"]) == (
        10,
        0.1,
    )
    assert by_what["T:PutItem write units"]["units"] == 300_000
    assert job["clipped"] == {}
    assert [r["rows"] for r in job["runs_measured"]] == [500, 2000]
    assert job["runs_measured"][0]["per_100000_calls_by_service_usd"] == {"s3": 320.0}
    assert job["requests"] == {"s3:PutObject": 1}  # the counts are the large run's


def test_a_clipped_line_is_named_in_the_job(cf: ModuleType) -> None:
    secrets = line("GetSecretValue requests", 12, "secretsmanager_call", "secretsmanager")
    small = run(500, [secrets], 0.0)
    large = run(2000, [{**secrets, "units": 10}], 0.0)

    job = cf.job_of(100_000, small, large, {"secretsmanager_call": 1.0})

    assert job["per_100000_calls_usd"] == 12.0
    assert job["clipped"] == {"GetSecretValue requests": "per_row < 0: flat at the larger units"}
