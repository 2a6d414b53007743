"""The client's pure parts: HTTP error answers to typed errors, the outcome and rejects CSVs read
back as the reconciler and splitter write them, a job's status and when it is finished, and the
progress line's estimate of rows settling per second."""

from __future__ import annotations

import io
import json

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from callqueue.cli.remote_view import SettledRate, print_status
from callqueue.client import (
    ApiError,
    BadRequest,
    Conflict,
    JobNotFound,
    JobStatus,
    NotAuthorized,
    Outcome,
    ServerError,
)
from callqueue.client.records import parse_outcomes, parse_rejects
from callqueue.client.transport import error_for
from chalicelib.aws.buckets import SpooledFile
from downstream.reconcile import RowOutcome, write_outcomes_csv


def answer(status: int, body: bytes, reason: str = "") -> requests.Response:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.reason = reason
    return response


def chalice_error(code: str, message: str) -> bytes:
    return json.dumps({"Code": code, "Message": message}).encode()


@pytest.mark.parametrize(
    ("status", "body", "kind", "message"),
    [
        (
            409,
            chalice_error("ConflictError", "cannot pause: job j is already paused"),
            Conflict,
            "cannot pause: job j is already paused",
        ),
        (404, chalice_error("NotFoundError", "no job j"), JobNotFound, "no job j"),
        (
            400,
            chalice_error("BadRequestError", "`limit` must be 1..100"),
            BadRequest,
            "`limit` must be 1..100",
        ),
        (
            413,
            chalice_error("PayloadTooLargeError", "the body is over 5242880 bytes"),
            BadRequest,
            "the body is over 5242880 bytes",
        ),
        # API Gateway's own answers: no key or a wrong one, IAM's refusal, its throttle.
        (
            403,
            b'{"message":"Forbidden"}',
            NotAuthorized,
            "Forbidden (HTTP 403): check the API key or credentials",
        ),
        (
            403,
            b'{"message":"The security token included in the request is invalid."}',
            NotAuthorized,
            "The security token included in the request is invalid. (HTTP 403)"
            ": check the API key or credentials",
        ),
        (429, b'{"message":"Too Many Requests"}', ApiError, "Too Many Requests"),
        (
            502,
            b"<html>\n<body>Bad   Gateway</body></html>",
            ServerError,
            "the API failed (HTTP 502): <html> <body>Bad Gateway</body></html>",
        ),
        (500, b"", ServerError, "the API failed (HTTP 500): Internal Server Error"),
        (404, b"not json", JobNotFound, "not json"),
    ],
)
def test_error_for_keeps_the_apis_message_on_one_line(
    status: int, body: bytes, kind: type[ApiError], message: str
) -> None:
    error = error_for(answer(status, body, "Internal Server Error" if status == 500 else ""))
    assert type(error) is kind
    assert str(error) == message and "\n" not in str(error)
    assert error.status == status


def test_error_for_names_the_chalice_error_code() -> None:
    error = error_for(answer(409, chalice_error("ConflictError", "no")))
    assert error.code == "ConflictError"
    assert error_for(answer(403, b'{"message":"Forbidden"}')).code is None


# Values as the outcome CSV holds them: anything but a leading apostrophe (a value that starts
# with one is written as it is, so reading it back cannot tell it from a neutralised formula).
cells = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1).filter(
    lambda v: not v.startswith("'")
)


@given(
    st.lists(
        st.tuples(
            cells,
            cells,
            st.sampled_from(["sent", "failed", "rejected"]),
            st.one_of(st.none(), st.integers(20000, 99999), st.just("cancelled")),
            cells,
            st.none() | cells,
            st.none() | cells,
        ),
        max_size=8,
    )
)
def test_parse_outcomes_reads_back_what_the_reconciler_writes(rows: list[tuple]) -> None:  # type: ignore[type-arg]
    written = [
        RowOutcome(
            row=n,
            to=to,
            api=api,
            outcome=outcome,
            error_code=code,
            sid=sid,
            reason=None,
            carried={
                **({"reference": ref} if ref is not None else {}),
                **({"Name, kept": kept} if kept is not None else {}),
            },
        )
        for n, (to, api, outcome, code, sid, ref, kept) in enumerate(rows, 1)
    ]
    text = io.StringIO(newline="")
    write_outcomes_csv(text, written, ["Name, kept"])
    read = list(parse_outcomes(io.StringIO(text.getvalue(), newline="")))
    assert read == [
        Outcome(
            o.row,
            o.to,
            o.api,
            o.outcome,
            None if o.error_code is None else str(o.error_code),
            o.sid,
            None,
            o.carried.get("reference"),
            {k: v for k, v in o.carried.items() if k != "reference"},
        )
        for o in written
    ]


