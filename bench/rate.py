"""Benchmark: how evenly, how fast and how fairly calls reach Twilio, measured where they arrive.

Runs `callqueue run` (the whole local stack: moto server, the handlers, the Twilio emulator) on
generated message files and reads the emulator's requests log, whose timestamps are when each
request reached "Twilio". Scenarios: one job at 50, 200, 300 and 400 CPS (above ~200 CPS this
machine cannot keep up: the limits must hold all the same); two jobs at once sharing an
account limit of 100 CPS; one job at 100 CPS against an emulated account whose concurrency
limit forces 429s. Writes bench/rate.json and bench/rate.png (calls per 100 ms over time).
Not part of `make test`: it takes minutes and its numbers depend on the machine.

BENCH_SCALE (default 1.0) scales every scenario's row count, for a quicker look. BENCH_ONLY runs
some of the scenarios: comma-separated, a number N picks "one job at N CPS", other words pick the
scenarios whose names contain them (BENCH_ONLY=200,300,sharing).
"""

from __future__ import annotations

import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from bisect import bisect_left
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib
from matplotlib.axes import Axes

from callqueue.generate import generate_rows, write_file
from chalicelib.config import DEFAULT_RATE_HEADROOM, DEFAULT_SLOT_TOLERANCE_SECONDS
from chalicelib.core.spacing import account_rate

matplotlib.use("Agg")  # no display: draw to files only
import matplotlib.pyplot as plt

HERE = Path(__file__).resolve().parent
SCALE = float(os.environ.get("BENCH_SCALE", "1.0"))
# Runs of each scenario: this machine is shared and its speed varies, so one run is one sample.
REPEAT = max(1, int(os.environ.get("BENCH_REPEAT", "3")))
# How late a call may go for its slot: as deployed unless BENCH_SLOT_TOLERANCE says.
TOLERANCE = os.environ.get("BENCH_SLOT_TOLERANCE", DEFAULT_SLOT_TOLERANCE_SECONDS)
SEED = re.compile(r"\[seed (\d+)\]")
# The deployment's default RATE_HEADROOM, which the runs use.
HEADROOM = float(DEFAULT_RATE_HEADROOM)
# bench/rate.png: a fixed width, a fixed height per scenario's panel, a fixed resolution.
FIGURE_WIDTH_INCHES = 12.0
PANEL_HEIGHT_INCHES = 2.5
FIGURE_DPI = 100


@dataclass(frozen=True)
class Scenario:
    name: str
    account_cps: int
    jobs: list[tuple[int, int]]  # (cps, rows) per job, run at once
    extra: list[str] = field(default_factory=list)


SCENARIOS = [
    Scenario("one job at 50 CPS", 50, [(50, 1000)]),
    Scenario("one job at 200 CPS", 200, [(200, 3000)]),
    Scenario("one job at 300 CPS", 300, [(300, 4500)]),
    Scenario("one job at 400 CPS", 400, [(400, 6000)]),
    Scenario("two jobs sharing 100 CPS", 100, [(100, 1000), (100, 1000)]),
    # 8 requests of 0.2 s at once: at most 40 calls a second; bench/concurrency.py runs it alone.
    # Only arrivals count here: the run does not wait for delivery statuses.
    Scenario(
        "100 CPS against a concurrency limit of 8 (0.2 s latency)",
        100,
        [(100, 2000)],
        ["--concurrency-limit", "8", "--latency", "0.2", "--delivery-wait", "0"],
    ),
]


def selected(scenarios: list[Scenario], only: str) -> list[Scenario]:
    """The scenarios BENCH_ONLY picks (all of them when it is empty)."""
    tokens = [t.strip() for t in only.split(",") if t.strip()]
    if not tokens:
        return scenarios
    needles = [f"one job at {t} CPS" if t.isdigit() else t for t in tokens]
    return [s for s in scenarios if any(n in s.name for n in needles)]


