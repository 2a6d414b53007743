"""Argument types of the command's options: each parses one option's text or raises
argparse.ArgumentTypeError, which argparse reports as a usage error."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from callqueue.local.faults import READ_KINDS, FaultSpec
from chalicelib.intake.timing import JobTiming

N = TypeVar("N", int, float)


def _number(text: str, convert: Callable[[str], N], expected: str) -> N:
    """`convert(text)`, or the error `expected` with the text in place of {text}."""
    try:
        return convert(text)
    except ValueError:
        raise argparse.ArgumentTypeError(expected.format(text=repr(text))) from None


def positive(text: str) -> int:
    value = _number(text, int, "{text} is not a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


def count(text: str) -> int:
    value = _number(text, int, "{text} is not a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"{value} must be 0 or more")
    return value


def window(text: str) -> int:
    value = positive(text)
    if value > 900:
        raise argparse.ArgumentTypeError("the window is at most 900 seconds (SQS's delay ceiling)")
    return value


def non_negative(text: str) -> float:
    value = _number(text, float, "expected a number of seconds, got {text}")
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def faults(text: str) -> FaultSpec:
    try:
        return FaultSpec.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def lookup_faults(text: str) -> FaultSpec:
    spec = faults(text)
    unfit = sorted(kind.value for kind in spec.kinds() - READ_KINDS)
    if unfit:
        raise argparse.ArgumentTypeError(
            f"a look-up changes nothing, so it cannot fail with {', '.join(unfit)};"
            " use 429, 500, reset or slow"
        )
    return spec


def sender_limits(text: str) -> str:
    from chalicelib.core.metering import SenderLimits

    try:
        SenderLimits.parse(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def param(text: str) -> tuple[str, str]:
    """`--param NAME=VALUE`: a job-wide parameter; VALUE may hold {{column}} placeholders."""
    from chalicelib.intake.validation.templates import BadParams, parse_param

    try:
        return parse_param(text)
    except BadParams as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_params(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--param",
        dest="params",
        type=param,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a parameter for every row that has none, e.g. Body='Hi {{name}}' (repeatable)",
    )


def column_names(text: str) -> tuple[str, ...]:
    """Comma-separated column names, e.g. `name,customer_id`."""
    names = tuple(n.strip() for n in text.split(","))
    if not all(names):
        raise argparse.ArgumentTypeError(f"{text!r} has an empty column name")
    return names


def add_carry(parser: argparse.ArgumentParser, *, reference: str | None = "reference") -> None:
    """--reference-column and --keep-columns: the user's columns kept with each row's outcome,
    never sent. `reference`: the default column (None: the stack's own default applies)."""
    parser.add_argument(
        "--reference-column",
        default=reference,
        metavar="NAME",
        help="the column of your own id for each row, kept in the outcomes, never sent "
        "(default: reference)",
    )
    parser.add_argument(
        "--keep-columns",
        type=column_names,
        default=(),
        metavar="A,B",
        help="more of your columns to keep in the outcomes, never sent to Twilio",
    )


def add_timing(parser: argparse.ArgumentParser) -> None:
    """--start-at, --send-window, --send-days and --max-per-day: when the job may send
    (chalicelib.intake.timing). Kept as text here; `timing_of` reads them, so a bad value is
    one line that names it."""
    parser.add_argument(
        "--start-at",
        metavar="TIME",
        help="start later: ISO 8601 with an offset (2026-12-07T09:00:00-05:00) or 'in 2h'; "
        "nothing is sent before it",
    )
    parser.add_argument(
        "--send-window",
        metavar="HH:MM-HH:MM",
        help="send only between these hours of each recipient's local time (08:00-21:00)",
    )
    parser.add_argument(
        "--send-days",
        metavar="DAYS",
        help="send only on these local days (mon-fri, sat,sun)",
    )
    parser.add_argument(
        "--max-per-day",
        metavar="N",
        help="at most N rows a day (a day of ACCOUNT_TIME_ZONE); the rest wait for the next",
    )


def timing_of(args: argparse.Namespace, now: float) -> JobTiming:
    """The job's timing from the options (JobTiming.of's errors name the bad value)."""
    return JobTiming.of(
        {
            name: getattr(args, name, None)
            for name in ("start_at", "send_window", "send_days", "max_per_day")
        },
        now,
    )
