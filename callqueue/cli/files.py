"""Commands on a file alone, sending nothing: write a test file, plan one."""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from callqueue.cli import arguments
from callqueue.cli.exits import EXIT_OK, UsageError, readable
from callqueue.cli.progress import duration

if TYPE_CHECKING:
    from chalicelib.intake.carry import Carry
    from chalicelib.intake.plan import Plan
    from chalicelib.intake.timed_plan import Timeline
    from chalicelib.intake.timing import JobTiming


def generate(args: argparse.Namespace) -> int:
    from callqueue.generate import main_generate

    path = main_generate(args.format, args.count, args.out, args.seed)
    print(path)
    return EXIT_OK


def default_region() -> str | None:
    """DEFAULT_REGION as the deployed splitter reads it: national numbers are read in it."""
    return os.environ.get("DEFAULT_REGION", "").strip().upper() or None


def plan(args: argparse.Namespace) -> int:
    from chalicelib.intake.timed_plan import timed_plan

    result, timing = _planned(args)
    timeline = timed_plan(
        result.groups,
        start=max(timing.start, timing.job.start_at or timing.start),
        cps=args.cps,
        window_seconds=args.window,
        window=timing.job.window,
        max_per_day=timing.job.max_per_day,
        daily_limit=timing.daily_limit,
        account_zone=timing.account_zone,
    )
    if args.json:
        print(json.dumps({**result.to_json(), "timeline": timeline.to_json()}, indent=2))
        return EXIT_OK
    _print_plan(args, result, timeline)
    return EXIT_OK


@dataclass(frozen=True)
class _Timing:
    # When the plan starts (--at, else now), the job's timing, the account's caps and zone.
    start: float
    job: JobTiming
    daily_limit: int | None
    account_zone: str


def _planned(args: argparse.Namespace) -> tuple[Plan, _Timing]:
    from chalicelib.config import ConfigError
    from chalicelib.core.costs import InvalidPrices, PriceTable
    from chalicelib.core.metering import SenderLimits
    from chalicelib.core.schedule import Schedule
    from chalicelib.intake.parsing import FileFormatError, detect_format
    from chalicelib.intake.plan import plan as plan_file
    from chalicelib.intake.validation.templates import JobParams

    readable(args.file)
    senders = SenderLimits.parse(args.sender_limits or "auto")
    try:
        prices = PriceTable.load(args.prices)
        carry = carry_of(args)
        timing = _timing_of(args)
    except (InvalidPrices, ConfigError) as error:
        raise UsageError(str(error)) from None
    try:
        with args.file.open("rb") as stream:
            fmt = detect_format(args.file.name)
            result = plan_file(
                stream,
                fmt,
                Schedule(args.cps, args.window),
                senders,
                default_region(),
                params=JobParams(dict(args.params)),
                preview_rows=args.preview,
                prices=prices,
                carry=carry,
                timing=timing.job,
            )
    except FileFormatError as error:
        raise UsageError(f"{args.file}: {error}") from None
    return result, timing


def _timing_of(args: argparse.Namespace) -> _Timing:
    """--at, the job's timing options and the account's day; ConfigError names a bad one."""
    from chalicelib.config import ConfigError
    from chalicelib.core.windows import BadSchedule, check_zone
    from chalicelib.intake.timing import parse_start

    now = time.time()
    try:
        start = now if args.at is None else parse_start(args.at, now)
    except BadSchedule as error:
        raise BadSchedule(f"--at: {error}") from None
    zone = args.account_time_zone or os.environ.get("ACCOUNT_TIME_ZONE", "").strip() or "UTC"
    try:
        zone = check_zone(zone)
    except BadSchedule as error:
        raise BadSchedule(f"--account-time-zone: {error}") from None
    limit = os.environ.get("ACCOUNT_DAILY_LIMIT", "").strip()
    if limit and not limit.isdigit():
        raise ConfigError(f"ACCOUNT_DAILY_LIMIT must be a whole number, got {limit!r}")
    # Relative times (--start-at 'in 2h') count from the planned start.
    job = arguments.timing_of(args, start)
    daily = int(limit) if limit else 0
    return _Timing(start, job, daily or None, zone)


