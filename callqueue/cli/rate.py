"""`callqueue set-rate JOB CPS`: change the rate of a job on a deployed stack (docs/cli.md),
through its REST API (POST /jobs/{id}/rate) as the other remote commands."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from callqueue.cli import arguments, remote
from callqueue.cli.exits import EXIT_OK

if TYPE_CHECKING:
    from callqueue.cli.remote import Commands


def add_command(sub: Commands) -> None:
    parser = sub.add_parser(
        "set-rate",
        help="change a scheduled, running or paused job's calls per second",
        description="Change a job's rate. Its next release comes at the new rate within"
        " seconds; rows already queued are re-timed (see docs/cli.md).",
    )
    parser.add_argument("job_id", metavar="JOB")
    parser.add_argument("cps", type=arguments.positive, metavar="CPS", help="calls per second")
    remote.stack_options(parser, set_rate)


def set_rate(args: argparse.Namespace) -> int:
    changed = remote.client_of(args).set_rate(args.job_id, args.cps)
    if changed.previous_cps == changed.cps:
        print(f"{changed.job_id}: rate already {changed.cps} CPS")
    else:
        print(f"{changed.job_id}: rate {changed.previous_cps} -> {changed.cps} CPS")
    return EXIT_OK
