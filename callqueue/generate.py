"""Test files for callqueue: rows aimed at Twilio's test-credential magic numbers.

Sent with test credentials, most rows succeed (From +15005550006, a fictional 555-01xx To) and a
proportion (``error_rate``, 10% by default) fail with a known Twilio error: To +15005550001/2/3/4/9
or From +15005550001/7/8 for messages (21211, 21612, 21408, 21610, 21614, 21212, 21606 and the
429 21611), To +15005550001-4 or From +15005550001/7 for calls. The failing numbers are taken in
turn rather than at random, so every one of them appears once a file has enough failing rows.
Lookup, Verify and Studio have no magic numbers; their rows only exercise the pipeline.

Every Body is unique ("Test message 17 of 1000 [seed 7]") so a delivered message can be matched to
its row. With a seed the output is the same on every run. Rows are produced and written one at a
time, so a file of millions of rows needs no more memory than one of ten.

samples/sample.csv is ``write_sample(Path("samples/sample.csv"))``: 300 generated rows with a
customer_id column, a few valid rows edited to show number formats, channels, quoting and media,
and SAMPLE_INVALID rows made invalid on purpose (one of them written by hand, as csv.writer cannot
produce a row with the wrong number of fields). A test checks the file still matches.
"""

from __future__ import annotations

import csv
import itertools
import json
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Final, Literal, get_args

from chalicelib.core.records import APIS

FileFormat = Literal["csv", "json", "jsonl"]
FILE_FORMATS: Final[tuple[FileFormat, ...]] = get_args(FileFormat)

DEFAULT_ERROR_RATE: Final = 0.1

SUCCESS_FROM: Final = "+15005550006"
MESSAGE_ERRORS: Final = (
    ("To", "+15005550001"),
    ("To", "+15005550002"),
    ("To", "+15005550003"),
    ("To", "+15005550004"),
    ("To", "+15005550009"),
    ("From", "+15005550001"),
    ("From", "+15005550007"),
    ("From", "+15005550008"),
)
CALL_ERRORS: Final = (
    ("To", "+15005550001"),
    ("To", "+15005550002"),
    ("To", "+15005550003"),
    ("To", "+15005550004"),
    ("From", "+15005550001"),
    ("From", "+15005550007"),
)
TWIML_URL: Final = "http://demo.twilio.com/docs/voice.xml"
LOOKUP_FIELDS: Final = "line_type_intelligence"

# 555-0100 to 555-0199 are set aside for fiction in North America: never a real subscriber.
_AREA_CODES: Final = ("212", "312", "415", "512", "617", "702", "808", "917")

COLUMNS: Final[Mapping[str, tuple[str, ...]]] = {
    "messages": ("To", "From", "Body"),
    "calls": ("To", "From", "Url"),
    "lookup": ("PhoneNumber", "Fields"),
    "verify": ("To", "Channel", "VerifyServiceSid"),
    "studio": ("To", "From", "FlowSid", "Parameters"),
}


def generate_rows(
    count: int,
    *,
    seed: int | None = None,
    apis: Sequence[str] = ("messages",),
    error_rate: float = DEFAULT_ERROR_RATE,
) -> Iterator[dict[str, str]]:
    """``count`` rows, each drawn from ``apis`` (an api listed twice comes twice as often).

    Every row has the same keys, in file order: an ``api`` column unless only messages are asked
    for, then the columns the chosen apis use; columns a row's api does not use are "".
    """
    if count < 0:
        raise ValueError(f"count must not be negative, not {count}")
    unknown = sorted(set(apis) - set(APIS))
    if not apis or unknown:
        raise ValueError(
            f"apis must be among {', '.join(APIS)}; got {', '.join(unknown) or 'none'}"
        )
    rng = random.Random(seed)
    columns = _columns(apis)
    verify_service = "VA" + _hex(rng)
    flow = "FW" + _hex(rng)
    message_errors = itertools.cycle(MESSAGE_ERRORS)
    call_errors = itertools.cycle(CALL_ERRORS)
    tag = "" if seed is None else f" [seed {seed}]"
    for number in range(1, count + 1):
        api = rng.choice(apis)
        failing = rng.random() < error_rate
        values = {"To": _fictional_number(rng)}
        if api == "messages":
            values |= {"From": SUCCESS_FROM, "Body": f"Test message {number} of {count}{tag}"}
            if failing:
                values |= dict([next(message_errors)])
        elif api == "calls":
            values |= {"From": SUCCESS_FROM, "Url": TWIML_URL}
            if failing:
                values |= dict([next(call_errors)])
        elif api == "lookup":
            values = {"PhoneNumber": values["To"], "Fields": LOOKUP_FIELDS}
        elif api == "verify":
            values |= {"Channel": "sms", "VerifyServiceSid": verify_service}
        else:
            parameters = {"name": f"Customer {number}", "row": number}
            values |= {"From": SUCCESS_FROM, "FlowSid": flow, "Parameters": json.dumps(parameters)}
        row = {column: values.get(column, "") for column in columns}
        if "api" in row:
            row["api"] = api
        yield row