def test_parse_outcomes_reads_a_file_written_before_references() -> None:
    old = "row,to,api,outcome,error_code,sid,reason\r\n1,+14155550100,messages,sent,,SM1,\r\n"
    (read,) = parse_outcomes(io.StringIO(old, newline=""))
    assert (read.row, read.reference, read.kept) == (1, None, {})


def test_parse_rejects_reads_the_splitters_file_with_its_reasons_as_held() -> None:
    spooled = SpooledFile()
    spooled.write_row(["row", "reason"])
    spooled.write_row(["3", "To '+1555' is not an E.164 number"])
    spooled.write_row(["9", '=HYPERLINK("x") is not\na number'])
    rejects = list(parse_rejects(io.TextIOWrapper(spooled.rewind(), encoding="utf-8", newline="")))
    assert [(r.row, r.reason) for r in rejects] == [
        (3, "To '+1555' is not an E.164 number"),
        (9, '\'=HYPERLINK("x") is not\na number'),
    ]


def test_job_status_is_finished_once_nothing_more_will_happen() -> None:
    def status(state: str, outcomes: str | None = None) -> JobStatus:
        return JobStatus.from_api(
            {"job_id": "j", "state": state, "rows": 3, "links": {"outcomes_csv": outcomes}}
        )

    assert [status(s).finished for s in ("splitting", "running", "released", "paused")] == [
        False
    ] * 4
    assert all(status(s).finished for s in ("completed", "failed", "duplicate"))
    # A cancel ends the rows not yet called; the ones in flight settle a moment later.
    assert not status("cancelled").finished
    assert status("cancelled", "https://reports/outcomes.csv").finished
    assert status("splitting").rows is None
    assert JobStatus.submitted("j").state == "submitted"


def test_job_status_reads_delivery_counts_and_drops_what_is_not_counts(
    capsys: pytest.CaptureFixture[str],
) -> None:
    body = {
        "job_id": "j",
        "state": "completed",
        "rows": 3,
        "delivery": {
            "messages": {"delivered": 2, "undelivered": 1, "pending": 0, "odd": "x"},
            "calls": {"busy": True},
            "faxes": {"sent": 1},
        },
        "delivery_error_codes": {"30003": 1, "bad": None},
    }

    status = JobStatus.from_api(body)

    assert status.delivery == {
        "messages": {"delivered": 2, "undelivered": 1, "pending": 0},
        "calls": {},
    }
    assert status.delivery_error_codes == {"30003": 1}
    assert JobStatus.from_api({"job_id": "j", "state": "running"}).delivery == {}
    print_status(status)
    printed = capsys.readouterr().out
    assert "messages  delivered 2, undelivered 1, pending 0" in printed
    assert "delivery  errors: 30003 x1" in printed


@given(
    st.lists(
        st.tuples(st.floats(0.01, SettledRate.KEEP_SECONDS - 0.01), st.integers(0, 500)),
        min_size=1,
        max_size=30,
    )
)
def test_settled_rate_spreads_each_polls_rows_over_the_time_since_the_last(
    polls: list[tuple[float, int]],
) -> None:
    rate = SettledRate()
    now, settled = 1000.0, 0
    rate.observe(now, settled)
    for gap, new in polls:
        before = now
        now, settled = now + gap, settled + new
        times = rate.observe(now, settled)
        added = [t for t in times if t > before]
        assert len(added) == new
        assert all(before < t <= now for t in added)
        assert all(t > now - SettledRate.KEEP_SECONDS for t in times)


def test_the_command_loads_no_http_or_aws_client_until_a_stack_command_runs() -> None:
    # `callqueue plan` and `--help` stay light: `from callqueue import Client` loads the client
    # (requests, boto3) only when asked.
    import subprocess
    import sys

    code = (
        "import sys, callqueue\n"
        "from callqueue.cli.parser import build_parser\n"
        "build_parser()\n"
        "assert not {'requests', 'boto3', 'botocore'} & set(sys.modules), sys.modules.keys()\n"
        "from callqueue import Client, Job\n"
        "assert Client.__module__ == 'callqueue.client.client' and 'requests' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
