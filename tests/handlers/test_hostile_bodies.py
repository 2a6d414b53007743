"""Every JSON route answers a hostile body with a 400 that says what is wrong, never a 500: a
body nested past Python's recursion limit, text with a lone surrogate escape, not JSON at all."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from chalice.test import Client

from tests.handlers.test_downstream import make_job
from tests.stack import Stack

DEEP = b"[" * 100_000 + b"]" * 100_000
BODIES = {
    "deep": DEEP,
    "deep object": b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
    "surrogate": b'{"filename": "a.csv", "content": "To\\n\\ud800", "cps": 5, "rows": ["\\udfff"]}',
    "not json": b"{",
    "not utf-8": b'{"filename": "\xff"}',
}
ROUTES = ["/jobs", "/jobs/plan", "/jobs/job-1/rate", "/jobs/job-2/retry"]


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    make_job(job_id="job-1", state="running")
    make_job(job_id="job-2", state="completed")
    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


@pytest.mark.parametrize("route", ROUTES)
@pytest.mark.parametrize("name", list(BODIES))
def test_a_hostile_body_is_a_clear_400(client: Client, route: str, name: str) -> None:
    response = client.http.post(
        route,
        headers={"Content-Type": "application/json", "x-api-key": "k"},
        body=BODIES[name],
    )

    assert response.status_code == 400, (route, name, response.body[:300])
    message = response.json_body["Message"]
    assert "JSON" in message or "Unicode" in message, message
