"""`callqueue test-send FILE --to NUMBER`: the first rows of a campaign, rendered as they would
be sent, sent to the user's own number only: through the Twilio emulator on this machine, or,
with `--stage`/`--api-url`, through a deployed stack as a job of its own.

Locally a test send is no job: nothing is written to a stack. On a stack it is a separate job
named `test-<file>` holding only the rendered test rows (each already addressed to NUMBER),
sent with `resend`, so it is never counted as the campaign and claims nothing of the campaign's
content: the file still sends in full later. Each row keeps every parameter but its recipient:
`To` (a WhatsApp address stays one), or Lookup's `PhoneNumber`, becomes the number given.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Final

from callqueue.cli import arguments
from callqueue.cli.exits import EXIT_OK, EXIT_UNACCOUNTED, UsageError, readable

if TYPE_CHECKING:
    # The stack's code is imported when the command runs: `callqueue --help` stays quick.
    from chalicelib.core.records import CallRequest
    from chalicelib.intake.parsing import ByteStream, Format
    from chalicelib.intake.validation.templates import JobParams

# A test goes to one person's phone: a few rows show a campaign, more would be a campaign.
MAX_TEST_ROWS: Final = 10


def add_test_send(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    test = sub.add_parser(
        "test-send", help="send a file's first rendered rows to your own number, locally"
    )
    test.add_argument("file", type=Path)
    test.add_argument("--to", required=True, help="your number: every test row goes there")
    arguments.add_params(test)
    test.add_argument(
        "--rows", type=arguments.positive, default=1, help=f"how many rows, 1..{MAX_TEST_ROWS}"
    )
    test.add_argument("--requests-log", type=Path, help="JSON Lines log of emulator requests")
    from callqueue.cli import remote

    # --stage/--api-url send through a deployed stack; without them, the local emulator.
    remote.stack_options(test, test_send, required=False)


def test_requests(
    stream: ByteStream,
    fmt: Format,
    params: JobParams,
    to: str,
    rows: int,
    default_region: str | None = None,
) -> list[tuple[int, CallRequest]]:
    """The file's first `rows` valid rows, rendered, each addressed to `to` (E.164) instead."""
    from chalicelib.intake.rows import Accepted, checked_rows

    found: list[tuple[int, CallRequest]] = []
    for item in checked_rows(stream, fmt, default_region, params=params):
        if isinstance(item, Accepted):
            found.append((item.number, readdressed(item.request, to)))
            if len(found) == rows:
                break
    return found


def readdressed(request: CallRequest, to: str) -> CallRequest:
    """The request sent to `to`; a WhatsApp address (`whatsapp:+1...`) stays one."""
    name = "PhoneNumber" if request.api == "lookup" else "To"
    old = str(request.params.get(name, ""))
    whatsapp = old[: len("whatsapp:")]
    address = f"{whatsapp}{to}" if whatsapp.casefold() == "whatsapp:" else to
    return replace(request, params={**request.params, name: address})


def test_send(args: argparse.Namespace) -> int:
    from callqueue.cli.files import default_region
    from chalicelib.intake.parsing import FileFormatError, detect_format
    from chalicelib.intake.validation import InvalidNumber, normalise_number
    from chalicelib.intake.validation.templates import JobParams

    readable(args.file)
    if args.rows > MAX_TEST_ROWS:
        raise UsageError(f"--rows is at most {MAX_TEST_ROWS}: a test, not a campaign")
    try:
        to = normalise_number(args.to, default_region())
    except InvalidNumber as error:
        raise UsageError(f"--to: {error}") from None
    try:
        with args.file.open("rb") as stream:
            fmt = detect_format(args.file.name)
            chosen = test_requests(
                stream, fmt, JobParams(dict(args.params)), to, args.rows, default_region()
            )
    except FileFormatError as error:
        raise UsageError(f"{args.file}: {error}") from None
    if not chosen:
        raise UsageError(f"{args.file}: no valid row to send (`callqueue plan` says why)")
    if args.stage or args.api_url or os.environ.get("CALLQUEUE_API_URL"):
        return _send_to_stack(args, chosen)
    return _send(chosen, args.requests_log)


def _send_to_stack(args: argparse.Namespace, chosen: list[tuple[int, CallRequest]]) -> int:
    """The rendered rows as a job of their own on the stack, named for a test."""
    from callqueue.cli import remote

    stem = args.file.stem
    with tempfile.TemporaryDirectory() as work:
        rows = Path(work) / f"{stem}.jsonl"
        with rows.open("w", encoding="utf-8") as out:
            for _, request in chosen:
                out.write(json.dumps({"api": request.api, **request.params}) + "\n")
        job = remote.client_of(args).submit(rows, name=f"test-{stem}", resend=True)
    for position, (number, request) in enumerate(chosen, start=1):
        print(f"test row {number} ({request.api}) to {_recipient(request)}: job row {position}")
    print(f"test job {job.job_id}: `callqueue status {job.job_id}` follows it")
    return EXIT_OK


def _send(chosen: list[tuple[int, CallRequest]], requests_log: Path | None) -> int:
    from callqueue.local.emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
    from callqueue.local.emulator_process import EmulatorProcess
    from chalicelib.twilio.credentials import Credentials
    from chalicelib.twilio.gateway import make_gateway
    from chalicelib.twilio.transport import CapturingHttpClient

    emulator = EmulatorProcess(
        account_sid=DEFAULT_ACCOUNT_SID, auth_token=DEFAULT_AUTH_TOKEN, requests_log=requests_log
    )
    emulator.start()
    failed = 0
    try:
        credentials = Credentials(DEFAULT_ACCOUNT_SID, DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN)
        gateway = make_gateway(credentials, CapturingHttpClient(emulator.base_url, timeout=30))
        for number, request in chosen:
            result = gateway.call(request)
            accepted = result.status is not None and result.status < 300
            failed += not accepted
            what = result.sid if accepted else (result.error_code or result.network_error)
            print(f"test row {number} ({request.api}) to {_recipient(request)}: {what}")
    finally:
        emulator.stop()
    print(f"{len(chosen) - failed} of {len(chosen)} sent to the local Twilio emulator, as a test")
    return EXIT_OK if not failed else EXIT_UNACCOUNTED


def _recipient(request: CallRequest) -> str:
    return str(request.params.get("PhoneNumber" if request.api == "lookup" else "To"))
