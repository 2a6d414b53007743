"""Benchmark: how much of an account's concurrency limit the senders use.

Runs bench/rate.py's concurrency scenario alone (the whole local stack: `callqueue run` against
an emulated account with a concurrency limit and a fixed latency, so the limit allows
limit / latency calls a second) BENCH_REPEAT times (default 3), and reads the emulator's
requests log: the calls Twilio accepted per second from 10 s after the first call to the last,
over what the limit allows, and the share of calls refused (429) in that time. Writes
bench/concurrency.json with the machine and date. Not part of `make test`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import rate  # bench/rate.py, beside this script

HERE = Path(__file__).resolve().parent
SETTLE_SECONDS = 10.0
TOO_MANY_REQUESTS = 429
[SCENARIO] = [s for s in rate.SCENARIOS if "--concurrency-limit" in s.extra]


def limit_of(scenario: rate.Scenario) -> int:
    extra = scenario.extra
    return int(extra[extra.index("--concurrency-limit") + 1])


def allowed(scenario: rate.Scenario) -> float:
    """Calls a second the emulated limit allows: limit / latency (Little's law)."""
    extra = scenario.extra
    return limit_of(scenario) / float(extra[extra.index("--latency") + 1])


def capacity_figures(requests: list[dict[str, Any]], scenario: rate.Scenario) -> dict[str, Any]:
    times = sorted(r["t"] for r in requests)
    since = times[0] + SETTLE_SECONDS
    later = [r for r in requests if r["t"] >= since]
    accepted = [r for r in later if r["status"] != TOO_MANY_REQUESTS]
    span = max(r["t"] for r in later) - since if later else 0.0
    achieved = len(accepted) / span if span else 0.0
    return {
        "allowed_cps": allowed(scenario),
        "accepted_cps_after_10s": round(achieved, 2),
        "achieved_over_allowed_after_10s": round(achieved / allowed(scenario), 3),
        "share_429_after_10s": round((len(later) - len(accepted)) / max(1, len(later)), 4),
        "count_429_after_10s": len(later) - len(accepted),
        **measured_capacity(accepted, limit_of(scenario), achieved),
    }


def measured_capacity(
    accepted: list[dict[str, Any]], limit: int, achieved: float
) -> dict[str, Any]:
    """What the limit allowed at the durations the emulator really had (its own latency plus
    its processing on this machine, as Twilio-Request-Duration said): limit / mean duration by
    Little's law; and, for calls paced evenly, the highest rate at which at most 1% of calls
    find the limit full: a call does when the call `limit` places before it is still in flight,
    so the rate is limit / (99th percentile of the durations)."""
    durations = sorted(float(r["duration"]) for r in accepted if r.get("duration") is not None)
    if not durations:
        return {}
    mean = sum(durations) / len(durations)
    p99 = durations[min(len(durations) - 1, int(0.99 * len(durations)))]
    return {
        "duration_mean_seconds": round(mean, 4),
        "duration_p99_seconds": round(p99, 4),
        "allowed_at_measured_durations_cps": round(limit / mean, 2),
        "achieved_over_allowed_at_measured_durations": round(achieved * mean / limit, 3),
        "allowed_under_1pct_429_cps": round(limit / p99, 2),
        "achieved_over_allowed_under_1pct_429": round(achieved * p99 / limit, 3),
    }


def figures(requests: list[dict[str, Any]], scenario: rate.Scenario) -> dict[str, Any]:
    return {**_rate_figures(requests, scenario), **capacity_figures(requests, scenario)}


# rate.run reads the requests log and computes its figures with rate.figures: these add ours.
_rate_figures = rate.figures
rate.figures = figures

KEYS = (
    "achieved_over_allowed_after_10s",
    "achieved_over_allowed_at_measured_durations",
    "achieved_over_allowed_under_1pct_429",
    "duration_mean_seconds",
    "duration_p99_seconds",
    "accepted_cps_after_10s",
    "share_429_after_10s",
    "count_429_after_10s",
    "count_429",
    "max_calls_in_any_1s",
    "max_calls_in_any_100ms",
    "achieved_cps",
    "wall_seconds",
)


def main() -> int:
    runs = []
    with tempfile.TemporaryDirectory() as work:
        for n in range(rate.REPEAT):
            print(f"running: {SCENARIO.name} ({n + 1}/{rate.REPEAT})", file=sys.stderr, flush=True)
            result = {k: v for k, v in rate.run(SCENARIO, Path(work)).items() if k != "_arrivals"}
            print(json.dumps({k: result.get(k) for k in KEYS}), flush=True)
            runs.append(result)
    summary = {
        "machine": rate.machine(),
        "date": datetime.now(UTC).strftime("%Y-%m-%d"),
        "note": os.environ.get("BENCH_NOTE", ""),
        "scenario": SCENARIO.name,
        "rows": int(SCENARIO.jobs[0][1] * rate.SCALE),
        "allowed_cps": allowed(SCENARIO),
        "repeat": rate.REPEAT,
        "runs": {key: [r.get(key) for r in runs] for key in KEYS},
        "details": runs,
    }
    (HERE / "concurrency.json").write_text(json.dumps(summary, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
