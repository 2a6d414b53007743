"""The planner and the splitter read files the same way: for any file, well formed or not, with
or without job-wide parameters and placeholders, they agree on rows, valid and rejected (or on
the reason the file cannot be read), the plan's preview is the chunks' first rows as they are
sent, and neither raises anything else."""

from __future__ import annotations

import csv
import io
import json
from itertools import count
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chalicelib import wiring
from chalicelib.aws.buckets import chunk_key, rejects_key
from chalicelib.config import Settings
from chalicelib.core.schedule import Schedule
from chalicelib.core.slices import groups_of
from chalicelib.intake.manifest import manifest_bytes
from chalicelib.intake.parsing import FileFormatError, detect_format
from chalicelib.intake.plan import plan
from chalicelib.intake.splitter import Splitter
from chalicelib.intake.timing import JobTiming
from chalicelib.intake.validation.templates import JobParams
from tests.stack import Stack

COLUMNS = ["To", "From", "Body", "api", "MediaUrl", "Url", "PhoneNumber", "note", "to", ""]
VALUES = [
    "+14155550100",
    "+15005550006",
    "+1555",
    "415 555 0100",
    "whatsapp:+14155550100",
    "",
    "hello, world",
    'say "hi"',
    "line\nbreak",
    "calls",
    "fax",
    "lookup",
    "https://example.com/a.png",
    "日本語",
    "=1+2",
    "{{note}}",
    "Hi {{To|you}} 🚀",
    "{{missing}}",
]
# Job-wide parameters: placeholders naming the columns most files have (with defaults), others,
# none; the first kind mostly ends in rows that are sent.
PARAMS = st.one_of(
    st.just({}),
    st.dictionaries(
        st.sampled_from(["Body", "From"]),
        st.sampled_from(["Hi {{to|you}} 🚀", "{{Body|x}} ✓", "{{ from | +15005550006 }}"]),
        min_size=1,
    ),
    st.dictionaries(
        st.sampled_from(["Body", "From", "To", "note"]),
        st.sampled_from(
            ["Hi {{note}}", "{{to}}", "+15005550006", "{{missing}}", "ünï {{note|}}", "{{Body}}"]
        ),
        max_size=3,
    ),
)