def run(scenario: Scenario, work: Path) -> dict[str, Any]:
    files = []
    for i, (_, rows) in enumerate(scenario.jobs):
        path = work / f"job{i}.csv"
        write_file(
            path, "csv", generate_rows(max(10, int(rows * SCALE)), seed=100 + i, error_rate=0.0)
        )
        files.append(path)
    report, log = work / "report.json", work / "requests.jsonl"
    job_cps = scenario.jobs[0][0]
    command = [
        sys.executable, "-m", "callqueue.cli", "run", *map(str, files),
        "--cps", str(job_cps), "--account-cps", str(scenario.account_cps), "--window", "10",
        "--report", str(report), "--requests-log", str(log), "--timeout", "600",
        "--slot-tolerance", TOLERANCE,
        # The arrivals are what is measured: no waiting for the rows' delivery statuses, which
        # a loaded machine's moto takes minutes to settle.
        "--delivery-wait", "0",
        *scenario.extra,
    ]  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False)  # noqa: S603
    wall = time.monotonic() - started
    if not report.exists():
        print(result.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"{scenario.name}: callqueue run exited {result.returncode}, no report")
    data = json.loads(report.read_text())
    requests = [json.loads(line) for line in log.read_text().splitlines() if line]
    log.unlink()
    return {
        "name": scenario.name,
        "account_cps": scenario.account_cps,
        "jobs": [{"cps": cps, "rows": int(rows * SCALE)} for cps, rows in scenario.jobs],
        "exit_code": result.returncode,
        **figures(requests, scenario),
        "lag_seconds_p50": data["rate"].get("lag_seconds_p50"),
        "lag_seconds_p99": data["rate"].get("lag_seconds_p99"),
        "outcomes": data["totals"],
        "sender_scheduling": data.get("sender_scheduling"),
        "wall_seconds": round(wall, 1),
        "_arrivals": sorted(r["t"] for r in requests),
    }


def max_in_window(times: list[float], width: float) -> int:
    """The most arrivals in any window [t, t + width), over every t (a sliding window)."""
    best, j = 0, 0
    for i, t in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < t + width:
            j += 1
        best = max(best, j - i)
    return best


def figures(requests: list[dict[str, Any]], scenario: Scenario) -> dict[str, Any]:
    times = sorted(r["t"] for r in requests)
    throttled = sorted(r["t"] for r in requests if r["status"] == 429)
    span = times[-1] - times[0] if len(times) > 1 else 0.0
    achieved = (len(times) - 1) / span if span else 0.0
    out: dict[str, Any] = {
        "calls": len(times),
        "max_calls_in_any_1s": max_in_window(times, 1.0),
        "max_calls_in_any_100ms": max_in_window(times, 0.1),
        # The same over the clock's own tenths of a second (fixed bins, as the plot draws them).
        "max_calls_in_a_100ms_bin": max(Counter(int(t * 10) for t in times).values(), default=0),
        "limit_1s": scenario.account_cps,
        "limit_100ms": scenario.account_cps // 10 + 1,
        "achieved_cps": round(achieved, 2),
        "achieved_over_target": round(achieved / scenario.account_cps, 3),
        # "Once started": from the end of the first second, while the first batches are still
        # being received (the calls due at once have no lead), to the last call.
        "achieved_over_target_after_first_second": round(
            after_first_second(times) / scenario.account_cps, 3
        ),
        # The same against the rate the slots are booked at (chalicelib.core.spacing).
        "achieved_over_slots": round(achieved / slot_rate(scenario.account_cps), 3),
        "count_429": len(throttled),
    }
    if throttled:
        out["seconds_until_429s_below_1pct"] = settle_time(times, throttled)
        out["share_429_from_10s_after_the_first"] = share_after(times, throttled, 10.0)
    if len(scenario.jobs) > 1:
        out["fair_share"] = shares(requests)
    return out


