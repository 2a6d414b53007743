"""`callqueue set-rate` and Client.set_rate against the app in this process (through
tests/handlers/test_client.py's gateway): the change printed in one line, the API's refusals
as one-line errors with the usual exit codes."""

from __future__ import annotations

import pytest

from callqueue.cli import main
from callqueue.client import BadRequest, Conflict, RateChanged
from tests.gateway import InProcessApi
from tests.handlers.test_client import API, app_client, cli, gateway, remote
from tests.handlers.test_lifecycle import job, make_job

__all__ = ["app_client", "cli", "gateway"]  # fixtures, registered by being here

JOB = "calls-0123456789ab"


def test_set_rate_prints_the_change(cli: None, capsys: pytest.CaptureFixture[str]) -> None:
    make_job(chunks=10, released_chunks=4)

    assert main(["set-rate", JOB, "25", "--api-url", API]) == 0
    assert capsys.readouterr().out == f"{JOB}: rate 10 -> 25 CPS\n"
    assert job().cps == 25
    assert main(["set-rate", JOB, "25", "--api-url", API]) == 0
    assert capsys.readouterr().out == f"{JOB}: rate already 25 CPS\n"


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        ([JOB, "25"], "cannot change the rate: job calls-0123456789ab has every row released"),
        (["nope-0123456789ab", "25"], "no job nope-0123456789ab"),
    ],
)
def test_set_rate_refusals_are_one_line(
    cli: None, capsys: pytest.CaptureFixture[str], argv: list[str], words: str
) -> None:
    make_job(state="released", chunks=10, released_chunks=10)

    assert main(["set-rate", *argv, "--api-url", API]) == 2

    err = capsys.readouterr().err
    assert err.startswith(f"callqueue: {words}") and len(err.strip().splitlines()) == 1, err
    assert job().cps == 10


@pytest.mark.parametrize("cps", ["0", "-1", "2.5", "fast"])
def test_set_rate_a_bad_cps_is_a_usage_error_naming_it(
    cli: None, capsys: pytest.CaptureFixture[str], cps: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["set-rate", JOB, cps, "--api-url", API])
    assert exited.value.code == 2
    assert cps in capsys.readouterr().err


def test_client_set_rate_answers_a_record_and_raises_the_apis_errors(
    gateway: InProcessApi,
) -> None:
    make_job(chunks=10, released_chunks=4)
    client = remote(gateway)

    changed = client.set_rate(JOB, 3)

    assert changed == RateChanged(JOB, "running", 10, 3, None, False)
    with pytest.raises(BadRequest, match="at least 1, got 0"):
        client.set_rate(JOB, 0)
    make_job(job_id="done-0123456789ab", state="completed")
    with pytest.raises(Conflict, match="completed"):
        client.set_rate("done-0123456789ab", 3)
