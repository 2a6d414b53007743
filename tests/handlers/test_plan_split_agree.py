"""The planner and the splitter read files the same way: for any file, well formed or not, they
agree on rows, valid and rejected (or on the reason the file cannot be read), and neither raises
anything else."""

from __future__ import annotations

import csv
import io
import json
from itertools import count
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from chalicelib import wiring
from chalicelib.config import Settings
from chalicelib.core.schedule import Schedule
from chalicelib.intake.parsing import FileFormatError, detect_format
from chalicelib.intake.plan import plan
from chalicelib.intake.splitter import Splitter
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
]


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
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(file=files())
def test_plan_and_split_agree_on_any_file(stack: Stack, file: tuple[str, bytes]) -> None:
    fmt, data = file
    key = f"upload-{next(KEYS)}.{fmt}"
    schedule = Schedule(3, 2)
    try:
        planned = plan(io.BytesIO(data), detect_format(key), schedule)
        plan_error = None
    except FileFormatError as error:
        plan_error = str(error)

    bucket = stack.env["SOURCE_BUCKET"]
    # Examples repeat the same bytes; a resend keeps each one a job that sends (one job per
    # content is tested in tests/handlers/test_intake_edges.py).
    metadata = {"cps": "3", "window": "2", "resend": "true"}
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

    event("unreadable" if plan_error else f"valid rows: {'some' if planned.valid else 'none'}")
    if plan_error is not None:
        assert (job.state, job.error) == ("failed", plan_error)
        assert loops.started == []
        return
    assert job.error is None
    assert (job.rows, job.valid, job.rejected) == (planned.rows, planned.valid, planned.rejected)
    assert job.chunks == planned.chunks
    assert loops.started == ([job.job_id] if planned.valid else [])


KEYS = count()
