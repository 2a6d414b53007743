"""Benchmark: what one job of 100,000 calls costs on AWS, from local runs' requests and items.

Runs `callqueue run` (the whole local stack) on a job of BENCH_ROWS generated SMS rows (500 by
default), then on one of BENCH_ROWS_LARGE (4x BENCH_ROWS by default), at BENCH_CPS (50) with the
cost log on (callqueue.local.cost_log): every request moto served, by service and operation, with
its 64 KB chunks; DynamoDB's write and read units from the items' sizes; every Lambda invocation's
duration (the callback function's, behind its function URL, included); every request the local REST
API answered (API Gateway bills each; the callbacks of messages sent before the function URL still
come there). Prices them with PRICES (us-east-1, on-demand, no free tier; Lambda's GB-seconds at
the price of the architecture .chalice/config.json deploys, measured on this machine's). Each
priced line's units are fitted through the two runs as fixed + per_row x rows (bench/cost_fit.py: a
negative part is clipped to zero, the line kept at or above both runs and marked `clipped`); the
cost is that of one job of 100,000 rows, what a job pays once (the split, S3's puts of its files,
secret reads at cold starts, its item) counted once (`per_job_fixed_usd`). The small job scaled to
100,000 calls, as the labels without `runs_measured` were measured, stays as
`per_100000_calls_from_small_jobs_usd`; each run's own figures are under `runs_measured`; the
counts (requests, Lambda, item sizes) are the large run's. BENCH_ROWS_LARGE=0 makes the small run
alone, scaled. Requests made to set the stack up (CloudFormation, IAM, queue and topic creation)
are left out: a deployment makes them once. SQS receives are counted as AWS bills them: Lambda's
pollers for an SQS trigger make their ReceiveMessage requests on the account, billed as SQS
requests, and long-poll (20 s) while the queue is empty. Receives that found messages are counted
as made; the local pollers' empty short polls are replaced by an idle mapping's long polls,
ESM_POLLERS to a queue (docs/decisions/dynamodb-units.md). The triggers' batching windows are as
deployed (archive 30 s, results 5 s; `callqueue run` caps them at 1 s otherwise), the batches still
gathering at the end handed over as Lambda would. The job's window is the deployed one (900 s), and
the reconciler's passes are priced at its deployed schedule (a minute; the local runtime runs it
every two seconds).
DELIVERY_REPORTS=off runs the stack asking Twilio for no status callbacks (the run records the
setting).

Writes the run under BENCH_LABEL ("current" by default) in bench/cost.json, keeping the other
labels there (a baseline run on earlier code stays beside it); BENCH_KEEP_AS names the label
the run it replaces moves to. Not part of `make test`.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from callqueue.generate import generate_rows, write_file  # noqa: E402 - after the path is set
from callqueue.local.cost_log import API_LOG  # noqa: E402
from callqueue.local.options import Options  # noqa: E402
from chalicelib.config import MAX_WINDOW_SECONDS, STATUS_PATH  # noqa: E402

# bench is a folder of scripts: its helpers are found beside this one, after everything else.
if str(HERE) not in sys.path:
    sys.path.append(str(HERE))
from cost_fit import job_of  # noqa: E402

ROWS = int(os.environ.get("BENCH_ROWS", "500"))
ROWS_LARGE = int(os.environ.get("BENCH_ROWS_LARGE", str(4 * ROWS)))
CPS = int(os.environ.get("BENCH_CPS", "50"))
# The deployed window (WINDOW_SECONDS' default): a chunk, a release and its loop's transitions a
# window. A 10-s window made a 100,000-row job 200 windows where it is 3 at 50 CPS.
WINDOW = MAX_WINDOW_SECONDS
# The reconciler runs every minute when deployed (app.py) and every Options.schedule_period
# seconds locally: its passes are priced at the deployed schedule.
RECONCILER = "handle_reconcile"
RECONCILER_SCAN = "JobsTable:Scan"
SCHEDULED_SHARE = Options().schedule_period / 60.0
LABEL = os.environ.get("BENCH_LABEL", "current")
OUT = HERE / "cost.json"
PER = 100_000

# us-east-1 list prices, on-demand, without free tiers, as published on 2026-12-06 (DynamoDB's
# on-demand prices since 2024-11-01).
PRICES_AS_OF = "2026-12-06"
PRICES = {
    "dynamodb_write_unit": 0.625 / 1e6,
    "dynamodb_read_unit": 0.125 / 1e6,
    "sqs_request": 0.40 / 1e6,  # per 64 KB chunk
    "sns_request": 0.50 / 1e6,  # per 64 KB chunk; deliveries to SQS and Lambda are free
    "s3_put": 0.005 / 1e3,  # PUT, COPY, POST, LIST
    "s3_get": 0.0004 / 1e3,  # GET and the rest
    "events_event": 1.00 / 1e6,  # per 64 KB chunk
    "states_transition": 0.025 / 1e3,
    "secretsmanager_call": 0.05 / 1e4,
    "cloudwatch_put_metric_data": 0.01 / 1e3,
    "lambda_request": 0.20 / 1e6,
    "lambda_gb_second": 0.0,  # set below from the functions' architecture
    # REST API requests, the first 333 million a month (2026-12-07); a function URL's are free.
    "apigateway_rest_request": 3.50 / 1e6,
}
# Lambda's duration by the functions' architecture (.chalice/config.json, lambda_architecture).
LAMBDA_GB_SECOND = {"x86_64": 0.0000166667, "arm64": 0.0000133334}


ARCHITECTURE = str(
    json.loads((ROOT / ".chalice" / "config.json").read_text()).get("lambda_architecture", "x86_64")
)
PRICES["lambda_gb_second"] = LAMBDA_GB_SECOND[ARCHITECTURE]

# What sets the stack up, made once a deployment: not a cost of calls.
SETUP = {"cloudformation", "iam", "sts", "unknown"}
SETUP_OPERATIONS = {
    "CreateQueue", "GetQueueUrl", "GetQueueAttributes", "Subscribe", "CreateSecret",
    "CreateStateMachine", "CreateTopic", "SetQueueAttributes", "CreateFunction",
}  # fmt: skip
S3_PUTS = {"PutObject", "CopyObject", "POSTObject", "ListObjects", "CreateMultipartUpload"}
# An SQS trigger's pollers while its queue is empty: Lambda long-polls (20 s a receive) with five
# at a time, scaling back to as few as two only without a maximum concurrency (the sender's
# trigger has one); five is taken for every queue.
# https://docs.aws.amazon.com/lambda/latest/dg/services-sqs-scaling.html; empty receives are
# billed: https://repost.aws/knowledge-center/sqs-high-charges
ESM_POLLERS = 5
LONG_POLL_SECONDS = 20
EMPTY_RECEIVE = "sqs:ReceiveMessage (empty)"
LONG_POLLS = "ReceiveMessage long polls"
METHOD_NOTE = (
    "labels without runs_measured (every label before fit_check, 2026-12-07, and runs with "
    "BENCH_ROWS_LARGE=0) are one job of their rows scaled to 100,000 calls: a 500-row job's "
    "fixed costs counted 200 times"
)


def run(work: Path, count: int) -> tuple[dict[str, Any], Path, float]:
    rows = work / "rows.csv"
    write_file(rows, "csv", generate_rows(count, seed=25, error_rate=0.0))
    log = work / "log"
    log.mkdir()
    report = work / "report.json"
    command = [
        sys.executable, "-m", "callqueue.cli", "run", str(rows), "--cps", str(CPS),
        "--window", str(WINDOW), "--delivery-wait", "3", "--report", str(report),
        "--timeout", "900",
    ]  # fmt: skip
    # The triggers' batching windows as deployed (callqueue.local.triggers): the sinks' batches.
    env = {
        **os.environ,
        "CALLQUEUE_COST_LOG": str(log),
        "PYTHONPATH": str(ROOT),
        "CALLQUEUE_LOCAL_DEPLOYED_WINDOWS": "1",
    }
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, check=False, env=env)  # noqa: S603
    wall = time.monotonic() - started
    if not report.exists():
        print(result.stderr[-4000:], file=sys.stderr)
        raise SystemExit(f"callqueue run exited {result.returncode}, no report")
    return json.loads(report.read_text()), log, wall


def memory_mb() -> dict[str, int]:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    default = int(config.get("lambda_memory_size", 128))
    functions = config["stages"]["dev"].get("lambda_functions", {})
    return {name: int(f.get("lambda_memory_size", default)) for name, f in functions.items()} | {
        "": default
    }


def lambdas(log: Path) -> dict[str, dict[str, float]]:
    memory = memory_mb()
    out: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for path in log.glob("lambda-*.jsonl"):
        for line in path.read_text().splitlines():
            entry = json.loads(line)
            name = entry["function"].split("-", 2)[-1]
            mb = memory.get(name, memory[""])
            # Lambda bills each invocation's duration rounded up to the millisecond.
            seconds = math.ceil(entry["seconds"] * 1000) / 1000
            out[name]["invocations"] += 1
            out[name]["gb_seconds"] += seconds * mb / 1024
    return {k: dict(v) for k, v in sorted(out.items())}


# A request line as chalice local logs it: "POST /twilio/status?job=... HTTP/1.1" 204 -
REQUEST_LINE = re.compile(r'"[A-Z]+ (?P<path>\S+) HTTP/[\d.]+" \d{3}')


def api_requests(log: Path) -> Counter[str]:
    """The requests the local REST API answered, status callbacks apart from the rest."""
    counts: Counter[str] = Counter()
    path = log / API_LOG
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            found = REQUEST_LINE.search(line)
            if found:
                callback = found["path"].split("?", 1)[0] == STATUS_PATH
                counts["status callbacks" if callback else "other routes"] += 1
    return counts


def aws(log: Path) -> dict[str, Counter[str]]:
    merged: dict[str, Counter[str]] = defaultdict(Counter)
    for path in log.glob("aws-*.json"):
        for kind, counts in json.loads(path.read_text()).items():
            merged[kind].update(counts)
    return merged


def table_name(key: str) -> str:
    """callqueue-local-ResultsTable-XYZ:Op -> ResultsTable:Op"""
    table, _, operation = key.partition(":")
    parts = table.split("-")
    short = parts[2] if len(parts) >= 4 else table
    return f"{short}:{operation}" if operation else short


def priced(
    counts: dict[str, Counter[str]],
    functions: dict[str, dict[str, float]],
    api: Counter[str] | None = None,
    rows: int = ROWS,
) -> list[dict[str, Any]]:
    """One line per (service, operation): its billed units and their cost, for the whole run."""
    lines: list[tuple[str, str, float, str]] = [
        ("apigateway", f"REST API requests: {route}", n, "apigateway_rest_request")
        for route, n in sorted((api or Counter()).items())
    ]
    for key, units in sorted(counts["write_units"].items()):
        lines.append(("dynamodb", f"{table_name(key)} write units", units, "dynamodb_write_unit"))
    for key, units in sorted(counts["read_units"].items()):
        # Only the reconciler scans the jobs table, once a pass.
        every = SCHEDULED_SHARE if table_name(key) == RECONCILER_SCAN else 1.0
        lines.append(
            ("dynamodb", f"{table_name(key)} read units", units * every, "dynamodb_read_unit")
        )
    for key, chunks in sorted(counts["chunks"].items()):
        service, _, operation = key.partition(":")
        if service in SETUP or operation in SETUP_OPERATIONS or service in ("dynamodb", "lambda"):
            continue
        price = {
            "sqs": "sqs_request",
            "sns": "sns_request",
            "events": "events_event",
            "secretsmanager": "secretsmanager_call",
            "monitoring": "cloudwatch_put_metric_data",
        }.get(service)
        if service == "s3":
            price = "s3_put" if operation in S3_PUTS else "s3_get"
        if service == "states":
            continue  # priced by transitions below
        lines.append((service, f"{operation} requests", chunks, price or "unpriced"))
    executions = counts["requests"].get("states:StartExecution", 0)
    # The release loop's transitions per execution: a chunk's Task, Choice and Wait per window.
    lines.append(
        (
            "states",
            "transitions (estimate: 4 a window)",
            executions * 4 * math.ceil(rows / CPS / WINDOW),
            "states_transition",
        )
    )
    for name, figures in functions.items():
        # The reconciler as scheduled when deployed, not as often as the local runtime runs it.
        every = SCHEDULED_SHARE if name == RECONCILER else 1.0
        invocations, gb_seconds = figures["invocations"] * every, figures["gb_seconds"] * every
        lines.append(("lambda", f"{name} invocations", invocations, "lambda_request"))
        lines.append(("lambda", f"{name} GB-seconds", gb_seconds, "lambda_gb_second"))
    return [
        {"service": s, "what": w, "units": round(u, 3), "cost": u * PRICES.get(p, 0.0), "price": p}
        for s, w, u, p in lines
    ]


def trigger_queues() -> int:
    """How many queues trigger a function (app.py's SQS handlers), each polled by Lambda."""
    return (ROOT / "app.py").read_text().count("@app.on_sqs_message(")


def long_polls(counts: dict[str, Counter[str]], seconds: float) -> dict[str, Any]:
    """The receives AWS bills instead of the local pollers' empty short polls: every trigger's
    pollers long-polling for the run's duration (an upper bound: a poller that receives messages
    makes no empty receive meanwhile). The local empty receives are taken out of `counts`."""
    for kind in ("requests", "chunks"):
        counts[kind].pop(EMPTY_RECEIVE, None)
    polls = trigger_queues() * ESM_POLLERS * seconds / LONG_POLL_SECONDS
    what = f"{LONG_POLLS} (AWS: {ESM_POLLERS} a queue, {LONG_POLL_SECONDS} s each)"
    return {
        "service": "sqs",
        "what": what,
        "units": round(polls, 3),
        "cost": polls * PRICES["sqs_request"],
        "price": "sqs_request",
    }


def summary(
    report: dict[str, Any], log: Path, wall: float
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """A run's figures, as many such jobs as make 100,000 calls, and its priced lines as run."""
    counts = aws(log)
    functions = lambdas(log)
    api = api_requests(log)
    calls = report["totals"]["sent"] + report["totals"]["failed"] + report["totals"]["unknown"]
    scale = PER / max(1, calls)
    idle = long_polls(counts, float(report.get("duration_seconds") or wall))
    lines = [*priced(counts, functions, api, report["totals"]["rows"]), idle]
    by_service: Counter[str] = Counter()
    for line in lines:
        by_service[line["service"]] += line["cost"] * scale
    rows = max(1, report["totals"]["rows"])
    write_units = sum(counts["write_units"].values())
    result = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "rows": report["totals"]["rows"],
        "calls": calls,
        "cps": CPS,
        # DELIVERY_REPORTS as the run's stack had it (on unless set: chalicelib.config).
        "delivery_reports": os.environ.get("DELIVERY_REPORTS", "on"),
        # Priced at this architecture's GB-second; the durations are this machine's (x86_64).
        "lambda_architecture": ARCHITECTURE,
        "wall_seconds": round(wall, 1),
        "duration_seconds": report.get("duration_seconds"),
        "dynamodb_write_units_per_row": round(write_units / rows, 2),
        "dynamodb_write_units_per_row_by_table": {
            table_name(k): round(v / rows, 2) for k, v in sorted(counts["write_units"].items())
        },
        "dynamodb_read_units_per_row": round(sum(counts["read_units"].values()) / rows, 2),
        "item_bytes_average": {
            table_name(k): round(v / max(1, counts["items"][k]))
            for k, v in counts["item_bytes"].items()
        },
        "per_100000_calls_usd": round(sum(by_service.values()), 3),
        "per_100000_calls_by_service_usd": {k: round(v, 4) for k, v in by_service.most_common()},
        "per_100000_calls_by_operation": [
            {**line, "units": round(line["units"] * scale), "cost": round(line["cost"] * scale, 4)}
            for line in sorted(lines, key=lambda x: -x["cost"])
        ],
        "requests": dict(sorted(counts["requests"].items())),
        "lambda": functions,
        # Status callbacks: through the REST API (billed a request) and the function URL (free;
        # the function's invocations are under "lambda").
        "status_callbacks": {
            "rest_api_requests": api["status callbacks"],
            "function_url_requests": int(
                functions.get("status_callback_url", {}).get("invocations", 0)
            ),
        },
    }
    return result, lines


def measure(rows: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """One job of `rows` rows through the local stack: its summary and its priced lines."""
    with tempfile.TemporaryDirectory() as tmp:
        report, log, wall = run(Path(tmp), rows)
        return summary(report, log, wall)


def polling(line: dict[str, Any], modelled: bool = False) -> bool:
    """Whether a line's cost grows with time rather than with calls: the queues' polling (on
    AWS, Lambda's pollers; in runs before they were `modelled`, every local receive), the
    reconciler (every minute on AWS, more often locally) and the jobs it scans."""
    what = line["what"]
    receives = what.startswith(LONG_POLLS) if modelled else what.startswith("ReceiveMessage")
    return receives or what.startswith("handle_reconcile") or what.startswith("JobsTable:Scan")


def split(result: dict[str, Any]) -> None:
    """Adds to a run's summary its per-call and its polling share."""
    lines = result["per_100000_calls_by_operation"]
    modelled = any(line["what"].startswith(LONG_POLLS) for line in lines)
    polled = sum(line["cost"] for line in lines if polling(line, modelled))
    result["per_100000_calls_without_polling_usd"] = round(
        result["per_100000_calls_usd"] - polled, 3
    )
    result["polling_per_100000_calls_usd"] = round(polled, 3)
    seconds = (result["calls"] / PER) and result["duration_seconds"] * PER / result["calls"]
    result["polling_usd_per_hour_locally"] = round(polled / seconds * 3600, 3) if seconds else None


def main() -> None:
    if ROWS_LARGE and ROWS_LARGE <= ROWS:
        raise SystemExit("BENCH_ROWS_LARGE must be above BENCH_ROWS, or 0 for one run")
    small = measure(ROWS)
    result = job_of(PER, small, measure(ROWS_LARGE), PRICES) if ROWS_LARGE else small[0]
    # The same run priced on the other architecture, side by side: only the GB-second differs.
    gb_seconds = sum(
        line["units"]
        for line in result["per_100000_calls_by_operation"]
        if line["price"] == "lambda_gb_second"
    )
    result["per_100000_calls_usd_by_architecture"] = {
        arch: round(
            result["per_100000_calls_usd"] + gb_seconds * (price - PRICES["lambda_gb_second"]), 3
        )
        for arch, price in LAMBDA_GB_SECOND.items()
    }
    existing = json.loads(OUT.read_text()) if OUT.exists() else {}
    existing.update(
        {
            "machine": {
                "platform": platform.platform(),
                "python": platform.python_version(),
                "cores": os.cpu_count(),
                "note": "shared by three engineers: other work (benchmarks, test suites) "
                "ran at the same time",
            },
            "prices_as_of": PRICES_AS_OF,
            "prices_usd": PRICES,
            "method": __doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else "",
            "method_note": METHOD_NOTE,
        }
    )
    runs = existing.setdefault("runs", {})
    keep_as = os.environ.get("BENCH_KEEP_AS")
    if keep_as and LABEL in runs:
        runs[keep_as] = runs.pop(LABEL)
    runs[LABEL] = result
    for run_result in existing["runs"].values():
        split(run_result)
    OUT.write_text(json.dumps(existing, indent=1) + "\n")
    shown = [*list(result)[:11], "per_100000_calls_usd", "per_100000_calls_from_small_jobs_usd"]
    shown += ["per_100000_calls_usd_by_architecture", "per_job_fixed_usd", "runs_measured"]
    print(json.dumps({k: result[k] for k in dict.fromkeys(shown) if k in result}, indent=1))
    for what, why in result.get("clipped", {}).items():
        print(f"clipped: {what}: {why}")


if __name__ == "__main__":
    main()
