"""Files staged to be planned before their job starts (chalicelib.api.staged): POST /jobs/uploads,
POST /jobs/plan and POST /jobs with `staged_key`, through chalice.test.Client on the moto stack."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import pytest
from chalice.app import BadRequestError
from chalice.test import Client
from hypothesis import given
from hypothesis import strategies as st

from chalicelib import wiring
from chalicelib.api.plan import PlanApi
from chalicelib.api.staged import staged_key_of
from tests.handlers.test_api import get_job, post
from tests.handlers.test_pipeline import s3_event
from tests.stack import Stack

VALID_FROM = "+15005550006"
TOKEN = "0123456789abcdef0123456789abcdef"


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def csv_of(count: int) -> bytes:
    lines = ["To,From,Body"] + [
        f"+1415555{i % 10000:04d},{VALID_FROM},hello {i}" for i in range(count)
    ]
    return ("\n".join(lines) + "\n").encode()


def stage(stack: Stack, client: Client, content: bytes, filename: str = "calls.csv") -> str:
    """POST /jobs/uploads, then the browser's PUT (here: the object the PUT stores)."""
    response = post(client, "/jobs/uploads", {"filename": filename})
    assert response.status_code == 200, response.body
    key = str(json.loads(response.body)["staged_key"])
    stack.s3.put_object(Bucket=stack.env["HOLDING_BUCKET"], Key=key, Body=content)
    return key


def answer(response: Any) -> tuple[int, dict[str, Any]]:
    return response.status_code, json.loads(response.body)


def use_plan_api(monkeypatch: pytest.MonkeyPatch, **kwargs: Any) -> None:
    # Cached as wiring's own, so wiring.reset clears it.
    monkeypatch.setattr(
        wiring,
        "plan_api",
        cache(lambda: PlanApi(wiring.settings(), staged=wiring.staged_files(), **kwargs)),
    )


# -- POST /jobs/uploads -------------------------------------------------------------------------


def test_upload_answers_a_presigned_put_under_staged_in_holding(
    stack: Stack, client: Client
) -> None:
    first = answer(post(client, "/jobs/uploads", {"filename": "calls.csv"}))
    second = answer(post(client, "/jobs/uploads", {"filename": "calls.csv"}))

    assert first[0] == second[0] == 200
    key = first[1]["staged_key"]
    assert key.startswith("staged/") and key.endswith("/calls.csv")
    assert len(key.split("/")[1]) == 32
    # A random token each time: one user's key is not another's.
    assert second[1]["staged_key"] != key
    upload = first[1]["upload"]
    url = urlsplit(upload["url"])
    assert stack.env["HOLDING_BUCKET"] in url.netloc + url.path
    assert url.path.endswith(key)
    assert "X-Amz-Signature" in url.query
    assert (upload["method"], upload["expires_in"]) == ("PUT", 900)


@pytest.mark.parametrize(
    "body",
    [
        {"filename": "../calls.csv"},
        {"filename": ".."},
        {"filename": "a/calls.csv"},
        {"filename": "calls.txt"},
        {"filename": ""},
        {"filename": 12},
        {"filename": "calls.csv.job.json"},
        {},
        [],
    ],
)
def test_upload_of_a_bad_file_name_is_400(stack: Stack, client: Client, body: Any) -> None:
    status, refused = answer(post(client, "/jobs/uploads", body))

    assert status == 400, refused
    assert "Traceback" not in refused["Message"]
    assert stack.s3.list_objects_v2(Bucket=stack.env["HOLDING_BUCKET"]).get("KeyCount") == 0


# -- POST /jobs/plan with staged_key --------------------------------------------------------------


def test_plan_of_a_staged_file_is_the_plan_of_its_content(stack: Stack, client: Client) -> None:
    content = csv_of(30) + b"not a number,+15005550006,hi\n"
    key = stage(stack, client, content)

    status, staged = answer(post(client, "/jobs/plan", {"staged_key": key, "cps": 3}))
    inline = answer(
        post(
            client,
            "/jobs/plan",
            {"filename": "calls.csv", "content": content.decode(), "cps": 3},
        )
    )[1]

    assert status == 200, staged
    extra = {"staged_key", "sampled", "rows_read", "bytes_read", "size", "estimated_rows"}
    assert {k: v for k, v in staged.items() if k not in extra} == inline
    assert (staged["rows"], staged["valid"], staged["rejected"]) == (31, 30, 1)
    assert staged["sampled"] is False
    assert staged["rows_read"] == staged["estimated_rows"] == 31
    assert staged["bytes_read"] == staged["size"] == len(content)
    # Planning sends nothing and makes no job; the staged file stays for the start.
    assert stack.s3.list_objects_v2(Bucket=stack.env["SOURCE_BUCKET"]).get("KeyCount") == 0
    assert stack.s3.head_object(Bucket=stack.env["HOLDING_BUCKET"], Key=key)


