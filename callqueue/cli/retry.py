"""`callqueue retry JOB`: send a finished job's failed rows again as a new job, on a deployed stack
or `callqueue up`'s (docs/cli.md), through its REST API (POST /jobs/{id}/retry)."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from callqueue.cli import arguments, remote
from callqueue.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from callqueue.cli.remote import Commands


def _names(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("name at least one outcome")
    return names


def _codes(text: str) -> list[int]:
    codes = [arguments.positive(n.strip()) for n in text.split(",") if n.strip()]
    if not codes:
        raise argparse.ArgumentTypeError("name at least one error code")
    return codes


def add_command(sub: Commands) -> None:
    parser = sub.add_parser(
        "retry",
        help="send a finished job's failed rows again, as a new job",
        description="Make a new job of a completed or cancelled job's rows that ended in the"
        " outcomes named (default failed,dead_lettered; unknown only when named: those rows may"
        " have been sent; undelivered: sent rows whose message was undelivered or failed, or whose"
        " call was busy, unanswered or failed), with the same parameters. Rows delivered,"
        " suppressed or rejected never.",
    )
    parser.add_argument("job_id", metavar="JOB")
    parser.add_argument(
        "--outcomes", type=_names, default=[], help="e.g. failed,dead_lettered,unknown,undelivered"
    )
    parser.add_argument(
        "--errors",
        type=_codes,
        default=[],
        help="only rows with these Twilio error codes (a delivery's for undelivered rows)",
    )
    remote.stack_options(parser, retry)


def retry(args: argparse.Namespace) -> int:
    retried = remote.client_of(args).retry(args.job_id, args.outcomes, args.errors)
    print(f"{retried.job_id}: {retried.rows} rows of {retried.retry_of} sent again")
    return EXIT_OK
