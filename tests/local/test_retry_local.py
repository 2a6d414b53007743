"""End to end through `callqueue up`'s REST API: a job whose rows fail by the emulator's magic
numbers, retried, and the emulator's requests show exactly those rows called again."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from callqueue.local.api_server import free_port
from callqueue.local.emulator.magic_numbers import VALID_FROM
from callqueue.local.options import Options
from callqueue.local.runtime import LocalRuntime
from tests.local.test_api_local import create, job, wait_for

pytestmark = pytest.mark.e2e

# Twilio's magic numbers the emulator refuses (21612, 21408): the row ends `failed`.
FAILING = ("+15005550002", "+15005550003")


@pytest.fixture(scope="module")
def runtime() -> Iterator[LocalRuntime]:
    options = Options(cps=10, window_seconds=2, schedule_period=1.0, api_port=free_port())
    with LocalRuntime(options) as local:
        yield local


def finished(api: str, job_id: str) -> bool:
    status = job(api, job_id)
    return status is not None and status["state"] == "completed"


def test_local_retry_calls_exactly_the_failed_rows_again(runtime: LocalRuntime) -> None:
    assert runtime.api is not None
    api = runtime.api.url
    good = [f"+1415556{i:04d}" for i in range(5)]
    rows = [
        {"To": to, "From": VALID_FROM, "Body": f"retry-e2e {n}", "reference": f"r{n}"}
        for n, to in enumerate([*good[:2], FAILING[0], *good[2:], FAILING[1]], start=1)
    ]
    first = create(api, {"rows": rows})
    wait_for(lambda: finished(api, first))
    assert job(api, first)["counts"]["failed"] == 2  # type: ignore[index]

    answer = requests.post(f"{api}/jobs/{first}/retry", json={}, timeout=10)
    assert answer.status_code == 201, answer.text
    second = answer.json()["job_id"]
    assert answer.json()["rows"] == 2
    wait_for(lambda: finished(api, second))
    assert job(api, second)["retry_of"] == first  # type: ignore[index]

    called = Counter(
        r["params"]["To"]
        for r in runtime.emulator.requests
        if r["method"] == "POST" and str(r["params"].get("Body", "")).startswith("retry-e2e")
    )
    assert called == {**dict.fromkeys(good, 1), **dict.fromkeys(FAILING, 2)}
