"""Commands on a deployed stack, the one the environment names (its outputs as environment
variables, as `callqueue up` prints them): the suppression list, the send queue's dead letters,
and paused jobs."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

from callqueue.cli.exits import EXIT_OK, EXIT_USAGE, UsageError


def typed_number(text: str) -> str:
    """A number as the user typed it, as the sender compares it: E.164 (national formats in
    DEFAULT_REGION); a one-line usage error otherwise."""
    from callqueue.cli.files import default_region
    from chalicelib.intake.validation import InvalidRow, normalise_number

    try:
        return normalise_number(text, default_region())
    except InvalidRow as error:
        raise UsageError(str(error)) from None


def _stack(variable: str) -> None:
    """UsageError unless the environment names a stack: the resource's own variable, or the
    stage whose resources have the default names (chalicelib.config)."""
    if not (os.environ.get(variable) or os.environ.get("CALLQUEUE_STAGE")):
        raise UsageError(
            f"no stack: {variable} is not set; start one with `callqueue up` and eval the "
            "`export` lines it prints, or export a deployed stage's outputs"
        )


def suppression_list(args: argparse.Namespace) -> int:
    from chalicelib import wiring

    _stack("SUPPRESSION_TABLE")
    for entry in wiring.suppression().list():
        code = "" if entry.error_code is None else f" ({entry.error_code})"
        print(f"{entry.number}\t{entry.reason}{code}\t{entry.job_id or ''}")
    return EXIT_OK


def suppression_add(args: argparse.Namespace) -> int:
    from chalicelib import wiring

    _stack("SUPPRESSION_TABLE")
    number = typed_number(args.number)
    added = wiring.suppression().add(number, args.reason, source="manual")
    print(f"{number}: {'suppressed' if added else 'already suppressed'}")
    return EXIT_OK


def suppression_import(args: argparse.Namespace) -> int:
    """Every number of a CSV file, or nothing: each bad line is shown with its line number."""
    from callqueue.cli.files import default_region
    from chalicelib import wiring
    from chalicelib.sending.suppression_csv import BadLines, read_import

    _stack("SUPPRESSION_TABLE")
    try:
        text = Path(args.file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as error:
        raise UsageError(f"{args.file}: cannot read it ({error})") from None
    try:
        entries = read_import(text, default_region(), reason=args.reason)
    except BadLines as error:
        print(str(error), file=sys.stderr)
        return EXIT_USAGE
    added = wiring.suppression().add_many(entries, source="import")
    print(f"{len(entries)} number(s) read, {added} newly suppressed")
    return EXIT_OK


def suppression_export(args: argparse.Namespace) -> int:
    from chalicelib import wiring
    from chalicelib.sending.suppression_csv import export_csv

    _stack("SUPPRESSION_TABLE")
    text = export_csv(wiring.suppression().list())
    if args.file in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.file).write_text(text, encoding="utf-8", newline="")
    return EXIT_OK


def suppression_remove(args: argparse.Namespace) -> int:
    from chalicelib import wiring

    _stack("SUPPRESSION_TABLE")
    number = typed_number(args.number)
    removed = wiring.suppression().remove(number)
    print(f"{number}: {'removed' if removed else 'was not suppressed'}")
    return EXIT_OK


def dlq_list(args: argparse.Namespace) -> int:
    from chalicelib import wiring

    _stack("DEAD_LETTER_QUEUE")
    for row in wiring.send_queue().dead_letters():
        error = row.get("last_error") or {}
        why = f"HTTP {error.get('status')} code {error.get('code')}" if error else "redriven by SQS"
        print(f"{row['job_id']}\trow {row['row']}\tattempt {row.get('attempt', 1)}\t{why}")
    return EXIT_OK


def dlq_redrive(args: argparse.Namespace) -> int:
    from chalicelib import wiring

    _stack("DEAD_LETTER_QUEUE")
    moved = wiring.send_queue().redrive_dead_letters()
    print(f"{moved} row(s) put back on the send queue")
    return EXIT_OK


def resume(args: argparse.Namespace) -> int:
    from chalicelib import wiring
    from chalicelib.aws.jobs_table import StateChanged
    from chalicelib.release.resume import resume as resume_job

    _stack("JOBS_TABLE")
    try:
        start = resume_job(wiring.jobs(), args.job_id, now=time.time())
    except StateChanged as error:
        raise UsageError(str(error)) from None
    print(f"{args.job_id}: resumed; rows now due from {time.ctime(start)}")
    return EXIT_OK