def _print_plan(args: argparse.Namespace, result: Plan, timeline: Timeline) -> None:
    print(f"{args.file}: {result.rows} rows, {result.valid} valid, {result.rejected} rejected")
    print(
        f"  {result.chunks} chunk(s) of up to {args.window * args.cps} rows at {args.cps} CPS, "
        f"last call due after {duration(result.eta_seconds)}"
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
            f"{duration(result.eta_with_sender_limits)}"
        )
    for line in cost_lines(result.cost.to_json()):
        print(f"  {line}")
    for warning in result.warnings():
        print(f"  warning: {warning}")
    _print_timeline(timeline)
    _print_preview(result.preview)
    for reject in result.rejects[:20]:
        print(f"  rejected row {reject['row']}: {reject['reason']}")
    if len(result.rejects) > 20:
        print(f"  ... and {len(result.rejects) - 20} more rejected rows")


def _print_timeline(timeline: Timeline) -> None:
    """When: each zone's rows, first and last due (in UTC, and in the zone's own time when it
    is one zone), and the whole job's end with its waits."""
    print(f"  when, starting {_utc(timeline.start)}:")
    for zone in timeline.by_zone:
        if zone.first is None or zone.last is None:
            print(f"    {zone.label}: {zone.never} rows that can never be sent")
            continue
        first, last = _moment(zone.first, zone.zones), _moment(zone.last, zone.zones)
        print(f"    {zone.label}: {zone.rows} rows, {first} to {last}")
    waits = f" ({timeline.waits} wait(s) for a send window or a new day)" if timeline.waits else ""
    print(
        f"  last row due {_utc(timeline.finish)}, {duration(timeline.eta_seconds)} after the "
        f"start{waits}"
    )
    if timeline.never:
        print(f"  warning: {timeline.never} rows can never be sent: their send window never opens")


def _utc(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _moment(at: float, zones: tuple[str, ...]) -> str:
    """The time in UTC, and in the zone's own clock when there is one zone."""
    if len(zones) != 1:
        return _utc(at)
    there = datetime.fromtimestamp(at, ZoneInfo(zones[0]))
    return f"{_utc(at)} ({there:%a %H:%M:%S %Z})"


def _print_preview(preview: list[dict[str, object]]) -> None:
    """The first rows as they are sent, one parameter a line, each value as one line of text."""
    for shown in preview:
        size = ""
        if "segments" in shown:
            size = f", {shown['segments']} {shown['encoding']} segment(s)"
        print(f"  row {shown['row']} ({shown['api']}{size}):")
        params = shown["params"]
        assert isinstance(params, dict)  # noqa: S101 - plan.preview_of makes it so
        for name, value in params.items():
            print(f"    {name}: {_one_line(value)}")


def _one_line(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text.replace("\r", "\\r").replace("\n", "\\n")


def carry_of(args: argparse.Namespace) -> Carry:
    """The columns that travel with each row, from --reference-column and --keep-columns.
    Raises ConfigError."""
    from chalicelib.intake.carry import Carry

    return Carry.of(args.reference_column.strip() or "reference", tuple(args.keep_columns))


def cost_lines(cost: dict[str, Any]) -> list[str]:
    """The plan's cost estimate as a person reads it: the total, each line, what is unpriced."""
    currency = cost["currency"]
    lines = [
        f"estimated cost: {cost['total']:,.4f} {currency} (prices as of "
        f"{cost['prices']['as_of']}, approximate: --prices FILE replaces them)"
    ]
    for line in cost["lines"]:
        where = "" if line["country"] == "*" else f" to {line['country']}"
        per = "minute(s), assumed" if line["kind"] == "voice_minute" else "unit(s)"
        lines.append(
            f"  {line['api']}{where}: {line['rows']} rows, {line['units']:g} {per} "
            f"{line['kind']} x {line['unit_price']:g} = {line['amount']:,.4f} {currency}"
        )
    if cost["unpriced_rows"]:
        unpriced = ", ".join(
            f"{u['rows']} {u['api']} ({u['kind']}) to {u['country']}" for u in cost["unpriced"]
        )
        lines.append(f"  not in the total: {cost['unpriced_rows']} rows with no price: {unpriced}")
    return lines
