"""The `callqueue` command: generate, plan, run, up, emulator, infra."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from callqueue.local.faults import READ_KINDS, FaultSpec
from callqueue.report import OUTCOMES, JobTotals, build_report
from chalicelib.config import DEFAULT_RATE_HEADROOM, DEFAULT_SLOT_TOLERANCE_SECONDS
from chalicelib.errors import CallqueueError

if TYPE_CHECKING:
    from callqueue.local.options import Options
    from callqueue.local.outcomes import Tally
    from callqueue.local.runtime import LocalRuntime

EXIT_OK, EXIT_UNACCOUNTED, EXIT_USAGE = 0, 1, 2


class UsageError(CallqueueError):
    """Bad arguments or an unreadable file: exit 2 with the message."""


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return int(args.command(args))
    except UsageError as error:
        print(f"callqueue: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("callqueue: interrupted", file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callqueue", description="Call Twilio's APIs in bulk from a file, at a metered rate."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")

    generate = sub.add_parser("generate", help="write a test file of Twilio magic-number calls")
    generate.add_argument("format", choices=["csv", "json", "jsonl"])
    generate.add_argument("count", type=_positive)
    generate.add_argument("--out", type=Path)
    generate.add_argument("--seed", type=int)
    generate.set_defaults(command=_generate)

    plan = sub.add_parser("plan", help="validate and plan a file without sending anything")
    plan.add_argument("file", type=Path)
    _rate_arguments(plan)
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    plan.add_argument(
        "--sender-limits",
        type=_sender_limits,
        default="",
        help='per-sender messages per second for the ETA (default "auto": Twilio\'s defaults)',
    )
    plan.set_defaults(command=_plan)

    run = sub.add_parser("run", help="run files through the whole pipeline on this machine")
    run.add_argument("files", type=Path, nargs="+", metavar="FILE")
    _rate_arguments(run)
    _local_arguments(run)
    run.add_argument("--report", type=Path, help="write the JSON report here")
    run.add_argument(
        "--outcomes",
        type=Path,
        help="write every row's outcome here (CSV: job_id,row,outcome,error_code)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        help="give up when no row has settled for this many seconds (default: window + 120)",
    )
    run.set_defaults(command=_run)

    up = sub.add_parser("up", help="start the local stack and keep it running")
    _rate_arguments(up)
    _local_arguments(up)
    up.add_argument(
        "--api-port", type=int, default=0, help="port of the REST API (default: any free one)"
    )
    up.set_defaults(command=_up)

    suppression = sub.add_parser(
        "suppression", help="numbers never to call again (against the stack in the environment)"
    )
    suppression_sub = suppression.add_subparsers(required=True, metavar="ACTION")
    listing = suppression_sub.add_parser("list", help="list suppressed numbers")
    listing.set_defaults(command=_suppression_list)
    add = suppression_sub.add_parser("add", help="suppress a number")
    add.add_argument("number")
    add.add_argument("--reason", default="added by hand")
    add.set_defaults(command=_suppression_add)
    remove = suppression_sub.add_parser("remove", help="stop suppressing a number")
    remove.add_argument("number")
    remove.set_defaults(command=_suppression_remove)

    dlq = sub.add_parser("dlq", help="rows in the send queue's dead-letter queue")
    dlq_sub = dlq.add_subparsers(required=True, metavar="ACTION")
    dlq_list = dlq_sub.add_parser("list", help="show each dead-lettered row and why")
    dlq_list.set_defaults(command=_dlq_list)
    redrive = dlq_sub.add_parser("redrive", help="put dead-lettered rows back on the send queue")
    redrive.set_defaults(command=_dlq_redrive)

    resume = sub.add_parser("resume", help="continue a paused job")
    resume.add_argument("job_id")
    resume.set_defaults(command=_resume)

    template = sub.add_parser(
        "template", help="print the infrastructure template with the state machine inlined"
    )
    template.set_defaults(command=_template)

    infra = sub.add_parser("infra", help="deploy the AWS resources around `chalice deploy`")
    infra_sub = infra.add_subparsers(required=True, metavar="ACTION")
    infra_deploy = infra_sub.add_parser(
        "deploy", help="create or update the stack; write config.json and the IAM policies"
    )
    infra_deploy.add_argument("--twilio-secret", help="the Twilio secret's name (callqueue/twilio)")
    infra_deploy.add_argument("--alert-email", help="subscribe this address to the alerts")
    infra_deploy.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another template parameter (e.g. ArchiveRetentionDays=365); repeatable",
    )
    infra_deploy.set_defaults(command=_infra_deploy)
    post_deploy = infra_sub.add_parser(
        "post-deploy", help="after `chalice deploy`: ReportBatchItemFailures on the SQS triggers"
    )
    post_deploy.set_defaults(command=_infra_post_deploy)
    destroy = infra_sub.add_parser("destroy", help="empty the buckets and delete the stack")
    destroy.set_defaults(command=_infra_destroy)
    for action in (infra_deploy, post_deploy, destroy):
        action.add_argument("--stage", required=True, help="dev, prod, ...")

    emulator = sub.add_parser("emulator", help="run the Twilio emulator alone")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8087)
    emulator.add_argument("--requests-log", type=Path)
    emulator.add_argument("--faults", type=_faults, default=None)
    emulator.add_argument("--latency", type=float, default=0.0)
    emulator.add_argument("--concurrency-limit", type=_positive)
    emulator.add_argument("--seed", type=int)
    emulator.set_defaults(command=_emulator)
    return parser


def _rate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--cps", type=_positive, default=50, help="a job's calls per second")
    parser.add_argument(
        "--window",
        type=_window,
        default=900,
        help="seconds of calls per chunk, 1..900 (default 900, SQS's delay ceiling)",
    )


def _local_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests-log", type=Path, help="JSON Lines log of emulator requests")
    parser.add_argument("--faults", type=_faults, default=None, help="e.g. 429=0.1,reset=0.05")
    parser.add_argument(
        "--lookup-faults",
        type=_lookup_faults,
        default=None,
        help="faults of the emulator's lists and fetches (429, 500, reset, slow), e.g. 429=0.05",
    )
    parser.add_argument(
        "--slow-seconds",
        type=_non_negative,
        default=None,
        help="how late a `slow` fault answers (default: past the Twilio client's read timeout)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="emulator latency, seconds")
    parser.add_argument("--concurrency-limit", type=_positive, help="emulated account limit")
    parser.add_argument(
        "--account-cps",
        type=_positive,
        help="the account's calls per second, shared by all jobs (default: --cps)",
    )
    parser.add_argument(
        "--sender-limits",
        type=_sender_limits,
        default="",
        help='per-sender messages per second: "auto" or "auto,+15005550006=10" (default off)',
    )
    parser.add_argument(
        "--slot-tolerance",
        type=float,
        default=float(DEFAULT_SLOT_TOLERANCE_SECONDS),
        help="seconds a call may go late for its slot before it takes another "
        f"(default {DEFAULT_SLOT_TOLERANCE_SECONDS})",
    )
    parser.add_argument(
        "--rate-headroom",
        type=float,
        default=float(DEFAULT_RATE_HEADROOM),
        help="share of the account's rate left unused for late arrivals "
        f"(default {DEFAULT_RATE_HEADROOM})",
    )
    parser.add_argument("--seed", type=int, help="seed for the emulator's fault draws")


def _sender_limits(text: str) -> str:
    from chalicelib.core.metering import SenderLimits

    try:
        SenderLimits.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def _window(text: str) -> int:
    value = _positive(text)
    if value > 900:
        raise argparse.ArgumentTypeError("the window is at most 900 seconds (SQS's delay ceiling)")
    return value


def _faults(text: str) -> FaultSpec:
    try:
        return FaultSpec.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _lookup_faults(text: str) -> FaultSpec:
    spec = _faults(text)
    unfit = sorted(kind.value for kind in spec.kinds() - READ_KINDS)
    if unfit:
        raise argparse.ArgumentTypeError(
            f"a look-up changes nothing, so it cannot fail with {', '.join(unfit)};"
            " use 429, 500, reset or slow"
        )
    return spec


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def _readable(path: Path) -> None:
    from chalicelib.intake.parsing import FileFormatError, detect_format

    if not path.is_file():
        raise UsageError(f"{path}: no such file")
    try:
        detect_format(path.name)
    except FileFormatError as error:
        raise UsageError(f"{path}: {error}") from None


# -- commands ---------------------------------------------------------------------------------


def _generate(args: argparse.Namespace) -> int:
    from callqueue.generate import main_generate

    path = main_generate(args.format, args.count, args.out, args.seed)
    print(path)
    return EXIT_OK


def _plan(args: argparse.Namespace) -> int:
    from chalicelib.core.metering import SenderLimits
    from chalicelib.core.schedule import Schedule
    from chalicelib.intake.parsing import FileFormatError, detect_format
    from chalicelib.intake.plan import plan

    _readable(args.file)
    senders = SenderLimits.parse(args.sender_limits or "auto")
    try:
        with args.file.open("rb") as stream:
            fmt = detect_format(args.file.name)
            result = plan(stream, fmt, Schedule(args.cps, args.window), senders)
    except FileFormatError as error:
        raise UsageError(f"{args.file}: {error}") from None
    if args.json:
        print(json.dumps(result.to_json(), indent=2))
        return EXIT_OK
    print(f"{args.file}: {result.rows} rows, {result.valid} valid, {result.rejected} rejected")
    print(
        f"  {result.chunks} chunk(s) of up to {args.window * args.cps} rows at {args.cps} CPS, "
        f"last call due after {_duration(result.eta_seconds)}"
    )
    if result.by_api:
        print("  by api: " + ", ".join(f"{k} {v}" for k, v in sorted(result.by_api.items())))
    gsm, ucs = result.messages_by_encoding["GSM-7"], result.messages_by_encoding["UCS-2"]
    if gsm or ucs:
        print(
            f"  SMS: {gsm} GSM-7 ({result.segments['GSM-7']} segments), "
            f"{ucs} UCS-2 ({result.segments['UCS-2']} segments)"
        )
    if result.eta_with_sender_limits > result.eta_seconds:
        print(
            "  under per-sender limits the last message goes after "
            f"{_duration(result.eta_with_sender_limits)}"
        )
    for warning in result.warnings():
        print(f"  warning: {warning}")
    for reject in result.rejects[:20]:
        print(f"  rejected row {reject['row']}: {reject['reason']}")
    if len(result.rejects) > 20:
        print(f"  ... and {len(result.rejects) - 20} more rejected rows")
    return EXIT_OK


def _options(args: argparse.Namespace) -> Options:
    from callqueue.local.options import Options

    return Options(
        cps=args.cps,
        window_seconds=args.window,
        requests_log=args.requests_log,
        faults=args.faults,
        lookup_faults=args.lookup_faults,
        **({} if args.slow_seconds is None else {"slow_seconds": args.slow_seconds}),
        latency=args.latency,
        concurrency_limit=args.concurrency_limit,
        account_cps=args.account_cps,
        sender_limits=args.sender_limits,
        slot_tolerance_seconds=args.slot_tolerance,
        rate_headroom=args.rate_headroom,
        seed=args.seed,
    )


def _run(args: argparse.Namespace) -> int:
    from callqueue.local.runtime import LocalRuntime

    for path in args.files:
        _readable(path)
    options = _options(args)
    stall_limit = args.timeout or float(args.window + 120)
    progress = Progress(sys.stderr, options.cps)
    with LocalRuntime(options) as runtime:
        _quiet_handlers(args.verbose)
        for path in args.files:
            runtime.submit(path)
        last_settled, last_change = -1, time.monotonic()
        while True:
            jobs = _job_totals(runtime)
            arrivals = _arrivals(runtime)
            progress.show(jobs, arrivals)
            settled = sum(j.totals()["rows"] - j.unaccounted for j in jobs)
            if settled != last_settled:
                last_settled, last_change = settled, time.monotonic()
            if all(j.settled for j in jobs):
                break
            if all(j.settled or j.state == "paused" for j in jobs):
                for job in (j for j in jobs if j.state == "paused"):
                    print(
                        f"\ncallqueue: job {job.job_id} was paused by systemic Twilio errors "
                        "(see by_error_code); fix the setting, then `callqueue resume JOB` "
                        "continues a deployed job",
                        file=sys.stderr,
                    )
                break
            if time.monotonic() - last_change > stall_limit:
                print(
                    f"\ncallqueue: no row settled for {stall_limit:.0f} s; giving up",
                    file=sys.stderr,
                )
                break
            time.sleep(0.25)
        # One snapshot for the whole report: a paused job's calls in flight settle meanwhile.
        tally = runtime.tally.snapshot()
        jobs = _job_totals(runtime, tally)
        progress.finish(jobs, arrivals)
        if args.outcomes:
            _write_outcomes(args.outcomes, runtime, tally)
        report = build_report(
            jobs,
            error_codes=tally.error_codes(),
            arrivals=arrivals,
            first_attempts=tally.first_attempts,
            lags=tally.lags,
            target_cps=options.cps,
            aws_requests=runtime.aws_requests(),
            duration_seconds=time.time() - runtime.started_at,
            sender_scheduling=runtime.sender_scheduling,
        )
    _print_summary(report)
    if args.report:
        args.report.write_text(json.dumps(report, indent=2) + "\n")
        print(f"report: {args.report}")
    if any(j.state == "failed" for j in jobs):
        return EXIT_USAGE
    return EXIT_OK if report["totals"]["unaccounted"] == 0 else EXIT_UNACCOUNTED


def _quiet_handlers(verbose: bool) -> None:
    """The handlers log each step at INFO, as they should in Lambda; a terminal shows the
    progress bar instead, and warnings (a job paused, an invocation failed) still."""
    if not verbose:
        for name in ("chalicelib", "downstream", "callqueue"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _write_outcomes(path: Path, runtime: LocalRuntime, tally: Tally) -> None:
    import csv

    with path.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["job_id", "row", "outcome", "error_code"])
        for submitted in runtime.jobs:
            rows: list[tuple[int, str, int | str | None]] = [
                (row, "rejected", None) for row, _ in runtime.rejects(submitted.job_id)
            ]
            rows += tally.rows(submitted.job_id)
            for row, outcome, code in sorted(rows):
                writer.writerow([submitted.job_id, row, outcome, "" if code is None else code])


def _up(args: argparse.Namespace) -> int:
    from callqueue.local.api_server import free_port
    from callqueue.local.runtime import LocalRuntime

    options = replace(_options(args), api_port=args.api_port or free_port())
    with LocalRuntime(options) as runtime:
        print(f"moto (AWS):      {runtime.endpoint}  (aws --endpoint-url {runtime.endpoint} ...)")
        assert runtime.emulator is not None  # noqa: S101
        print(f"Twilio emulator: {runtime.emulator.base_url}")
        assert runtime.api is not None  # noqa: S101
        print(f"API (chalice local): {runtime.api.url}  (curl {runtime.api.url}/jobs)")
        print(
            "the stack's environment (eval these lines to use `callqueue suppression|dlq|resume`):"
        )
        for name, value in sorted(runtime.handler_environment().items()):
            print(f"  export {name}={value}")
        print(f"drop files into s3://{runtime.env['SOURCE_BUCKET']}/ ; Ctrl-C stops", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            print("stopping")
    return EXIT_OK


def _suppression_list(args: argparse.Namespace) -> int:
    from chalicelib import wiring

    for entry in wiring.suppression().list():
        code = "" if entry.error_code is None else f" ({entry.error_code})"
        print(f"{entry.number}\t{entry.reason}{code}\t{entry.job_id or ''}")
    return EXIT_OK


def _suppression_add(args: argparse.Namespace) -> int:
    from chalicelib import wiring

    added = wiring.suppression().add(args.number, args.reason)
    print(f"{args.number}: {'suppressed' if added else 'already suppressed'}")
    return EXIT_OK


def _suppression_remove(args: argparse.Namespace) -> int:
    from chalicelib import wiring

    removed = wiring.suppression().remove(args.number)
    print(f"{args.number}: {'removed' if removed else 'was not suppressed'}")
    return EXIT_OK


def _dlq_list(args: argparse.Namespace) -> int:
    from chalicelib import wiring

    for row in wiring.send_queue().dead_letters():
        error = row.get("last_error") or {}
        why = f"HTTP {error.get('status')} code {error.get('code')}" if error else "redriven by SQS"
        print(f"{row['job_id']}\trow {row['row']}\tattempt {row.get('attempt', 1)}\t{why}")
    return EXIT_OK


def _dlq_redrive(args: argparse.Namespace) -> int:
    from chalicelib import wiring

    moved = wiring.send_queue().redrive_dead_letters()
    print(f"{moved} row(s) put back on the send queue")
    return EXIT_OK


def _resume(args: argparse.Namespace) -> int:
    from chalicelib import wiring
    from chalicelib.aws.jobs_table import StateChanged
    from chalicelib.release.resume import resume

    try:
        start = resume(wiring.jobs(), args.job_id, now=time.time())
    except StateChanged as error:
        raise UsageError(str(error)) from None
    print(f"{args.job_id}: resumed; rows now due from {time.ctime(start)}")
    return EXIT_OK


def _template(args: argparse.Namespace) -> int:
    from callqueue.deploy.stack import render_template

    print(json.dumps(render_template(), indent=2))
    return EXIT_OK


def _infra_deploy(args: argparse.Namespace) -> int:
    import boto3

    from callqueue.deploy import infra

    parameters = dict(_key_value(p) for p in args.parameter)
    if args.twilio_secret:
        parameters["TwilioSecretName"] = args.twilio_secret
    if args.alert_email:
        parameters["AlertEmail"] = args.alert_email
    try:
        env = infra.deploy(
            boto3.client("cloudformation"),
            boto3.client("secretsmanager"),
            args.stage,
            parameters=parameters,
        )
    except infra.InfraError as error:
        raise UsageError(str(error)) from None
    print(
        f"stack {infra.stack_name(args.stage)}: {len(env)} outputs written to .chalice/config.json"
    )
    print(f"policies rendered into .chalice/policies/{args.stage}/")
    stage = args.stage
    print(f"next: chalice deploy --stage {stage} && callqueue infra post-deploy --stage {stage}")
    return EXIT_OK


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--parameter {text!r}: expected KEY=VALUE")
    return key, value


def _infra_post_deploy(args: argparse.Namespace) -> int:
    import boto3

    from callqueue.deploy import infra

    try:
        changed = infra.post_deploy(boto3.client("lambda"), args.stage)
    except infra.InfraError as error:
        raise UsageError(str(error)) from None
    print("ReportBatchItemFailures on: " + ", ".join(changed))
    return EXIT_OK


def _infra_destroy(args: argparse.Namespace) -> int:
    import boto3

    from callqueue.deploy import infra

    try:
        buckets = infra.destroy(boto3.client("cloudformation"), boto3.client("s3"), args.stage)
    except infra.InfraError as error:
        raise UsageError(str(error)) from None
    print(f"emptied {len(buckets)} bucket(s); stack {infra.stack_name(args.stage)} deleted")
    return EXIT_OK


def _emulator(args: argparse.Namespace) -> int:
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


# -- progress and summary ---------------------------------------------------------------------


def _job_totals(runtime: LocalRuntime, tally: Tally | None = None) -> list[JobTotals]:
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
            JobTotals(job.job_id, str(submitted.file), job.state, rows, counts, job.error)
        )
    return result


def _arrivals(runtime: LocalRuntime) -> list[float]:
    if runtime.emulator is None:
        return []
    return [float(r["t"]) for r in list(runtime.emulator.requests)]


class Progress:
    """A one-line progress bar on a terminal; a line every few seconds otherwise (CI logs)."""

    WIDTH = 28

    def __init__(self, stream: TextIO, cps: int) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._cps = cps
        self._last_line = 0.0

    def show(self, jobs: Sequence[JobTotals], arrivals: Sequence[float]) -> None:
        now = time.monotonic()
        if not self._tty and now - self._last_line < 2.0:
            return
        self._last_line = now
        line = self._line(jobs, arrivals)
        if self._tty:
            self._stream.write("\r" + line + "\x1b[K")
        else:
            self._stream.write(line + "\n")
        self._stream.flush()

    def finish(self, jobs: Sequence[JobTotals], arrivals: Sequence[float]) -> None:
        line = self._line(jobs, arrivals)
        self._stream.write(("\r" + line + "\x1b[K\n") if self._tty else line + "\n")
        self._stream.flush()

    def _line(self, jobs: Sequence[JobTotals], arrivals: Sequence[float]) -> str:
        rows = sum(j.totals()["rows"] for j in jobs)
        counts = {o: sum(j.totals()[o] for j in jobs) for o in OUTCOMES}
        done = sum(counts.values())
        pending = max(0, rows - done)
        now = time.time()
        current = sum(1 for t in arrivals if t > now - 1.0)
        filled = int(self.WIDTH * done / rows) if rows else 0
        bar = "#" * filled + "." * (self.WIDTH - filled)
        eta = pending / self._cps if pending else 0.0
        state = "splitting" if any(j.rows is None for j in jobs) else f"{done}/{rows}"
        return (
            f"[{bar}] {state} sent {counts['sent']} failed {counts['failed']} "
            f"rejected {counts['rejected']} suppressed {counts['suppressed']} "
            f"other {counts['unknown'] + counts['dead_lettered']} "
            f"pending {pending} | {current}/s | ETA {_duration(eta)}"
        )


def _print_summary(report: dict[str, object]) -> None:
    columns = ("rows", *OUTCOMES, "unaccounted")
    header = f"{'job':<34} " + " ".join(f"{c[:8]:>8}" for c in columns)
    print(header)
    jobs = report["jobs"]
    assert isinstance(jobs, list)  # noqa: S101
    for job in jobs:
        totals = job["totals"]
        print(f"{job['job_id'][:34]:<34} " + " ".join(f"{totals[c]:>8}" for c in columns))
        if job.get("error"):
            print(f"  failed: {job['error']}")
    totals = report["totals"]
    assert isinstance(totals, dict)  # noqa: S101
    print(f"{'total':<34} " + " ".join(f"{totals[c]:>8}" for c in columns))
    rate = report["rate"]
    assert isinstance(rate, dict)  # noqa: S101
    print(
        f"rate: target {rate['target_cps']} CPS, achieved {rate['achieved_cps']} CPS, "
        f"max {rate['max_calls_in_any_1s']} calls in any 1 s, "
        f"lag p50 {rate['lag_seconds_p50']} s p99 {rate['lag_seconds_p99']} s; "
        f"{report['duration_seconds']} s in all"
    )
    codes = report["by_error_code"]
    assert isinstance(codes, dict)  # noqa: S101
    if codes:
        print("errors: " + ", ".join(f"{code} x{n}" for code, n in codes.items()))


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


if __name__ == "__main__":
    sys.exit(main())