# The kinds of row mixed_rows draws, by share of the file. `large` travels (~40 KB); `too-large` is
# under the per-field limit but over the row limit as sent (chalicelib.core.limits), and is rejected
# at the splitter with the limit named.
MIXED_KINDS: Final = (
    ("plain", 0.38),
    ("media", 0.15),
    ("template", 0.14),
    ("service", 0.05),
    ("call", 0.10),
    ("lookup", 0.10),
    ("large", 0.07),
    ("too-large", 0.01),
)
MIXED_COLUMNS: Final = (
    "kind", "api", "To", "From", "MessagingServiceSid", "Body", "MediaUrl", "ContentSid",
    "ContentVariables", "Url", "PhoneNumber",
)  # fmt: skip
MIXED_SERVICE: Final = "MG" + "5" * 32
MIXED_CONTENT: Final = "HX" + "6" * 32
_MIXED_PADDING: Final = {"large": 40_000, "too-large": 65_350}


MIXED_FIRST_NUMBER: Final = 2_000_000
MIXED_NUMBERS: Final = 10_000_000 - MIXED_FIRST_NUMBER


def mixed_rows(count: int, *, seed: int = 1, first_number: int = 0) -> Iterator[dict[str, str]]:
    """``count`` rows of every kind a user sends (MIXED_KINDS), each to a number of its own,
    +1 415 2000000 + ``first_number`` on (valid numbers: an exchange may not start with 0 or 1),
    so Twilio's requests can be counted per row. The ``kind`` column is not a Twilio parameter:
    the splitter drops it."""
    if first_number + count > MIXED_NUMBERS:
        raise ValueError(f"mixed_rows numbers at most {MIXED_NUMBERS:,} rows")
    rng = random.Random(seed)
    kinds = [kind for kind, _ in MIXED_KINDS]
    weights = [weight for _, weight in MIXED_KINDS]
    for n in range(first_number, first_number + count):
        kind = rng.choices(kinds, weights)[0]
        to = f"+1415{MIXED_FIRST_NUMBER + n:07d}"
        row = dict.fromkeys(MIXED_COLUMNS, "")
        row |= {"kind": kind, "api": "messages", "To": to, "From": SUCCESS_FROM}
        if kind == "plain":
            row["Body"] = f"Reminder {n}: your appointment is tomorrow \u2014 reply C to confirm"
        elif kind == "media":
            row["MediaUrl"] = f"https://example.com/card-{n % 7}.png"
        elif kind == "template":
            row |= {"ContentSid": MIXED_CONTENT, "ContentVariables": json.dumps({"1": f"name {n}"})}
        elif kind == "service":
            row |= {"From": "", "MessagingServiceSid": MIXED_SERVICE, "Body": f"Service {n}"}
        elif kind == "call":
            row |= {"api": "calls", "Url": TWIML_URL}
        elif kind == "lookup":
            row |= {"api": "lookup", "To": "", "From": "", "PhoneNumber": to}
        else:
            variables = {"1": f"name {n}", "2": "x" * _MIXED_PADDING[kind]}
            row |= {"ContentSid": MIXED_CONTENT, "ContentVariables": json.dumps(variables)}
        yield row


def write_file(path: Path, fmt: FileFormat, rows: Iterable[Mapping[str, str]]) -> int:
    """Write rows to ``path`` as CSV, JSON (``{"messages": [...]}``) or JSON Lines; the count.

    CSV takes its header from the first row. JSON and JSON Lines leave out empty values, as a
    hand-written file would.
    """
    written = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        if fmt == "csv":
            writer: csv.DictWriter[str] | None = None
            for row in rows:
                if writer is None:
                    writer = csv.DictWriter(out, fieldnames=list(row), lineterminator="\n")
                    writer.writeheader()
                writer.writerow(row)
                written += 1
            return written
        if fmt == "json":
            out.write('{"messages": [')
        for row in rows:
            compact = {name: value for name, value in row.items() if value != ""}
            if fmt == "json":
                out.write(",\n  " if written else "\n  ")
            out.write(json.dumps(compact, ensure_ascii=False))
            if fmt == "jsonl":
                out.write("\n")
            written += 1
        if fmt == "json":
            out.write("\n]}\n")
    return written


