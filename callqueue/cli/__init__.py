"""The `callqueue` command: generate, plan, run, up, emulator, suppression, dlq, submit, jobs,
status, pause, resume, cancel, outcomes, rejects, deploy, destroy, stage, chalice, template, infra.

`parser` builds the arguments; each command is a function of the parsed arguments returning the
exit status, in a module by what it works on: `files` (generate, plan), `local` (run, up and the
emulator, on this machine), `operate` (a stack's suppression list, dead letters and paused jobs,
through the environment), `remote` (a deployed stack's jobs, through its REST API; it adds its
own commands to the parser) and `deploy` (the template and the infrastructure). Commands import
what they need only when they run, so `callqueue plan` loads neither moto nor boto3.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from callqueue.cli.exits import EXIT_USAGE, UsageError
from callqueue.cli.parser import build_parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
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
