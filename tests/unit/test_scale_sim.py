"""bench/scale_sim.py: the simulation is deterministic, keeps the limits it reports, and shows a
sharded schedule spreading the writes the single item takes."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


@pytest.fixture(scope="module")
def sim() -> ModuleType:
    """bench/scale_sim.py as a module (bench is a folder of scripts; it imports scale_model)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_scale_sim", BENCH / "scale_sim.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # its dataclasses look their module up
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


def test_a_run_is_deterministic_given_its_seed(sim: ModuleType) -> None:
    assert sim.run(300, True, 7, seconds=8) == sim.run(300, True, 7, seconds=8)


@pytest.mark.parametrize("sharded", [False, True])
def test_a_run_keeps_the_accounts_limits_and_calls_every_row(
    sim: ModuleType, sharded: bool
) -> None:
    result = sim.run(600, sharded, 3, seconds=8)
    assert result["shards"] == (3 if sharded else 1)
    assert result["calls"] == result["rows"]
    assert result["max_in_1s"] <= result["limit_1s"]
    assert result["max_in_100ms"] <= result["limit_100ms"]
    assert result["closest_slots_ms"] >= result["spacing_ms"] - 1e-3


def test_sharding_takes_the_writes_off_the_hottest_item(sim: ModuleType) -> None:
    one, sharded = sim.run(600, False, 3, seconds=8), sim.run(600, True, 3, seconds=8)
    hottest = "hottest_item_writes_per_s_max"
    assert sharded[hottest] < one[hottest] / 2
