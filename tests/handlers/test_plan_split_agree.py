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
from chalicelib.aws.buckets import chunk_key
from chalicelib.config import Settings
from chalicelib.core.schedule import Schedule
from chalicelib.intake.manifest import manifest_bytes
from chalicelib.intake.parsing import FileFormatError, detect_format
from chalicelib.intake.plan import plan
from chalicelib.intake.splitter import Splitter
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


KEYS = count()
