"""The command's arguments: a subcommand each, and the options the rate and the local runtime
share between commands; `-v` and file-name completion on every subcommand; `--version`; and
`callqueue completion SHELL`, a completion script generated from these parsers by shtab (a
static script, installed once: unlike argcomplete's, a Tab starts no Python interpreter)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from callqueue.cli import arguments, deploy, files, local, operate, rate, remote, retry, test_send
from callqueue.cli.exits import EXIT_OK
from chalicelib.config import DEFAULT_RATE_HEADROOM, DEFAULT_SLOT_TOLERANCE_SECONDS

if TYPE_CHECKING:
    # The subcommands of a parser (argparse has no public name for their type).
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="callqueue", description="Call Twilio's APIs in bulk from a file, at a metered rate."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log debugging detail")
    parser.add_argument("--version", action="version", version=f"callqueue {version()}")
    sub = parser.add_subparsers(required=True, metavar="COMMAND")
    _add_file_commands(sub)
    test_send.add_test_send(sub)
    _add_local_commands(sub)
    _add_operations(sub)
    remote.add_commands(sub)
    rate.add_command(sub)
    retry.add_command(sub)
    _add_deployment(sub)
    _add_emulator(sub)
    _add_completion(sub)
    _everywhere(parser)
    return parser


def version() -> str:
    """The installed distribution's version; a source tree run without installing has none."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("callqueue")
    except PackageNotFoundError:
        return "(not installed: run from a source tree)"


# shtab's completion of a file name, per shell (shtab.FILE), without importing shtab until a
# script is generated.
_FILE = {"bash": "_shtab_compgen_files", "zsh": "_files", "tcsh": "f"}


