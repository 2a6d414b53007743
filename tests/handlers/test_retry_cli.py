"""`callqueue retry` and Client.retry against the app in this process (through
tests/handlers/test_client.py's gateway): the new job printed in one line, the API's refusals
as one-line errors with the usual exit codes."""

from __future__ import annotations

import json

import pytest

from callqueue.cli import main
from callqueue.client import BadRequest, Conflict, Retried
from tests.gateway import InProcessApi
from tests.handlers.test_client import API, app_client, cli, gateway, remote
from tests.handlers.test_lifecycle import make_job
from tests.handlers.test_retry import JOB, finished
from tests.stack import Stack

__all__ = ["app_client", "cli", "finished", "gateway"]  # fixtures, registered by being here


def rows_written(stack: Stack) -> list[int]:
    bucket = stack.env["SOURCE_BUCKET"]
    (item,) = stack.s3.list_objects_v2(Bucket=bucket)["Contents"]
    body = stack.s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
    return [int(json.loads(line)["original_row"]) for line in body.splitlines()]


@pytest.mark.parametrize(
    ("options", "rows"),
    [
        ([], [2, 3, 4, 7]),
        (["--outcomes", "failed,unknown"], [2, 3, 5, 7]),
        (["--errors", "30003,21211"], [2, 3, 7]),
    ],
)
def test_retry_prints_the_new_job(
    stack: Stack,
    cli: None,
    finished: str,
    capsys: pytest.CaptureFixture[str],
    options: list[str],
    rows: list[int],
) -> None:
    assert main(["retry", JOB, *options, "--api-url", API]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{JOB}-retry-") and out.endswith(
        f": {len(rows)} rows of {JOB} sent again\n"
    )
    assert rows_written(stack) == rows


@pytest.mark.parametrize(
    ("options", "words"),
    [
        (["--outcomes", "failed,sent"], "outcome 'sent' is never retried"),
        (["--errors", "11200"], f"cannot retry: no row of job {JOB} matches"),
    ],
)
def test_retry_refusals_are_one_line(
    cli: None, finished: str, capsys: pytest.CaptureFixture[str], options: list[str], words: str
) -> None:
    assert main(["retry", JOB, *options, "--api-url", API]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"callqueue: {words}") and len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("errors", ["x", "0", ","])
def test_retry_bad_error_codes_are_a_usage_error(
    cli: None, capsys: pytest.CaptureFixture[str], errors: str
) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["retry", JOB, "--errors", errors, "--api-url", API])
    assert exit_.value.code == 2


def test_client_retry_answers_a_record_and_raises_the_apis_errors(
    gateway: InProcessApi, finished: str
) -> None:
    client = remote(gateway)
    retried = client.retry(JOB, ["dead_lettered"])
    assert isinstance(retried, Retried) and (retried.retry_of, retried.rows) == (JOB, 1)
    with pytest.raises(BadRequest, match="never retried"):
        client.retry(JOB, ["suppressed"])
    make_job("running-0123456789ab", "running")
    with pytest.raises(Conflict, match="is running"):
        client.retry("running-0123456789ab")