class StartedLoops:
    """Records the release loops the splitter starts (the state machine is not under test)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, job_id: str, state: dict[str, Any]) -> None:
        self.started.append(job_id)


@st.composite
def files(draw: st.DrawFn) -> tuple[str, bytes]:
    fmt = draw(st.sampled_from(["csv", "json", "jsonl"]))
    if draw(st.booleans()):
        # Mostly good rows, some spoilt: the case most files are.
        header = ["To", "From", "Body"]
        good = st.tuples(
            st.sampled_from(["+14155550100", "+14155550101", "+1555"]),
            st.sampled_from(["+15005550006", "+15005550006", ""]),
            st.sampled_from(["hello, world", 'say "hi"', "line\nbreak", "日本語", ""]),
        ).map(list)
        rows = draw(st.lists(good, max_size=12))
    else:
        header = draw(st.lists(st.sampled_from(COLUMNS), min_size=0, max_size=5))
        rows = draw(
            st.lists(
                st.lists(st.sampled_from(VALUES), min_size=len(header), max_size=len(header)),
                max_size=12,
            )
        )
    if fmt == "csv":
        text = io.StringIO()
        writer = csv.writer(text)
        if header or draw(st.booleans()):
            writer.writerow(header)
        writer.writerows(rows)
        data = text.getvalue().encode()
    else:
        objects: list[Any] = [dict(zip(header, row, strict=True)) for row in rows]
        if draw(st.booleans()) and objects:
            objects[0] = draw(st.sampled_from([3, "text", None, [1]]))
        if fmt == "json":
            wrapped = {"messages": objects} if draw(st.booleans()) else objects
            data = json.dumps(wrapped).encode()
        else:
            data = "".join(json.dumps(o) + "\n" for o in objects).encode()
    damage = draw(st.sampled_from(["none", "none", "truncate", "nul", "latin1", "bytes"]))
    if damage == "truncate" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "nul":
        data += b"\x00"
    elif damage == "latin1":
        data += "caf\u00e9".encode("latin-1")
    elif damage == "bytes":
        data = draw(st.binary(max_size=64))
    return fmt, data


@settings(
    max_examples=120,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(file=files(), params=PARAMS)
def test_plan_and_split_agree_on_any_file(
    stack: Stack, file: tuple[str, bytes], params: dict[str, str]
) -> None:
    fmt, data = file
    key = f"upload-{next(KEYS)}.{fmt}"
    schedule = Schedule(3, 2)
    job_params = JobParams(params)
    try:
        planned = plan(io.BytesIO(data), detect_format(key), schedule, params=job_params)
        plan_error = None
    except FileFormatError as error:
        plan_error = str(error)

    bucket = stack.env["SOURCE_BUCKET"]
    # Examples repeat the same bytes; a resend keeps each one a job that sends (one job per
    # content is tested in tests/handlers/test_intake_edges.py).
    metadata = {"cps": "3", "window": "2", "resend": "true"}
    if params:
        stack.s3.put_object(Bucket=bucket, Key=f"{key}.job.json", Body=manifest_bytes(job_params))
    stack.s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata)
    loops = StartedLoops()
    splitter = Splitter(
        wiring.storage(),
        wiring.jobs(),
        loops,  # type: ignore[arg-type]
        Settings.from_env(),
        claims=wiring.content_claims(),
    )
    job = splitter.split(bucket, key)
    assert job is not None

    event(f"with params: {bool(params)}")
    if plan_error:
        event("column missing" if "is not in the file" in plan_error else "unreadable")
    else:
        event(f"valid rows: {'some' if planned.valid else 'none'}")
        event(f"previewed: {len(planned.preview)}; params: {bool(params)}")
    if plan_error is not None:
        assert (job.state, job.error) == ("failed", plan_error)
        assert loops.started == []
        return
    assert job.error is None
    assert (job.rows, job.valid, job.rejected) == (planned.rows, planned.valid, planned.rejected)
    assert job.chunks == planned.chunks
    assert loops.started == ([job.job_id] if planned.valid else [])
    if planned.preview:
        body = stack.s3.get_object(Bucket=stack.env["HOLDING_BUCKET"], Key=chunk_key(job.job_id, 0))
        first = [json.loads(line) for line in body["Body"].read().decode().splitlines()]
        assert [(r["row"], r["api"], r["params"]) for r in first[: len(planned.preview)]] == [
            (p["row"], p["api"], p["params"]) for p in planned.preview
        ]


# Numbers of one zone each, of several (+1 800 is toll-free, any +1 zone: no common window
# but for hours all of them share), none (a lookup's, a SIP address), and zones a row may name.
ZONED_NUMBERS = [
    "+442071234567",
    "+12125550100",
    "+14155550100",
    "+61291234567",
    "+81312345678",
    "+18005550100",
    "+15005550006",
    "+7 495 123 4567",
    "sip:alice@example.com",
]
ZONE_COLUMN = ["", "", "Asia/Kolkata", "America/New_York", "Mars/Olympus_Mons", " utc "]
WINDOWS = [
    ("09:00-17:00", ""),
    ("08:00-21:00", "mon-fri"),
    ("00:00-24:00", "sat,sun"),
    ("03:00-04:00", ""),
]


@st.composite
def zoned_files(draw: st.DrawFn) -> bytes:
    row = st.tuples(
        st.sampled_from(ZONED_NUMBERS),
        st.sampled_from(ZONE_COLUMN),
        st.sampled_from(["messages", "messages", "calls", "lookup"]),
    )
    text = io.StringIO()
    writer = csv.writer(text)
    writer.writerow(["api", "To", "PhoneNumber", "From", "Body", "Url", "time_zone"])
    for to, zone, api in draw(st.lists(row, min_size=1, max_size=14)):
        writer.writerow([api, to, to, "+15005550006", "hi", "https://example.com/t.xml", zone])
    return text.getvalue().encode()


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=zoned_files(), window=st.sampled_from(WINDOWS))
def test_plan_and_split_agree_on_zones_under_a_send_window(
    stack: Stack, data: bytes, window: tuple[str, str]
) -> None:
    hours, days = window
    key = f"zoned-{next(KEYS)}.csv"
    fields = {"send_window": hours, "send_days": days}
    planned = plan(
        io.BytesIO(data),
        detect_format(key),
        Schedule(3, 2),
        timing=JobTiming.of(fields, 0.0),
    )

    bucket = stack.env["SOURCE_BUCKET"]
    metadata = {"cps": "3", "window": "2", "resend": "true", "send-window": hours}
    if days:
        metadata["send-days"] = days
    stack.s3.put_object(Bucket=bucket, Key=key, Body=data, Metadata=metadata)
    splitter = Splitter(
        wiring.storage(),
        wiring.jobs(),
        StartedLoops(),  # type: ignore[arg-type]
        Settings.from_env(),
        claims=wiring.content_claims(),
    )
    job = splitter.split(bucket, key)
    assert job is not None and job.error is None

    event(f"groups: {len(planned.groups)}")
    for reject in planned.rejects:
        reason = str(reject["reason"])
        event(
            "zones share no window"
            if "share no time" in reason
            else reason.split(":", maxsplit=1)[0]
        )
    assert (job.rows, job.valid, job.rejected) == (planned.rows, planned.valid, planned.rejected)
    assert job.chunks == planned.chunks
    assert [(g.zones, g.rows) for g in groups_of(job.groups)] == list(planned.groups.items())
    rejected: list[dict[str, int | str]] = []
    if job.rejected:
        report = stack.s3.get_object(
            Bucket=stack.env["REPORTS_BUCKET"], Key=rejects_key(job.job_id)
        )
        lines = csv.DictReader(io.StringIO(report["Body"].read().decode()))
        rejected = [{"row": int(r["row"]), "reason": r["reason"]} for r in lines]
    assert rejected == planned.rejects


KEYS = count()