def main_generate(fmt: str, count: int, out: Path | None, seed: int | None) -> Path:
    """``callqueue generate``: write ``count`` message rows to ``out`` (default
    ``calls-<count>.<fmt>`` in the current directory) and return the path."""
    if fmt not in FILE_FORMATS:
        raise ValueError(f"format must be one of {', '.join(FILE_FORMATS)}, not {fmt!r}")
    if count < 1:
        raise ValueError(f"count must be at least 1, not {count}")
    path = out if out is not None else Path(f"calls-{count}.{fmt}")
    write_file(path, fmt, generate_rows(count, seed=seed))
    return path


# --- samples/sample.csv ------------------------------------------------------------------------

SAMPLE_SEED: Final = 2024
SAMPLE_COUNT: Final = 300
# Mostly messages: each api is drawn in proportion to how often it is listed.
SAMPLE_APIS: Final = ("messages",) * 12 + ("calls",) * 3 + ("lookup", "verify", "studio")
SAMPLE_ERROR_RATE: Final = 0.15

# Record numbers (data rows, header not counted) and the reason validation or parsing gives.
SAMPLE_INVALID: Final[Mapping[int, str]] = {
    12: "To: +1555 is not a valid phone number (too short for +1)",
    57: "unknown api 'fax'; expected one of messages, calls, lookup, verify, studio",
    101: "missing Body, MediaUrl or ContentSid",
    150: "record 150 has 12 fields, the header has 13",
    203: (
        "To: '415 555 0123' is not a valid phone number "
        "(no country code: add + and the country code, or set DEFAULT_REGION)"
    ),
    244: "Parameters is not valid JSON: '{name: Ada}'",
}

# Valid rows edited to show what the reader and validation accept.
_SAMPLE_EDITS: Final[Mapping[int, Mapping[str, str]]] = {
    3: {"To": "+1 (415) 555-0142"},
    5: {"Body": 'Hello, "friend": quotes and commas survive'},
    8: {"To": "0044 (0)20 7946 0958"},
    21: {"To": "whatsapp:+14155550143", "From": "whatsapp:+15005550006"},
    35: {"Body": "Réservation confirmée ✅ à 18h"},
    44: {
        "Body": "Two pictures",
        "MediaUrl": "https://demo.twilio.com/owl.png | https://demo.twilio.com/logo.png",
    },
    61: {"From": "+15005550001"},
    66: {"From": "+15005550007"},
    290: {"Body": "A body on\ntwo lines"},
}
_SAMPLE_BREAKS: Final[Mapping[int, Mapping[str, str]]] = {
    12: {"To": "+1555"},
    57: {"api": "fax"},
    101: {"Body": ""},
    203: {"To": "415 555 0123"},
    244: {"Parameters": "{name: Ada}"},
}
_SAMPLE_SHORT_ROW: Final = 150


def sample_rows() -> Iterator[dict[str, str]]:
    """The rows of samples/sample.csv before the hand-written one replaces row 150."""
    rows = generate_rows(
        SAMPLE_COUNT, seed=SAMPLE_SEED, apis=SAMPLE_APIS, error_rate=SAMPLE_ERROR_RATE
    )
    edits = {**_SAMPLE_EDITS, **_SAMPLE_BREAKS}
    for number, row in enumerate(rows, start=1):
        edited = {"customer_id": f"C{number:04d}", **row, "MediaUrl": ""}
        edited |= edits.get(number, {})
        yield edited


def write_sample(path: Path) -> None:
    """Write samples/sample.csv (see the module docstring)."""
    write_file(path, "csv", sample_rows())
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    short = lines[_SAMPLE_SHORT_ROW].rstrip("\n").rsplit(",", 1)[0]
    # A row that lost its last field, as a hand-edited file does; csv.writer cannot write it.
    lines[_SAMPLE_SHORT_ROW] = short + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def _columns(apis: Sequence[str]) -> list[str]:
    columns = [] if set(apis) == {"messages"} else ["api"]
    for api in APIS:
        if api in apis:
            columns += [column for column in COLUMNS[api] if column not in columns]
    return columns


def _fictional_number(rng: random.Random) -> str:
    return f"+1{rng.choice(_AREA_CODES)}555{rng.randrange(100, 200):04d}"


def _hex(rng: random.Random) -> str:
    return f"{rng.getrandbits(128):032x}"
