"""Hostile uploads at the intake: rows too large to travel, deep nesting, bad job settings in
the object metadata, a split that keeps failing, and one job per content. Driven through the
splitter against moto; assertions are on the job record, the rejects report and the chunks."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from callqueue.cli import main
from chalicelib import wiring
from chalicelib.aws.buckets import Source, Storage, chunk_key, rejects_key
from chalicelib.config import Settings
from chalicelib.core.limits import MAX_ROW_BYTES
from chalicelib.intake.content import Holder
from chalicelib.intake.parsing import MAX_FIELD_CHARS, MAX_JSON_DEPTH, nesting_depth
from chalicelib.intake.rows import Accepted, Rejected, checked_rows
from chalicelib.intake.splitter import Splitter, job_id_for
from tests.stack import Stack

FROM = "+15005550006"
URL = "https://example.com/twiml"


class StartedLoops:
    """Records the release loops the splitter starts (the state machine is not under test)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def start(self, job_id: str, state: dict[str, Any]) -> None:
        self.started.append(job_id)


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_splitter(
    loops: StartedLoops, clock: Clock | None = None, storage: Storage | None = None
) -> Splitter:
    return Splitter(
        storage or wiring.storage(),
        wiring.jobs(),
        loops,  # type: ignore[arg-type]
        Settings.from_env(),
        claims=wiring.content_claims(),
        clock=clock or Clock(),
    )


def put(stack: Stack, key: str, body: bytes, **metadata: str) -> None:
    stack.s3.put_object(Bucket=stack.env["SOURCE_BUCKET"], Key=key, Body=body, Metadata=metadata)


def job_item(stack: Stack, job_id: str) -> dict[str, Any]:
    item = stack.dynamodb.get_item(TableName=stack.env["JOBS_TABLE"], Key={"job_id": {"S": job_id}})
    return {k: next(iter(v.values())) for k, v in item["Item"].items()}


def rejects(stack: Stack, job_id: str) -> dict[int, str]:
    body = stack.s3.get_object(Bucket=stack.env["REPORTS_BUCKET"], Key=rejects_key(job_id))
    report = list(csv.reader(io.StringIO(body["Body"].read().decode())))
    assert report[0] == ["row", "reason"]
    return {int(row): reason for row, reason in report[1:]}


def chunk(stack: Stack, job_id: str, number: int = 0) -> list[dict[str, Any]]:
    body = stack.s3.get_object(Bucket=stack.env["HOLDING_BUCKET"], Key=chunk_key(job_id, number))
    return [json.loads(line) for line in body["Body"].read().decode().splitlines()]


