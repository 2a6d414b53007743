"""Argument types of the command's options: each parses one option's text or raises
argparse.ArgumentTypeError, which argparse reports as a usage error."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

from callqueue.local.faults import READ_KINDS, FaultSpec

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