def test_plan_of_a_large_staged_file_is_of_its_first_rows_and_estimates_the_rest(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    use_plan_api(monkeypatch, sample_rows=5000)
    content = csv_of(20_000)
    key = stage(stack, client, content)

    status, planned = answer(post(client, "/jobs/plan", {"staged_key": key}))

    assert status == 200, planned
    assert planned["sampled"] is True
    assert planned["rows"] == planned["rows_read"] == planned["valid"] == 5000
    assert planned["size"] == len(content)
    assert planned["bytes_read"] < len(content)
    # The estimate is from the bytes read, which run ahead of the rows by a read buffer.
    assert 0.6 * 20_000 <= planned["estimated_rows"] <= 20_000


def test_plan_of_a_staged_file_stops_on_its_clock(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticks = iter(range(1_000_000))
    use_plan_api(monkeypatch, clock=lambda: float(next(ticks)), sample_seconds=5.0)
    key = stage(stack, client, csv_of(100))

    status, planned = answer(post(client, "/jobs/plan", {"staged_key": key}))

    # One tick for the request, one to start the sample (until 1 + 5), one before each row.
    assert status == 200, planned
    assert (planned["sampled"], planned["rows_read"]) == (True, 4)


@pytest.mark.parametrize(
    "staged_key",
    [
        f"staged/{TOKEN}/../uploads/calls.csv",
        f"staged/{TOKEN}/..",
        "staged/../staged/calls.csv",
        f"uploads/{TOKEN}/calls.csv",
        f"jobs/{TOKEN}/chunk-00000.jsonl",
        f"/staged/{TOKEN}/calls.csv",
        f"staged/{TOKEN}/a/calls.csv",
        f"staged/{TOKEN[:-1]}/calls.csv",
        f"staged/{TOKEN.upper()}/calls.csv",
        f"staged/{TOKEN}/calls.txt",
        f"staged/{TOKEN}/calls.csv.job.json",
        "staged/",
        "",
        12,
        None,
        ["staged/x"],
    ],
)
def test_a_staged_key_of_another_shape_is_400_for_plan_and_start(
    stack: Stack, client: Client, staged_key: Any
) -> None:
    for path in ("/jobs/plan", "/jobs"):
        status, refused = answer(post(client, path, {"staged_key": staged_key}))

        assert status == 400, (path, refused)
        assert "\n" not in refused["Message"]
    assert stack.s3.list_objects_v2(Bucket=stack.env["SOURCE_BUCKET"]).get("KeyCount") == 0


def test_an_absent_staged_file_is_404_for_plan_and_start(stack: Stack, client: Client) -> None:
    key = f"staged/{TOKEN}/calls.csv"
    for path in ("/jobs/plan", "/jobs"):
        status, refused = answer(post(client, path, {"staged_key": key}))

        assert status == 404, (path, refused)
        assert key in refused["Message"]


def test_plan_of_a_staged_file_that_is_not_its_format_is_400(stack: Stack, client: Client) -> None:
    key = stage(stack, client, b"this is not JSON", "calls.json")

    status, refused = answer(post(client, "/jobs/plan", {"staged_key": key}))

    assert status == 400, refused
    assert refused["Message"].startswith("calls.json: ")


def test_staged_key_beside_a_file_name_is_400(stack: Stack, client: Client) -> None:
    body = {"staged_key": f"staged/{TOKEN}/calls.csv", "filename": "calls.csv"}
    for path in ("/jobs/plan", "/jobs"):
        assert post(client, path, body).status_code == 400


# -- POST /jobs with staged_key -------------------------------------------------------------------


def test_start_copies_the_staged_file_into_source_as_an_upload_and_deletes_it(
    stack: Stack, client: Client
) -> None:
    content = csv_of(3)
    key = stage(stack, client, content)

    status, created = answer(
        post(
            client,
            "/jobs",
            {"staged_key": key, "window": 60, "params": {"Body": "Hi {{Body}}"}},
        )
    )

    assert status == 202, created
    source = stack.env["SOURCE_BUCKET"]
    stored = stack.s3.get_object(Bucket=source, Key=created["key"])
    assert stored["Body"].read() == content
    assert stored["Metadata"] == {"job-id": created["job_id"], "window": "60"}
    assert created["key"].startswith("uploads/") and created["key"].endswith("/calls.csv")
    assert stack.s3.list_objects_v2(Bucket=stack.env["HOLDING_BUCKET"]).get("KeyCount") == 0

    client.lambda_.invoke("handle_source_file", s3_event(source, created["key"]))
    job = get_job(client, created["job_id"])
    assert (job["state"], job["valid"], job["window_seconds"]) == ("running", 3, 60)

    # The staged file is gone: starting it again is a 404, not a second job.
    assert post(client, "/jobs", {"staged_key": key}).status_code == 404


@given(st.one_of(st.text(), st.builds(lambda t, f: f"staged/{t}/{f}", st.text(), st.text())))
def test_a_staged_key_is_accepted_only_as_one_file_under_staged(value: str) -> None:
    try:
        key, token, filename = staged_key_of(value)
    except BadRequestError:
        return
    assert key == f"staged/{token}/{filename}"
    assert re.fullmatch("[0-9a-f]{32}", token)
    assert "/" not in filename and filename not in (".", "..")
    assert PurePosixPath(key).parts == ("staged", token, filename)


def test_a_staged_file_over_copy_objects_limit_is_413_and_kept(
    stack: Stack, client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    import chalicelib.api.jobs as jobs_module

    content = csv_of(3)
    monkeypatch.setattr(jobs_module, "COPY_MAX_BYTES", len(content) - 1)
    key = stage(stack, client, content)

    status, refused = answer(post(client, "/jobs", {"staged_key": key}))

    assert status == 413, refused
    assert f"{len(content)} bytes" in refused["Message"]
    assert stack.s3.list_objects_v2(Bucket=stack.env["SOURCE_BUCKET"]).get("KeyCount") == 0
    assert stack.s3.head_object(Bucket=stack.env["HOLDING_BUCKET"], Key=key)