def csv_bytes(header: list[str], rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows(rows)
    return out.getvalue().encode()


def call(reason: str) -> dict[str, str]:
    return {"api": "calls", "To": "+14155550100", "From": FROM, "Url": URL, "CallReason": reason}


def message(n: int, **extra: Any) -> dict[str, Any]:
    return {"To": f"+1415555{n:04d}", "From": FROM, "Body": f"message {n}", **extra}


def jsonl(records: list[Any]) -> bytes:
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def deep(levels: int) -> Any:
    value: Any = "x"
    for _ in range(levels):
        value = [value]
    return value


def deep_text(levels: int) -> str:
    return "{" + '"a":{' * (levels - 1) + '"b":1' + "}" * levels


def size_in(reason: str) -> int:
    match = re.match(r"row is ([0-9,]+) bytes as sent", reason)
    assert match is not None, reason
    return int(match.group(1).replace(",", ""))


# --- rows too large to travel --------------------------------------------------------------


def test_row_at_the_size_limit_travels_and_one_byte_over_is_rejected(stack: Stack) -> None:
    probe = [r for r in checked_rows(io.BytesIO(jsonl([call("x" * 60_000)])), "jsonl")]
    assert isinstance(probe[0], Accepted)
    # A field of 65,400 characters is within the field limit (65,536) but its row is over the
    # row limit; its reported size less the excess gives the length of a row exactly at the
    # limit (one character of ASCII is one byte as sent).
    over = next(checked_rows(io.BytesIO(jsonl([call("x" * 65_400)])), "jsonl"))
    assert isinstance(over, Rejected)
    at_limit = 65_400 - (size_in(over.reason) - MAX_ROW_BYTES)
    records = [call("x" * at_limit), call("x" * (at_limit + 1)), message(3)]
    put(stack, "edge.jsonl", jsonl(records))
    loops = StartedLoops()

    job = make_splitter(loops).split(stack.env["SOURCE_BUCKET"], "edge.jsonl")

    assert (job.state, job.rows, job.valid, job.rejected) == ("running", 3, 2, 1)
    assert rejects(stack, job.job_id) == {
        2: "row is 65,537 bytes as sent; the limit is 65,536 (SQS/SNS carry at most 256 KiB "
        "with Twilio's response)"
    }
    sent = chunk(stack, job.job_id)
    assert [r["row"] for r in sent] == [1, 3]
    assert len(sent[0]["params"]["CallReason"]) == at_limit


@pytest.mark.parametrize(
    ("char", "count"),
    [
        # Under the limit in UTF-8 (60,000 bytes) but escaped as sent: 120,000 bytes.
        ("€", 20_000),
        # Two bytes each in UTF-8, four characters short of the field limit.
        ("é", 40_000),
        # Astral characters: 4 bytes in UTF-8, 12 escaped (a surrogate pair).
        ("😀", 6_000),
    ],
)
def test_multibyte_row_is_measured_in_bytes_as_sent(stack: Stack, char: str, count: int) -> None:
    assert count < MAX_FIELD_CHARS
    data = csv_bytes(
        ["api", "To", "From", "Url", "CallReason"],
        [["calls", "+14155550100", FROM, URL, char * count]],
    )
    put(stack, "wide.csv", data)

    job = make_splitter(StartedLoops()).split(stack.env["SOURCE_BUCKET"], "wide.csv")

    assert (job.state, job.valid, job.rejected) == ("completed", 0, 1)
    reason = rejects(stack, job.job_id)[1]
    assert size_in(reason) > MAX_ROW_BYTES
    assert "the limit is 65,536" in reason


@pytest.mark.parametrize("fmt", ["csv", "json", "jsonl"])
def test_unknown_columns_never_travel_and_a_huge_one_rejects_only_its_row(
    stack: Stack, fmt: str
) -> None:
    rows = [
        message(1, note="n" * 60_000),
        message(2, note="n" * (MAX_FIELD_CHARS + 1)),
        message(3, note="ok"),
    ]
    if fmt == "csv":
        header = list(rows[0])
        data = csv_bytes(header, [[r[h] for h in header] for r in rows])
    elif fmt == "json":
        data = json.dumps({"messages": rows}).encode()
    else:
        data = jsonl(rows)
    put(stack, f"notes.{fmt}", data)

    job = make_splitter(StartedLoops()).split(stack.env["SOURCE_BUCKET"], f"notes.{fmt}")

    assert (job.state, job.rows, job.valid, job.rejected) == ("running", 3, 2, 1)
    assert rejects(stack, job.job_id) == {
        2: f"record 2 has a field longer than {MAX_FIELD_CHARS} characters (column 'note')"
    }
    sent = chunk(stack, job.job_id)
    assert [r["row"] for r in sent] == [1, 3]
    assert all(set(r["params"]) == {"To", "From", "Body"} for r in sent)


def test_json_field_limit_counts_nested_values(stack: Stack) -> None:
    big = {"k": ["v" * 1000] * 70}
    put(stack, "nested.json", json.dumps([message(1, ContentVariables=big), message(2)]).encode())

    job = make_splitter(StartedLoops()).split(stack.env["SOURCE_BUCKET"], "nested.json")

    assert rejects(stack, job.job_id) == {
        1: f"record 1 has a field longer than {MAX_FIELD_CHARS} characters "
        "(column 'ContentVariables')"
    }
    assert (job.valid, job.rejected) == (1, 1)


# --- nesting -------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_deeply_nested_record_is_a_row_reject(stack: Stack, fmt: str) -> None:
    # json.dumps itself recurses: the deep record is written by hand.
    records = [message(1), message(3)]
    if fmt == "json":
        data = (
            "["
            + json.dumps(records[0])
            + ', {"To": "+14155550002", "From": "+15005550006", "Body": "b", "extra": '
            + "[" * 10_000
            + "]" * 10_000
            + "}, "
            + json.dumps(records[1])
            + "]"
        ).encode()
    else:
        data = (
            jsonl([records[0]])
            + b'{"To": "+14155550002", "From": "+15005550006", "extra": '
            + b"[" * 10_000
            + b"]" * 10_000
            + b"}\n"
            + jsonl([records[1]])
        )
    key = f"deep.{fmt}"
    put(stack, key, data)

    job = make_splitter(StartedLoops()).split(stack.env["SOURCE_BUCKET"], key)

    assert (job.state, job.rows, job.valid, job.rejected) == ("running", 3, 2, 1)
    assert rejects(stack, job.job_id) == {2: "record 2 is nested more than 32 levels deep"}
    assert [r["row"] for r in chunk(stack, job.job_id)] == [1, 3]


def test_deeply_nested_json_in_a_csv_cell_is_a_row_reject(stack: Stack) -> None:
    header = ["To", "From", "Body", "ContentVariables"]
    rows = [
        ["+14155550001", FROM, "a", deep_text(10_000)],
        ["+14155550002", FROM, "b", deep_text(MAX_JSON_DEPTH)],
        ["+14155550003", FROM, "c", deep_text(MAX_JSON_DEPTH + 1)],
    ]
    put(stack, "vars.csv", csv_bytes(header, rows))

    job = make_splitter(StartedLoops()).split(stack.env["SOURCE_BUCKET"], "vars.csv")

    assert (job.state, job.valid, job.rejected) == ("running", 1, 2)
    reason = "ContentVariables is nested more than 32 levels deep"
    assert rejects(stack, job.job_id) == {1: reason, 3: reason}
    assert [r["row"] for r in chunk(stack, job.job_id)] == [2]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(alphabet='ab"\\[]{}', max_size=5),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='k"[{', max_size=3), children, max_size=3)
    ),
    max_leaves=30,
)