def slot_rate(account_cps: int) -> float:
    """The rate the account's slots are laid out at, as chalicelib.wiring sets it."""
    return account_rate(account_cps, HEADROOM, float(TOLERANCE))


def after_first_second(times: list[float]) -> float:
    """Calls per second from one second after the first call to the last."""
    later = times[bisect_left(times, times[0] + 1.0) :] if times else []
    span = later[-1] - later[0] if len(later) > 1 else 0.0
    return (len(later) - 1) / span if span else 0.0


def settle_time(times: list[float], throttled: list[float]) -> float | None:
    """Seconds from the first 429 until every later 1-second window has under 1% 429s."""
    first = throttled[0]
    end = times[-1]
    settled: float | None = None
    t = first
    while t < end:
        calls = bisect_left(times, t + 1) - bisect_left(times, t)
        refused = bisect_left(throttled, t + 1) - bisect_left(throttled, t)
        if calls and refused / calls >= 0.01:
            settled = None
        elif settled is None:
            settled = t
        t += 1.0
    return None if settled is None else round(settled - first, 1)


def share_after(times: list[float], throttled: list[float], after: float) -> float | None:
    """The share of calls refused (429) among those made from `after` seconds past the first
    429 on: the rate the adaptive limit settles to, where settle_time's every-second test fails
    on any single probe above the limit."""
    since = throttled[0] + after
    calls = len(times) - bisect_left(times, since)
    refused = len(throttled) - bisect_left(throttled, since)
    return round(refused / calls, 4) if calls else None


def shares(requests: list[dict[str, Any]]) -> dict[str, Any]:
    """Each job's share of the calls while both jobs were calling."""
    by_job: dict[str, list[float]] = {}
    for r in requests:
        match = SEED.search(str(r["params"].get("Body", "")))
        if match:
            by_job.setdefault(match.group(1), []).append(r["t"])
    spans = {job: (min(ts), max(ts)) for job, ts in by_job.items()}
    start = max(s for s, _ in spans.values())
    end = min(e for _, e in spans.values())
    counts = Counter({job: sum(1 for t in ts if start <= t <= end) for job, ts in by_job.items()})
    total = sum(counts.values()) or 1
    return {
        "overlap_seconds": round(end - start, 1),
        "share": {f"seed {job}": round(n / total, 3) for job, n in sorted(counts.items())},
    }


def plot(results: list[dict[str, Any]], path: Path) -> None:
    """A PNG, one panel per scenario, stacked: calls per 100 ms over time (bars, orange where a
    bin is over the limit), the 100-ms limit (red line) and the target rate (dashed line)."""
    panels = max(1, len(results))
    fig, axes = plt.subplots(
        panels,
        1,
        figsize=(FIGURE_WIDTH_INCHES, PANEL_HEIGHT_INCHES * panels),
        dpi=FIGURE_DPI,
        squeeze=False,
        layout="constrained",
    )
    for ax, result in zip(axes[:, 0], results, strict=False):
        _panel(ax, result)
    fig.savefig(path, dpi=FIGURE_DPI)
    plt.close(fig)


