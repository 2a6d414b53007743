"""Commands on a deployed stack through its REST API (docs/cli.md): `submit` files and watch
them, list `jobs`, a job's `status`, `pause`, `resume` and `cancel` it, fetch its `outcomes` and
`rejects`. They use the Python API (callqueue.client); the stack is found by `--stage` (its
stack's outputs) or given by `--api-url` (e.g. `callqueue up`'s API).

`resume` without `--stage` or `--api-url` keeps its older way: the stack the environment names
(operate.resume).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from callqueue.cli import arguments, operate
from callqueue.cli.exits import EXIT_OK, EXIT_UNACCOUNTED, EXIT_USAGE, UsageError, readable
from callqueue.cli.progress import (
    RunView,
    Snapshot,
    calls_in_last_second,
    duration,
    wait_text,
)
from callqueue.cli.remote_view import (
    SettledRate,
    local_time,
    print_status,
    print_summary,
    totals_of,
)

if TYPE_CHECKING:
    from callqueue.client import Client, Job, JobStatus

    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

Command = Callable[[argparse.Namespace], int]
# How often `submit` asks for its jobs' status: each answer reads the job's results.
POLL_SECONDS = 2.0


def add_commands(sub: Commands) -> None:
    submit = sub.add_parser("submit", help="send files through a deployed stack and watch them")
    submit.add_argument("files", type=Path, nargs="+", metavar="FILE")
    submit.add_argument("--cps", type=arguments.positive, help="the job's calls per second")
    submit.add_argument("--window", type=arguments.window, help="seconds of calls per chunk")
    submit.add_argument("--name", help="the job's name in its id (default: the file's name)")
    arguments.add_params(submit)
    submit.add_argument(
        "--resend", action="store_true", help="send content sent before within the retention"
    )
    submit.add_argument("--detach", action="store_true", help="print the job ids and return")
    submit.add_argument(
        "--timeout", type=arguments.non_negative, help="stop watching after this many seconds"
    )
    arguments.add_carry(submit, reference=None)
    arguments.add_timing(submit)
    stack_options(submit, submit_files)

    jobs = sub.add_parser("jobs", help="a deployed stack's most recent jobs")
    jobs.add_argument("--limit", type=arguments.positive, default=20, help="1..100 (default 20)")
    jobs.add_argument("--json", action="store_true", help="print the API's JSON")
    stack_options(jobs, list_jobs)

    status = sub.add_parser("status", help="a job's state, counts, rate and ETA")
    status.add_argument("job_id", metavar="JOB")
    status.add_argument("--json", action="store_true", help="print the API's JSON")
    stack_options(status, job_status)

    for action, what in (("pause", "stop calling a job's rows"), ("cancel", "end a job")):
        steer = sub.add_parser(action, help=what)
        steer.add_argument("job_id", metavar="JOB")
        stack_options(steer, functools.partial(steer_job, action))

    resume = sub.add_parser(
        "resume", help="continue a paused job (the environment's stack without --stage/--api-url)"
    )
    resume.add_argument("job_id", metavar="JOB")
    stack_options(resume, resume_job, required=False)

    for report in ("outcomes", "rejects"):
        fetch = sub.add_parser(report, help=f"a job's {report}.csv (to stdout, or -o FILE)")
        fetch.add_argument("job_id", metavar="JOB")
        fetch.add_argument("-o", "--output", type=Path, help="write it here")
        stack_options(fetch, functools.partial(fetch_report, report))


def stack_options(
    parser: argparse.ArgumentParser, command: Command, *, required: bool = True
) -> None:
    """The options that name the stack, and the command run with the client's errors as one
    line each."""
    where = parser.add_argument_group("the stack")
    where.add_argument("--stage", help="the deployed stage (found by its stack's outputs)")
    where.add_argument(
        "--api-url", help="the API's URL instead (e.g. `callqueue up`'s); or CALLQUEUE_API_URL"
    )
    where.add_argument("--api-key", help="the stage's API key; or CALLQUEUE_API_KEY")
    where.add_argument(
        "--auth",
        choices=("api_key", "iam", "none"),
        help="how requests are authenticated (default: the stage's API_AUTH; for --api-url,"
        " api_key when a key is given, else none)",
    )
    parser.set_defaults(command=functools.partial(_run, command, required))


def _run(command: Command, required: bool, args: argparse.Namespace) -> int:
    from callqueue.client import ClientError, ConnectionFailed, ServerError, TransferFailed

    if required and not (args.stage or args.api_url or os.environ.get("CALLQUEUE_API_URL")):
        raise UsageError("name the stack: --stage STAGE, or --api-url URL")
    try:
        return command(args)
    except (ServerError, ConnectionFailed, TransferFailed) as error:
        print(f"callqueue: {error}", file=sys.stderr)
        return EXIT_UNACCOUNTED
    except ClientError as error:
        raise UsageError(str(error)) from None


def client_of(args: argparse.Namespace) -> Client:
    from callqueue.client import Client

    return Client(args.stage, api_url=args.api_url, api_key=args.api_key, auth=args.auth)


# -- submit -------------------------------------------------------------------------------------


def submit_files(args: argparse.Namespace) -> int:
    for path in args.files:
        readable(path)
    # Read here, so a bad value is one line before anything is sent, and every file starts
    # at the same time however long the uploads take.
    timing = arguments.timing_of(args, time.time())
    hours, days = timing.window.spec() if timing.window is not None else (None, None)
    client = client_of(args)
    jobs: list[tuple[Job, Path]] = []
    for index, path in enumerate(args.files, 1):
        name = args.name if not args.name or len(args.files) == 1 else f"{args.name}-{index}"
        job = client.submit(
            path,
            cps=args.cps,
            window=args.window,
            name=name,
            resend=args.resend,
            params=dict(args.params) or None,
            reference_column=args.reference_column,
            keep_columns=args.keep_columns,
            start_at=timing.fields().get("start_at"),
            send_window=hours,
            send_days=days,
            max_per_day=timing.max_per_day,
        )
        print(f"{path}: job {job.job_id}", file=sys.stderr)
        jobs.append((job, path))
    if args.detach:
        for job, _ in jobs:
            print(job.job_id)
        return EXIT_OK
    try:
        statuses = _watch(jobs, args.cps, args.timeout)
    except KeyboardInterrupt:
        print(
            f"\ncallqueue: stopped watching; the jobs go on ({_see(jobs, args)})", file=sys.stderr
        )
        return 130
    print_summary(statuses, [str(p) for _, p in jobs], [job for job, _ in jobs])
    if any(s.state == "failed" for s in statuses):
        return EXIT_USAGE
    if any(s.state == "duplicate" for s in statuses):
        print("callqueue: a duplicate sends nothing; --resend sends it again", file=sys.stderr)
        return EXIT_UNACCOUNTED
    return EXIT_OK if all(s.finished for s in statuses) else EXIT_UNACCOUNTED


def _watch(
    jobs: Sequence[tuple[Job, Path]],
    cps: int | None,
    timeout: float | None,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> list[JobStatus]:
    """Show the jobs' progress (as `run` does) until each is finished, or every one left is
    paused, or `timeout` seconds have passed; returns their last statuses."""
    from rich.console import Console

    from callqueue.client import JobNotFound
    from callqueue.client.client import APPEAR_SECONDS
    from callqueue.client.records import SUBMITTED

    rate = SettledRate()
    started = time.monotonic()
    # The ETA's rate: the one asked for, else the jobs' own once the stack has read them.
    with RunView(Console(stderr=True), cps or 1) as view:
        view.step("waiting for the stack to read the files")
        while True:
            statuses = [job.status() for job, _ in jobs]
            totals = totals_of(statuses, [str(p) for _, p in jobs])
            # Rows the intake rejected were never called: not part of the rate.
            called = sum(s.settled - s.counts.get("rejected", 0) for s in statuses)
            now = time.time()
            snapshot = Snapshot(totals, calls_in_last_second(rate.observe(now, called), now), now)
            targets = [s.target_cps for s in statuses if s.target_cps]
            if not cps and targets:
                view.target(max(targets))
            view.show(snapshot)
            unseen = [s.job_id for s in statuses if s.state == SUBMITTED]
            if unseen and time.monotonic() - started > APPEAR_SECONDS:
                raise JobNotFound(
                    f"job {unseen[0]} is not known {APPEAR_SECONDS:.0f} s after its upload: is"
                    " the stack's splitter running?",
                    status=404,
                )
            ended = all(s.finished or s.state == "paused" for s in statuses)
            out_of_time = timeout is not None and time.monotonic() - started >= timeout
            if ended or out_of_time:
                view.finish(snapshot)
                break
            sleep(POLL_SECONDS)
    for status in statuses:
        if status.state == "paused":
            print(
                f"callqueue: job {status.job_id} is paused; `callqueue resume"
                f" {status.job_id}` continues it",
                file=sys.stderr,
            )
    if out_of_time and not ended:
        print(
            f"callqueue: stopped watching after {duration(timeout or 0)}; the jobs go on",
            file=sys.stderr,
        )
    return statuses


def _see(jobs: Sequence[tuple[Job, Path]], args: argparse.Namespace) -> str:
    """The commands that show the jobs again."""
    where = f" --stage {args.stage}" if args.stage else ""
    where += f" --api-url {args.api_url}" if args.api_url else ""
    return "; ".join(f"callqueue status {job.job_id}{where}" for job, _ in jobs)


# -- the other commands -------------------------------------------------------------------------


def list_jobs(args: argparse.Namespace) -> int:
    summaries = client_of(args).jobs(args.limit)
    if args.json:
        print(json.dumps([dataclasses.asdict(s) for s in summaries], indent=2))
        return EXIT_OK
    print(f"{'job':<46} {'state':<10} {'rows':>8} {'rejected':>8} {'cps':>5}  created")
    now = time.time()
    for s in summaries:
        created = local_time(s.created_at)
        waits = wait_text(s.waiting_for, s.start_at, s.next_release_at, now)
        print(
            f"{s.job_id:<46} {s.state:<10} {_n(s.rows):>8} {_n(s.rejected):>8} {_n(s.cps):>5}"
            f"  {created}" + (f"  {waits}" if waits else "")
        )
    return EXIT_OK


def job_status(args: argparse.Namespace) -> int:
    status = client_of(args).job(args.job_id).status()
    if args.json:
        print(json.dumps(dict(status.raw), indent=2))
    else:
        print_status(status)
    return EXIT_OK


def steer_job(action: str, args: argparse.Namespace) -> int:
    job = client_of(args).job(args.job_id)
    state = {"pause": job.pause, "cancel": job.cancel, "resume": job.resume}[action]()
    print(f"{args.job_id}: {state}")
    return EXIT_OK


def resume_job(args: argparse.Namespace) -> int:
    if args.stage or args.api_url or os.environ.get("CALLQUEUE_API_URL"):
        return steer_job("resume", args)
    if not os.environ.get("JOBS_TABLE"):
        raise UsageError(
            "name the stack: --stage STAGE, --api-url URL, or its environment (JOBS_TABLE and"
            " the rest, as `callqueue up` prints them)"
        )
    return operate.resume(args)


def fetch_report(report: str, args: argparse.Namespace) -> int:
    job = client_of(args).job(args.job_id)
    if args.output is None:
        job.download("outcomes" if report == "outcomes" else "rejects", sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return EXIT_OK
    if report == "outcomes":
        job.outcomes(args.output)
    else:
        job.rejects(args.output)
    print(f"{report}: {args.output}", file=sys.stderr)
    return EXIT_OK


def _n(value: int | None) -> str:
    return "" if value is None else str(value)