def _depth(value: Any) -> int:
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    return 0


@given(value=json_values)
def test_nesting_depth_matches_the_decoded_depth(value: Any) -> None:
    # Brackets and quotes inside strings must not count.
    assert nesting_depth(json.dumps(value)) == _depth(value)


def test_unexpected_error_validating_a_row_rejects_only_that_row(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    # A mapping whose keys are not strings is no JSON a parser gives; the validator was not
    # written for it and fails on it: the row is rejected, the traceback logged.
    from chalicelib.intake import rows as rows_module

    outcome = rows_module._checked(7, {1: "x"})  # type: ignore[dict-item]

    assert outcome == Rejected(7, "could not be read: AttributeError")
    assert any(r.exc_info for r in caplog.records if "record 7" in r.getMessage())


# --- job settings in the object metadata -----------------------------------------------------


@pytest.mark.parametrize(
    ("metadata", "reason"),
    [
        ({"cps": "abc"}, "x-amz-meta-cps must be a whole number of calls per second, got 'abc'"),
        ({"cps": "10.5"}, "x-amz-meta-cps must be a whole number of calls per second, got '10.5'"),
        ({"cps": "-1"}, "x-amz-meta-cps must be at least 1 calls per second, got '-1'"),
        ({"cps": "0"}, "x-amz-meta-cps must be at least 1 calls per second, got '0'"),
        (
            {"cps": "9" * 5000},
            "x-amz-meta-cps must be at least 1 calls per second, got '" + "9" * 5000 + "'",
        ),
        ({"window": "1e3"}, "x-amz-meta-window must be a whole number of seconds, got '1e3'"),
        ({"window": "901"}, "x-amz-meta-window must be 1..900 seconds, got '901'"),
    ],
)
def test_bad_job_settings_fail_the_job_with_the_reason(
    stack: Stack, metadata: dict[str, str], reason: str
) -> None:
    put(
        stack,
        "rated.csv",
        csv_bytes(["To", "From", "Body"], [["+14155550100", FROM, "hi"]]),
        **metadata,
    )
    loops = StartedLoops()
    splitter = make_splitter(loops)

    job = splitter.split(stack.env["SOURCE_BUCKET"], "rated.csv")
    again = splitter.split(stack.env["SOURCE_BUCKET"], "rated.csv")

    assert (job.state, job.error) == ("failed", reason)
    assert job_item(stack, job.job_id)["state"] == "failed"
    assert (again.job_id, again.state) == (job.job_id, "failed")
    assert loops.started == []


def test_blank_job_settings_take_the_defaults(stack: Stack) -> None:
    put(
        stack,
        "blank.csv",
        csv_bytes(["To", "From", "Body"], [["+14155550100", FROM, "hi"]]),
        cps="",
        window=" ",
    )

    job = make_splitter(StartedLoops()).split(stack.env["SOURCE_BUCKET"], "blank.csv")

    settings = Settings.from_env()
    assert (job.state, job.cps, job.window_seconds) == (
        "running",
        settings.cps,
        settings.window_seconds,
    )


# --- a split that keeps failing ---------------------------------------------------------------


class BrokenBody:
    def __init__(self, data: bytes, after: int) -> None:
        self._data = io.BytesIO(data)
        self._after = after

    def read(self, size: int = -1) -> bytes:
        if self._data.tell() >= self._after:
            raise ConnectionResetError("connection reset by peer")
        return self._data.read(
            min(size, self._after - self._data.tell()) if size > 0 else self._after
        )

    def close(self) -> None:
        self._data.close()


class BreakingStorage(Storage):
    """S3 whose source bodies break after a few bytes, as a reset connection does."""

    def open_source(self, bucket: str, key: str) -> Source:
        source = super().open_source(bucket, key)
        return Source(
            BrokenBody(source.body.read(), 40), source.metadata, source.etag, source.last_modified
        )


def test_split_error_is_recorded_retried_and_fails_the_job_on_the_last_attempt(
    stack: Stack,
) -> None:
    rows = [[f"+1415555{i:04d}", FROM, "hello"] for i in range(20)]
    put(stack, "flaky.csv", csv_bytes(["To", "From", "Body"], rows))
    loops = StartedLoops()
    splitter = make_splitter(loops, storage=BreakingStorage(stack.s3))
    bucket = stack.env["SOURCE_BUCKET"]

    for attempt in (1, 2):
        with pytest.raises(ConnectionResetError):
            splitter.split(bucket, "flaky.csv")
        [job_id] = [
            i["job_id"]["S"]
            for i in stack.dynamodb.scan(TableName=stack.env["JOBS_TABLE"])["Items"]
        ]
        item = job_item(stack, job_id)
        assert (item["state"], item["split_attempts"]) == ("splitting", str(attempt))
        assert item["error"] == (
            f"splitting failed (attempt {attempt} of 3): ConnectionResetError: "
            "connection reset by peer"
        )

    job = splitter.split(bucket, "flaky.csv")

    assert (job.state, job.split_attempts) == ("failed", 3)
    assert job.error == (
        "splitting failed (attempt 3 of 3): ConnectionResetError: connection reset by peer"
    )
    assert loops.started == []


def test_a_retry_after_a_failed_attempt_splits_and_clears_the_error(stack: Stack) -> None:
    rows = [[f"+1415555{i:04d}", FROM, "hello"] for i in range(20)]
    put(stack, "once-flaky.csv", csv_bytes(["To", "From", "Body"], rows))
    loops = StartedLoops()
    bucket = stack.env["SOURCE_BUCKET"]
    with pytest.raises(ConnectionResetError):
        make_splitter(loops, storage=BreakingStorage(stack.s3)).split(bucket, "once-flaky.csv")

    job = make_splitter(loops).split(bucket, "once-flaky.csv")

    assert (job.state, job.valid, job.error, job.split_attempts) == ("running", 20, None, 2)
    assert loops.started == [job.job_id]


# --- one job per content --------------------------------------------------------------------

CONTENT = csv_bytes(["To", "From", "Body"], [[f"+1415555{i:04d}", FROM, "hi"] for i in range(5)])


def test_same_bytes_under_a_second_key_are_a_duplicate(stack: Stack) -> None:
    bucket = stack.env["SOURCE_BUCKET"]
    put(stack, "first.csv", CONTENT)
    put(stack, "second.csv", CONTENT)
    loops = StartedLoops()
    splitter = make_splitter(loops)

    first = splitter.split(bucket, "first.csv")
    second = splitter.split(bucket, "second.csv")

    assert first.state == "running"
    assert (second.state, second.rows, second.valid, second.chunks) == ("duplicate", 5, 5, 1)
    assert second.error == (
        f"the same content as job {first.job_id} (uploaded 2025-06-15 15:06:40 UTC); "
        "to send it again upload with x-amz-meta-resend: true"
    )
    item = job_item(stack, second.job_id)
    assert item["duplicate_of"] == first.job_id
    assert item["content_sha256"] == job_item(stack, first.job_id)["content_sha256"]
    assert loops.started == [first.job_id]
    # Delivered again, the duplicate stays one and starts nothing.
    assert splitter.split(bucket, "second.csv").state == "duplicate"
    assert loops.started == [first.job_id]


def test_multipart_upload_of_the_same_bytes_is_a_duplicate(stack: Stack) -> None:
    bucket = stack.env["SOURCE_BUCKET"]
    put(stack, "single.csv", CONTENT)
    upload = stack.s3.create_multipart_upload(Bucket=bucket, Key="parts.csv")
    part = stack.s3.upload_part(
        Bucket=bucket, Key="parts.csv", UploadId=upload["UploadId"], PartNumber=1, Body=CONTENT
    )
    stack.s3.complete_multipart_upload(
        Bucket=bucket,
        Key="parts.csv",
        UploadId=upload["UploadId"],
        MultipartUpload={"Parts": [{"ETag": part["ETag"], "PartNumber": 1}]},
    )
    loops = StartedLoops()
    splitter = make_splitter(loops)

    first = splitter.split(bucket, "single.csv")
    second = splitter.split(bucket, "parts.csv")

    assert first.etag != second.etag
    assert (first.state, second.state) == ("running", "duplicate")
    assert loops.started == [first.job_id]


def test_same_upload_delivered_twice_resumes(stack: Stack) -> None:
    bucket = stack.env["SOURCE_BUCKET"]
    put(stack, "twice.csv", CONTENT)
    loops = StartedLoops()
    splitter = make_splitter(loops)

    first = splitter.split(bucket, "twice.csv")
    # The first delivery was cut off before its job left `splitting`: run again, it holds the
    # content itself.
    wiring.jobs().update(first.job_id, state="splitting")
    again = splitter.split(bucket, "twice.csv")

    assert (again.job_id, again.state) == (first.job_id, "running")
    assert loops.started == [first.job_id, first.job_id]


def test_resend_sends_the_same_content_again(stack: Stack) -> None:
    bucket = stack.env["SOURCE_BUCKET"]
    put(stack, "campaign.csv", CONTENT)
    loops = StartedLoops()
    clock = Clock()
    splitter = make_splitter(loops, clock)
    first = splitter.split(bucket, "campaign.csv")
    put(stack, "campaign.csv", CONTENT, resend="true")
    clock.now += 60

    resent = splitter.split(bucket, "campaign.csv")
    put(stack, "again.csv", CONTENT)
    accidental = splitter.split(bucket, "again.csv")

    assert resent.job_id not in (first.job_id, job_id_for(bucket, "campaign.csv", resent.etag))
    assert (first.state, resent.state) == ("running", "running")
    assert loops.started == [first.job_id, resent.job_id]
    # The resend holds the content now: a later accidental upload is its duplicate.
    assert job_item(stack, accidental.job_id)["duplicate_of"] == resent.job_id


@pytest.mark.parametrize("flag", ["1", "yes", "TRUE"])
def test_resend_flag_spellings(stack: Stack, flag: str) -> None:
    bucket = stack.env["SOURCE_BUCKET"]
    put(stack, "a.csv", CONTENT)
    put(stack, "b.csv", CONTENT, resend=flag)
    loops = StartedLoops()
    splitter = make_splitter(loops)

    jobs = [splitter.split(bucket, "a.csv"), splitter.split(bucket, "b.csv")]

    assert [j.state for j in jobs] == ["running", "running"]


def test_content_claim_expires_after_the_retention_window(stack: Stack) -> None:
    bucket = stack.env["SOURCE_BUCKET"]
    put(stack, "old.csv", CONTENT)
    put(stack, "new.csv", CONTENT)
    loops = StartedLoops()
    clock = Clock()
    splitter = make_splitter(loops, clock)
    first = splitter.split(bucket, "old.csv")
    clock.now += Settings.from_env().content_retention_days * 86_400 + 1

    later = splitter.split(bucket, "new.csv")

    assert (first.state, later.state) == ("running", "running")
    assert loops.started == [first.job_id, later.job_id]


def test_a_job_with_nothing_to_send_claims_nothing(stack: Stack) -> None:
    bucket = stack.env["SOURCE_BUCKET"]
    bad = csv_bytes(["To", "From", "Body"], [["555", FROM, "hi"]])
    put(stack, "bad-1.csv", bad)
    put(stack, "bad-2.csv", bad)
    splitter = make_splitter(StartedLoops())

    states = [splitter.split(bucket, "bad-1.csv").state, splitter.split(bucket, "bad-2.csv").state]

    assert states == ["completed", "completed"]


def test_claiming_again_for_the_same_job_succeeds(stack: Stack) -> None:
    claims = wiring.content_claims()
    me = Holder("job-a", 1.0)

    assert claims.claim("ab" * 32, me, 10.0) is None
    assert claims.claim("ab" * 32, me, 20.0) is None
    assert claims.claim("ab" * 32, Holder("job-b", 2.0), 30.0) == me


# --- the plan command ----------------------------------------------------------------------


def test_plan_command_prints_rejects_for_deep_and_huge_rows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(
        jsonl([message(1), call("x" * 65_400)])
        + b'{"To": "+14155550003", "extra": '
        + b"[" * 10_000
        + b"]" * 10_000
        + b"}\n"
        + jsonl([message(4, ContentVariables=deep_text(10_000))])
    )

    code = main(["plan", str(path)])

    out, err = capsys.readouterr()
    assert code == 0
    assert "Traceback" not in out + err
    assert "4 rows, 1 valid, 3 rejected" in out
    assert "rejected row 2: row is 65," in out
    assert "rejected row 3: record 3 is nested more than 32 levels deep" in out
    assert "rejected row 4: ContentVariables is nested more than 32 levels deep" in out