def _panel(ax: Axes, result: dict[str, Any]) -> None:
    limit = result["limit_100ms"]
    # The benchmark's target is the account's rate (see achieved_over_target).
    target_cps = result.get("target_cps", result.get("account_cps"))
    start, per_bin = _bins(result["_arrivals"])
    if "name" in result:
        ax.set_title(str(result["name"]), loc="left")
    ax.set_xlabel("seconds since the first call")
    ax.set_ylabel("calls per 100 ms")
    under = sorted((b, n) for b, n in per_bin.items() if n <= limit)
    over = sorted((b, n) for b, n in per_bin.items() if n > limit)
    for bins, colour, label in (
        (under, "0.45", "calls per 100 ms"),
        (over, "tab:orange", "over the 100-ms limit"),
    ):
        if bins:
            ax.bar(
                [b / 10 - start for b, _ in bins],
                [n for _, n in bins],
                width=0.1,
                align="edge",
                color=colour,
                linewidth=0,
                label=label,
            )
    ax.axhline(limit, color="red", linewidth=1.2, label=f"100-ms limit ({limit})")
    if target_cps is not None:
        per_100ms = target_cps / 10
        ax.axhline(
            per_100ms,
            color="black",
            linestyle="--",
            linewidth=1,
            label=f"target ({per_100ms:g} per 100 ms)",
        )
    if not per_bin:
        ax.text(0.5, 0.5, "no calls", transform=ax.transAxes, ha="center", va="center")
    top = max([limit * 1.5, *per_bin.values()])
    ax.set_ylim(0, top * 1.05)
    ax.set_xlim(0, max(((max(per_bin) + 1) / 10 - start) if per_bin else 0.0, 1.0))
    ax.grid(axis="y", color="0.9")
    ax.set_axisbelow(True)
    # Outside the axes, on the right, so that it never hides a bar.
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize="small", frameon=False)


def _bins(times: list[float]) -> tuple[float, Counter[int]]:
    """The first arrival, and the calls in each of the clock's tenths of a second (the bins of
    max_calls_in_a_100ms_bin), keyed by the tenth."""
    if not times:
        return 0.0, Counter()
    return times[0], Counter(int(t * 10) for t in times)


RUN_FIGURES = (
    "max_calls_in_any_1s",
    "max_calls_in_any_100ms",
    "achieved_over_target",
    "achieved_over_target_after_first_second",
    "achieved_over_slots",
    "count_429",
    "seconds_until_429s_below_1pct",
    "fair_share",
)


def summary_of(runs: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Each figure of every run of a scenario, in run order."""
    return {key: [r.get(key) for r in runs] for key in RUN_FIGURES if any(key in r for r in runs)}


def main() -> int:
    results: list[dict[str, Any]] = []
    repeats: list[dict[str, list[Any]]] = []
    only = os.environ.get("BENCH_ONLY", "")
    scenarios = selected(SCENARIOS, only)
    if not scenarios:
        raise SystemExit(f"BENCH_ONLY={only!r} picks no scenario")
    with tempfile.TemporaryDirectory() as work:
        for scenario in scenarios:
            runs = []
            for n in range(REPEAT):
                print(f"running: {scenario.name} ({n + 1}/{REPEAT})", file=sys.stderr, flush=True)
                result = run(scenario, Path(work))
                print(json.dumps({k: v for k, v in result.items() if k != "_arrivals"}), flush=True)
                runs.append(result)
            # The plot and the scenario's figures are its worst run's for the 100-ms limit.
            worst = max(runs, key=lambda r: (r["max_calls_in_any_100ms"], -r["achieved_cps"]))
            results.append(worst)
            repeats.append(summary_of(runs))
            # Written after each scenario: a long run interrupted keeps what it measured.
            write(results, repeats, only)
    return 0


def machine() -> dict[str, Any]:
    """What a benchmark ran on, as the results record it."""
    return {
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def write(results: list[dict[str, Any]], repeats: list[dict[str, list[Any]]], only: str) -> None:
    plot(results, HERE / "rate.png")
    lags = [r["lag_seconds_p99"] for r in results if r.get("lag_seconds_p99") is not None]
    summary = {
        "machine": machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "scale": SCALE,
        "slot_tolerance_seconds": float(TOLERANCE),
        "rate_headroom": HEADROOM,
        "repeat": REPEAT,
        "only": only or None,
        "scenarios": [
            {**{k: v for k, v in r.items() if k != "_arrivals"}, "runs": summary}
            for r, summary in zip(results, repeats, strict=True)
        ],
        "worst_lag_p99_seconds": max(lags) if lags else None,
    }
    (HERE / "rate.json").write_text(json.dumps(summary, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
