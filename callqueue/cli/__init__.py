"""The `callqueue` command: generate, plan, run, up, emulator, suppression, dlq, submit, jobs,
status, pause, resume, cancel, outcomes, rejects, deploy, destroy, stage, chalice, template, infra,
completion.

`parser` builds the arguments; each command is a function of the parsed arguments returning the
exit status, in a module by what it works on: `files` (generate, plan), `local` (run, up and the
emulator, on this machine), `operate` (a stack's suppression list, dead letters and paused jobs,
through the environment), `remote` (a deployed stack's jobs, through its REST API; it adds its
own commands to the parser) and `deploy` (the template and the infrastructure). Commands import
what they need only when they run, so `callqueue plan` loads neither moto nor boto3.

A person's mistake (arguments, a file, a setting, a missing stack) ends in one line on standard
error and status 2; Ctrl-C ends quietly with 130 and SIGTERM with 143, once every process the
command started has stopped. `-v` shows the traceback behind any of them.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from callqueue.cli.exits import EXIT_USAGE, StopSignals, UsageError
from callqueue.cli.parser import build_parser
from chalicelib.config import ConfigError

log = logging.getLogger("callqueue.cli")

# An AWS request that failed (no credentials, no such table): one line, not botocore's trace.
EXIT_AWS = 1


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _logging(args.verbose)
    with StopSignals() as stop:
        try:
            return int(args.command(args))
        except KeyboardInterrupt:
            print(f"callqueue: {stop.reason}", file=sys.stderr)
            return stop.exit_status
        except (UsageError, ConfigError) as error:
            log.debug("the error's traceback", exc_info=True)
            # A settings error lists every bad variable, a line each.
            for line in str(error).splitlines():
                print(f"callqueue: {line}", file=sys.stderr)
            return EXIT_USAGE
        except Exception as error:
            message = _aws_message(error)
            if message is None:
                raise
            log.debug("the error's traceback", exc_info=True)
            print(f"callqueue: {message}", file=sys.stderr)
            return EXIT_AWS


def _aws_message(error: Exception) -> str | None:
    """One line for an error botocore raised, None for any other (botocore is imported only
    by the commands that use AWS, so it is looked up, not imported)."""
    botocore = sys.modules.get("botocore.exceptions")
    if botocore is None or not isinstance(error, (botocore.BotoCoreError, botocore.ClientError)):
        return None
    if isinstance(error, botocore.NoRegionError):
        return "no AWS region: set AWS_DEFAULT_REGION (or a region in your AWS profile)"
    if isinstance(error, botocore.NoCredentialsError):
        return "no AWS credentials: set AWS_PROFILE, or the AWS_ACCESS_KEY_ID pair"
    return f"AWS: {error}"


def _logging(verbose: bool) -> None:
    from rich.console import Console
    from rich.logging import RichHandler

    # rich's handler writes through the console the progress display draws on, so a warning
    # goes above the display instead of through it.
    handler = RichHandler(
        console=Console(stderr=True), show_time=False, show_path=False, markup=False
    )
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING,
        format="%(name)s: %(message)s",
        handlers=[handler],
    )
