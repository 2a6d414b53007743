"""Commands on this machine (docs/local-runtime.md): `run` files through the local runtime and
report every row's outcome, keep the local stack `up`, or serve the Twilio `emulator` alone."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from callqueue.cli import arguments, files
from callqueue.cli.exits import EXIT_OK, EXIT_UNACCOUNTED, EXIT_USAGE, UsageError, readable
from callqueue.cli.progress import RunView, Snapshot, calls_in_last_second
from callqueue.cli.summary import print_summary
from callqueue.report import JobTotals, build_report

if TYPE_CHECKING:
    from callqueue.local.options import Options
    from callqueue.local.outcomes import Tally
    from callqueue.local.runtime import LocalRuntime

# How often a run looks at its jobs while it waits for their rows to settle.
POLL_SECONDS = 0.25


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    for path in args.files:
        readable(path)
    from chalicelib.config import ConfigError

    try:
        carry = files.carry_of(args)
        # A relative start ("in 2h") counts from now, before the stack takes its time starting.
        timing = arguments.timing_of(args, time.time())
    except ConfigError as error:
        raise UsageError(str(error)) from None
    with RunView(Console(stderr=True), args.cps) as view:
        # Imported under the display: loading boto3 and the stack's code takes a while.
        from callqueue.local.api_server import free_port
        from callqueue.local.deliveries import wait_for_deliveries
        from callqueue.local.runtime import LocalRuntime
        from chalicelib.config import Settings

        # The API takes the emulator's signed status callbacks: the rows' delivery statuses.
        options = replace(_options(args), api_port=free_port())

        with LocalRuntime(options, on_step=view.step) as runtime:
            _quiet_handlers(args.verbose)
            for path in args.files:
                runtime.submit(path, dict(args.params), {**carry.metadata(), **timing.metadata()})
            stall_limit = args.timeout or options.stall_limit_seconds
            arrivals = _wait_until_settled(runtime, view, stall_limit)
            stuck = _open_rows(runtime, view)
            # With DELIVERY_REPORTS=off no final status is coming: read once, do not wait.
            reports = Settings.from_env(runtime.handler_environment()).delivery_reports
            if reports:
                view.step("waiting for delivery statuses")
            deliveries = wait_for_deliveries(runtime, args.delivery_wait if reports else 0)
            # One snapshot for the whole report: a paused job's calls in flight settle meanwhile.
            tally = runtime.tally.snapshot()
            jobs = _job_totals(runtime, tally, deliveries.views)
            view.finish(Snapshot(jobs, calls_in_last_second(arrivals, now := time.time()), now))
            if args.outcomes:
                _write_outcomes(args.outcomes, runtime, tally)
            rejects = {s.job_id: runtime.rejects(s.job_id) for s in runtime.jobs}
            report = _report(runtime, tally, jobs, arrivals, options.cps, deliveries.error_codes)
            if not reports:  # no delivery table of rows all "pending"
                report["delivery"] = {}
            if stuck:
                report["open_rows"] = stuck
            # The results now: the stack takes seconds to stop, and nothing is wanted of it.
            view.close()
            _print_results(args, report, rejects, jobs)
    if any(j.state == "failed" for j in jobs):
        return EXIT_USAGE
    return EXIT_OK if report["totals"]["unaccounted"] == 0 else EXIT_UNACCOUNTED


def _print_results(
    args: argparse.Namespace,
    report: dict[str, Any],
    rejects: dict[str, list[tuple[int, str]]],
    jobs: list[JobTotals],
) -> None:
    from rich.console import Console

    if args.rejects:
        _write_rejects(args.rejects, rejects)
    print_summary(Console(), report, rejects, args.rejects)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report: {args.report}")
    for job in (j for j in jobs if j.state == "paused"):
        print(
            f"callqueue: job {job.job_id} was paused by systemic Twilio errors "
            "(see the error codes); fix the setting, then `callqueue resume JOB` "
            "continues a deployed job",
            file=sys.stderr,
        )
    sys.stdout.flush()


def _wait_until_settled(runtime: LocalRuntime, view: RunView, stall_limit: float) -> list[float]:
    """Show progress until every job has settled (or is paused), or no row has settled for
    `stall_limit` seconds while nothing reached Twilio either; returns the emulator's arrival
    times seen last.

    A request to Twilio counts as progress: a row in doubt waits out the in-doubt time (60 s
    locally) before its look-up, and again after a look-up Twilio did not answer (up to
    MAX_DOUBTS times), so one row may rightly settle nothing for longer than `stall_limit`
    while its look-ups are still being made."""
    last_seen, last_change = (-1, -1), time.monotonic()
    while True:
        jobs = _job_totals(runtime)
        arrivals = _arrivals(runtime)
        view.show(Snapshot(jobs, calls_in_last_second(arrivals, now := time.time()), now))
        seen = (sum(j.totals()["rows"] - j.unaccounted for j in jobs), len(arrivals))
        if seen != last_seen or _waiting(jobs, now):
            last_seen, last_change = seen, time.monotonic()
        if all(j.settled or j.state == "paused" for j in jobs):
            return arrivals
        if time.monotonic() - last_change > stall_limit:
            view.warn(
                f"callqueue: no row settled and nothing reached Twilio for {stall_limit:.0f} s; "
                "giving up"
            )
            return arrivals
        time.sleep(POLL_SECONDS)


def _open_rows(runtime: LocalRuntime, view: RunView) -> dict[str, Any]:
    """When the run gave up with rows unsettled: where each stopped (its ledger state) and what
    the send queue holds, said on the terminal and returned for the report. Empty when every
    row settled."""
    from callqueue.local.open_rows import open_rows, queue_counts, warning

    jobs = [j for j in _job_totals(runtime) if not j.settled and j.state != "paused"]
    if not jobs:
        return {}
    env = runtime.env
    tally = runtime.tally.snapshot()
    rows = open_rows(
        runtime.client("dynamodb"),
        env["RESULTS_TABLE"],
        [j.job_id for j in jobs],
        lambda job_id, row: (job_id, row) in tally.outcomes,
        time.time(),
    )
    unclaimed = max(0, sum(j.unaccounted for j in jobs) - len(rows))
    queue = queue_counts(runtime.client("sqs"), env["SEND_QUEUE"])
    view.warn(warning(rows, unclaimed, queue))
    return {"rows": [r.as_json() for r in rows], "unclaimed": unclaimed, "send_queue": queue}


def _waiting(jobs: list[JobTotals], now: float) -> bool:
    """Whether a job's rows are not due yet (its start is later, or they wait for a send
    window or the next day): no row settling then is no stall."""
    unsettled = [j for j in jobs if not j.settled]
    return any(j.waiting_for or (j.starts_at or 0.0) > now for j in unsettled)


def _write_rejects(path: Path, rejects: dict[str, list[tuple[int, str]]]) -> None:
    import csv

    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["job_id", "row", "reason"])
        for job_id, rows in rejects.items():
            writer.writerows([job_id, row, reason] for row, reason in rows)


def _report(
    runtime: LocalRuntime,
    tally: Tally,
    jobs: list[JobTotals],
    arrivals: list[float],
    target_cps: int,
    delivery_error_codes: Mapping[str, int],
) -> dict[str, Any]:
    return build_report(
        jobs,
        error_codes=tally.error_codes(),
        arrivals=arrivals,
        first_attempts=tally.first_attempts,
        lags=tally.lags,
        target_cps=target_cps,
        aws_requests=runtime.aws_requests(),
        duration_seconds=time.time() - runtime.started_at,
        sender_scheduling=runtime.sender_scheduling,
        delivery_error_codes=delivery_error_codes,
    )


def up(args: argparse.Namespace) -> int:
    from callqueue.local.api_server import free_port
    from callqueue.local.runtime import LocalRuntime

    options = replace(_options(args), api_port=args.api_port or free_port())
    with LocalRuntime(options, on_step=_say) as runtime:
        print(f"moto (AWS):      {runtime.endpoint}  (aws --endpoint-url {runtime.endpoint} ...)")
        assert runtime.emulator is not None  # noqa: S101
        print(f"Twilio emulator: {runtime.emulator.base_url}")
        assert runtime.api is not None  # noqa: S101
        print(f"API (chalice local): {runtime.api.url}  (curl {runtime.api.url}/jobs)")
        # Any API key opens it locally: only API Gateway checks keys.
        print(f"Console: {runtime.api.url}/console", flush=True)
        print(
            "the stack's environment (eval these lines to use `callqueue suppression|dlq|resume`):"
        )
        for name, value in sorted(runtime.handler_environment().items()):
            print(f"  export {name}={value}")
        print(f"drop files into s3://{runtime.env['SOURCE_BUCKET']}/ ; Ctrl-C stops", flush=True)
        # Until Ctrl-C or SIGTERM (callqueue.cli.signals): the `with` stops every process.
        while True:
            time.sleep(3600)


def _say(text: str) -> None:
    print(f"{text}...", file=sys.stderr, flush=True)


def emulator(args: argparse.Namespace) -> int:
    from callqueue.local.emulator import serve_forever_cli

    serve_forever_cli(
        args.host,
        args.port,
        args.requests_log,
        args.faults,
        latency=args.latency,
        concurrency_limit=args.concurrency_limit,
        seed=args.seed,
    )
    return EXIT_OK


# Settings named on the command line as in Options.
_SAME_NAMES = (
    "requests_log",
    "faults",
    "lookup_faults",
    "latency",
    "concurrency_limit",
    "account_cps",
    "sender_limits",
    "rate_headroom",
    "seed",
)


def _options(args: argparse.Namespace) -> Options:
    from callqueue.local.options import Options

    return Options(
        cps=args.cps,
        window_seconds=args.window,
        slot_tolerance_seconds=args.slot_tolerance,
        **({} if args.slow_seconds is None else {"slow_seconds": args.slow_seconds}),
        **{name: getattr(args, name) for name in _SAME_NAMES},
    )


def _quiet_handlers(verbose: bool) -> None:
    """The handlers log each step at INFO, as they should in Lambda; a terminal shows the
    progress bar instead, and warnings (a job paused, an invocation failed) still."""
    if not verbose:
        for name in ("chalicelib", "downstream", "callqueue"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _write_outcomes(path: Path, runtime: LocalRuntime, tally: Tally) -> None:
    """Every row's outcome, in the columns of a deployed job's outcomes.csv after `job_id`."""
    import csv

    from callqueue.local.outcome_rows import job_outcomes, kept_columns
    from downstream.reconcile import outcome_cells, outcome_header

    kept = kept_columns(runtime)
    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(outcome_header(kept, job_id=True))
        for submitted in runtime.jobs:
            for outcome in job_outcomes(runtime, tally, submitted.job_id):
                writer.writerow([submitted.job_id, *outcome_cells(outcome, kept)])


def _job_totals(
    runtime: LocalRuntime,
    tally: Tally | None = None,
    deliveries: Mapping[str, Mapping[str, Mapping[str, int]]] | None = None,
) -> list[JobTotals]:
    from chalicelib.core.job_details import waiting_for

    tally = tally or runtime.tally
    result = []
    for submitted in runtime.jobs:
        job = runtime.job(submitted.job_id)
        counts = dict(tally.counts(submitted.job_id))
        if job is None:
            result.append(JobTotals(submitted.job_id, str(submitted.file), "pending", None, counts))
            continue
        counts["rejected"] = job.rejected
        rows = None if job.state == "splitting" else job.rows
        result.append(
            JobTotals(
                job.job_id,
                str(submitted.file),
                job.state,
                rows,
                counts,
                job.error,
                starts_at=job.started_at,
                retrying=tally.retrying_rows(job.job_id),
                waiting_for=waiting_for(job, time.time()),
                next_release_at=job.next_release_at,
                delivery=(deliveries or {}).get(job.job_id, {}),
            )
        )
    return result


def _arrivals(runtime: LocalRuntime) -> list[float]:
    if runtime.emulator is None:
        return []
    return [float(r["t"]) for r in list(runtime.emulator.requests)]