def _everywhere(parser: argparse.ArgumentParser) -> None:
    """Every subcommand, however deep, takes `-v` (after its name too) and completes file
    names for its path arguments; also those other modules register."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for command in set(action.choices.values()):
                _everywhere(command)
        if action.type is Path:
            action.complete = _FILE  # type: ignore[attr-defined]
    if "-v" not in parser._option_string_actions:
        # SUPPRESS: unless given here, the value `callqueue -v COMMAND` set stays (argparse
        # would otherwise put this parser's default over it).
        parser.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
            help="log debugging detail",
        )  # fmt: skip


def _add_completion(sub: Commands) -> None:
    completion = sub.add_parser(
        "completion",
        help="print a shell completion script",
        description="Print a completion script for SHELL, e.g. "
        "`callqueue completion bash > ~/.local/share/bash-completion/completions/callqueue` "
        "or, for zsh, into a file `_callqueue` on $fpath.",
    )
    completion.add_argument("shell", choices=["bash", "zsh", "tcsh"])
    completion.set_defaults(command=completion_script)


def completion_script(args: argparse.Namespace) -> int:
    import shtab

    sys.stdout.write(shtab.complete(build_parser(), args.shell))
    return EXIT_OK


def _add_file_commands(sub: Commands) -> None:
    generate = sub.add_parser("generate", help="write a test file of Twilio magic-number calls")
    generate.add_argument("format", choices=["csv", "json", "jsonl"])
    generate.add_argument("count", type=arguments.positive)
    generate.add_argument("--out", type=Path)
    generate.add_argument("--seed", type=int)
    generate.set_defaults(command=files.generate)

    plan = sub.add_parser("plan", help="validate and plan a file without sending anything")
    plan.add_argument("file", type=Path)
    _rate_arguments(plan)
    plan.add_argument("--json", action="store_true", help="print one JSON object")
    arguments.add_params(plan)
    plan.add_argument(
        "--preview",
        type=arguments.count,
        default=3,
        metavar="N",
        help="show the first N rows as they are sent (default 3; 0: none)",
    )
    plan.add_argument(
        "--sender-limits",
        type=arguments.sender_limits,
        default="",
        help='per-sender messages per second for the ETA (default "auto": Twilio\'s defaults)',
    )
    plan.add_argument(
        "--prices",
        type=Path,
        help="a price table (JSON, as chalicelib/core/prices.json) for the cost estimate",
    )
    arguments.add_carry(plan)
    arguments.add_timing(plan)
    plan.add_argument(
        "--at",
        metavar="TIME",
        help="plan as if the job were uploaded then (ISO 8601 with an offset, or 'in 2h'; "
        "default: now)",
    )
    plan.add_argument(
        "--account-time-zone",
        metavar="ZONE",
        help="the zone whose midnight starts a day for --max-per-day and ACCOUNT_DAILY_LIMIT "
        "(default: $ACCOUNT_TIME_ZONE, else UTC)",
    )
    plan.set_defaults(command=files.plan)


def _add_local_commands(sub: Commands) -> None:
    run = sub.add_parser("run", help="run files through the whole pipeline on this machine")
    run.add_argument("files", type=Path, nargs="+", metavar="FILE")
    _rate_arguments(run)
    _local_arguments(run)
    arguments.add_params(run)
    arguments.add_carry(run)
    arguments.add_timing(run)
    run.add_argument("--report", type=Path, help="write the JSON report here")
    run.add_argument(
        "--rejects", type=Path, help="write every rejected row here (CSV: job_id,row,reason)"
    )
    run.add_argument(
        "--outcomes",
        type=Path,
        help="write every row's outcome here (CSV: job_id, then outcomes.csv's columns)",
    )
    run.add_argument(
        "--timeout",
        type=float,
        help=(
            "give up when no row has settled and nothing reached Twilio for this many seconds "
            "(default: the window, plus the in-doubt time and the send queue's visibility "
            "timeout, plus 60)"
        ),
    )
    run.add_argument(
        "--delivery-wait",
        type=float,
        default=30.0,
        metavar="SECONDS",
        help="once every row has its outcome, wait for the sent rows' delivery statuses until"
        " none has come for this long (default: 30; 0: do not wait)",
    )
    run.set_defaults(command=local.run)

    up = sub.add_parser("up", help="start the local stack and keep it running")
    _rate_arguments(up)
    _local_arguments(up)
    up.add_argument(
        "--api-port", type=int, default=0, help="port of the REST API (default: any free one)"
    )
    up.set_defaults(command=local.up)


def _add_operations(sub: Commands) -> None:
    suppression = sub.add_parser(
        "suppression", help="numbers never to call again (against the stack in the environment)"
    )
    suppression_sub = suppression.add_subparsers(required=True, metavar="ACTION")
    listing = suppression_sub.add_parser("list", help="list suppressed numbers")
    listing.set_defaults(command=operate.suppression_list)
    add = suppression_sub.add_parser("add", help="suppress a number")
    add.add_argument("number")
    add.add_argument("--reason", default="added by hand")
    add.set_defaults(command=operate.suppression_add)
    remove = suppression_sub.add_parser("remove", help="stop suppressing a number")
    remove.add_argument("number")
    remove.set_defaults(command=operate.suppression_remove)
    imports = suppression_sub.add_parser(
        "import", help="suppress every number of a CSV file (nothing if a line is bad)"
    )
    imports.add_argument("file", help="CSV: a number (or phone, To) column, optional reason")
    imports.add_argument("--reason", default="imported", help="for lines without a reason")
    imports.set_defaults(command=operate.suppression_import)
    export = suppression_sub.add_parser("export", help="write the list as CSV")
    export.add_argument("file", nargs="?", help="a file to write, or - (default) for stdout")
    export.set_defaults(command=operate.suppression_export)

    dlq = sub.add_parser("dlq", help="rows in the send queue's dead-letter queue")
    dlq_sub = dlq.add_subparsers(required=True, metavar="ACTION")
    dlq_list = dlq_sub.add_parser("list", help="show each dead-lettered row and why")
    dlq_list.set_defaults(command=operate.dlq_list)
    redrive = dlq_sub.add_parser("redrive", help="put dead-lettered rows back on the send queue")
    redrive.set_defaults(command=operate.dlq_redrive)


def _add_deployment(sub: Commands) -> None:
    deploy_stage = sub.add_parser(
        "deploy", help="deploy a stage to AWS: secret check, stack, functions, post-deploy"
    )
    deploy_stage.set_defaults(command=deploy.deploy_stage)
    destroy_stage = sub.add_parser(
        "destroy", help="delete a stage's functions, empty its buckets, delete its stack"
    )
    destroy_stage.set_defaults(command=deploy.destroy_stage)
    for command in (deploy_stage, destroy_stage):
        command.add_argument("--stage", required=True, help="dev, prod, ...")
        # A moto server at AWS_ENDPOINT_URL (the tests): without what moto cannot create.
        command.add_argument("--moto", action="store_true", help=argparse.SUPPRESS)
    _stack_parameters(deploy_stage)

    stage = sub.add_parser("stage", help="stages of .chalice/config.json")
    stage_sub = stage.add_subparsers(required=True, metavar="ACTION")
    stage_add = stage_sub.add_parser("add", help="add a complete stage (policies, credentials)")
    stage_add.add_argument("name")
    stage_add.add_argument("--live", action="store_true", help="live Twilio credentials, X-Ray")
    stage_add.set_defaults(command=deploy.stage_add)

    chalice = sub.add_parser(
        "chalice", help="a chalice command with the deployed stage's values (package, local, ...)"
    )
    chalice.add_argument("chalice_args", nargs=argparse.REMAINDER, metavar="ARGS")
    chalice.set_defaults(command=deploy.chalice)

    template = sub.add_parser(
        "template", help="print the infrastructure template with the state machine inlined"
    )
    template.set_defaults(command=deploy.template)

    infra = sub.add_parser("infra", help="deploy the AWS resources around `chalice deploy`")
    infra_sub = infra.add_subparsers(required=True, metavar="ACTION")
    infra_deploy = infra_sub.add_parser(
        "deploy", help="create or update the stack; write its values into .chalice/stacks/"
    )
    _stack_parameters(infra_deploy)
    infra_deploy.set_defaults(command=deploy.infra_deploy)
    post_deploy = infra_sub.add_parser(
        "post-deploy", help="after `chalice deploy`: ReportBatchItemFailures on the SQS triggers"
    )
    post_deploy.set_defaults(command=deploy.infra_post_deploy)
    destroy = infra_sub.add_parser("destroy", help="empty the buckets and delete the stack")
    destroy.set_defaults(command=deploy.infra_destroy)
    for action in (infra_deploy, post_deploy, destroy):
        action.add_argument("--stage", required=True, help="dev, prod, ...")


def _stack_parameters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--twilio-secret", help="the Twilio secret's name (callqueue/twilio)")
    parser.add_argument("--alert-email", help="subscribe this address to the alerts")
    parser.add_argument(
        "--parameter",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="another template parameter (e.g. ArchiveRetentionDays=365); repeatable",
    )


def _add_emulator(sub: Commands) -> None:
    emulator = sub.add_parser("emulator", help="run the Twilio emulator alone")
    emulator.add_argument("--host", default="127.0.0.1")
    emulator.add_argument("--port", type=int, default=8087)
    emulator.add_argument("--requests-log", type=Path)
    emulator.add_argument("--faults", type=arguments.faults, default=None)
    emulator.add_argument("--latency", type=float, default=0.0)
    emulator.add_argument("--concurrency-limit", type=arguments.positive)
    emulator.add_argument("--seed", type=int)
    emulator.set_defaults(command=local.emulator)


def _rate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--cps", type=arguments.positive, default=50, help="a job's calls per second"
    )
    parser.add_argument(
        "--window",
        type=arguments.window,
        default=900,
        help="seconds of calls per chunk, 1..900 (default 900, SQS's delay ceiling)",
    )


def _local_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--requests-log", type=Path, help="JSON Lines log of emulator requests")
    parser.add_argument(
        "--faults", type=arguments.faults, default=None, help="e.g. 429=0.1,reset=0.05"
    )
    parser.add_argument(
        "--lookup-faults",
        type=arguments.lookup_faults,
        default=None,
        help="faults of the emulator's lists and fetches (429, 500, reset, slow), e.g. 429=0.05",
    )
    parser.add_argument(
        "--slow-seconds",
        type=arguments.non_negative,
        default=None,
        help="how late a `slow` fault answers (default: past the Twilio client's read timeout)",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="emulator latency, seconds")
    parser.add_argument(
        "--concurrency-limit", type=arguments.positive, help="emulated account limit"
    )
    parser.add_argument(
        "--account-cps",
        type=arguments.positive,
        help="the account's calls per second, shared by all jobs (default: --cps)",
    )
    parser.add_argument(
        "--sender-limits",
        type=arguments.sender_limits,
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
