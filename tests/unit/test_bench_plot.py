"""bench/rate.py's plot: one matplotlib panel per scenario, written as a PNG of a fixed size."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
from matplotlib.image import imread

RATE_PY = Path(__file__).resolve().parents[2] / "bench" / "rate.py"


def load_rate() -> ModuleType:
    """bench/rate.py as a module (bench is a folder of scripts, not a package)."""
    spec = importlib.util.spec_from_file_location("bench_rate", RATE_PY)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def scenario(name: str, cps: int, calls: int, burst: int = 0) -> dict[str, Any]:
    """A result as run() makes it, as far as plot reads one: evenly spaced arrivals at cps,
    with `burst` more calls inside one 100-ms bin a second in."""
    start = 1_700_000_000.03
    arrivals = [start + i / cps for i in range(calls)]
    arrivals += [start + 1.01 + i * 0.005 for i in range(burst)]
    return {
        "name": name,
        "account_cps": cps,
        "limit_100ms": cps // 10 + 1,
        "_arrivals": sorted(arrivals),
    }


def has_colour(image: np.ndarray, rgb: tuple[float, float, float], tolerance: float) -> bool:
    """Whether any pixel is within `tolerance` of rgb in every channel."""
    return bool((np.abs(image[:, :, :3] - np.array(rgb)).max(axis=2) < tolerance).any())


def test_plot_writes_one_panel_per_scenario_at_the_figure_size(tmp_path: Path) -> None:
    rate = load_rate()
    results = [
        scenario("one job at 50 CPS", 50, 300),
        scenario("one job at 100 CPS, with a burst", 100, 400, burst=15),
    ]
    # The second scenario has a bin over its limit; the first has none.
    assert max(rate._bins(results[0]["_arrivals"])[1].values()) <= results[0]["limit_100ms"]
    assert max(rate._bins(results[1]["_arrivals"])[1].values()) > results[1]["limit_100ms"]
    path = tmp_path / "rate.png"

    rate.plot(results, path)

    assert path.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    image = imread(path)
    height, width = image.shape[:2]
    assert (width, height) == (
        round(rate.FIGURE_WIDTH_INCHES * rate.FIGURE_DPI),
        round(rate.PANEL_HEIGHT_INCHES * len(results) * rate.FIGURE_DPI),
    )
    # The 100-ms limit (a thin antialiased line, so never quite pure red) and the bars over it,
    # tab:orange, which no other part of the chart is drawn in.
    assert has_colour(image, (1.0, 0.0, 0.0), 0.15)
    assert has_colour(image, (1.0, 0x7F / 255, 0x0E / 255), 0.02)


def test_plot_is_the_same_file_every_time(tmp_path: Path) -> None:
    rate = load_rate()
    results = [scenario("one job at 50 CPS", 50, 200), scenario("empty", 100, 0)]
    first, second = tmp_path / "first.png", tmp_path / "second.png"
    rate.plot(results, first)
    rate.plot(results, second)
    assert first.read_bytes() == second.read_bytes()
