"""Campaigns at the intake: job-wide parameters and placeholders travel from a job manifest (an
S3 drop), POST /jobs and the Python client into the chunks, rendered; a template naming a column
the file lacks fails the job with one reason. Against moto; assertions on jobs and chunks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chalice.test import Client

from tests.handlers.test_api import create_and_split, get_job, post
from tests.handlers.test_intake_edges import StartedLoops, chunk, job_item, make_splitter, put
from tests.handlers.test_pipeline import s3_event
from tests.stack import Stack

FROM = "+15005550006"
LIST = "phone,name,code\n+14155550100,Zoë 🚀,{{code}}\n+14155550101,,7\n+14155550102,Bob,\n"
PARAMS = {"From": FROM, "To": "{{phone}}", "Body": "Hi {{name|there}}, code {{code}} ✓"}


@pytest.fixture
def client(stack: Stack, tmp_path: Path) -> Iterator[Client]:
    import app as app_module

    with Client(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as test_client:
        yield test_client


def manifest(params: dict[str, Any]) -> bytes:
    return json.dumps({"params": params}, ensure_ascii=False).encode()


def rejects_of(stack: Stack, job_id: str) -> str:
    key = job_item(stack, job_id)["rejects_key"]
    body = stack.s3.get_object(Bucket=stack.env["REPORTS_BUCKET"], Key=key)["Body"]
    return str(body.read().decode())


def test_a_manifest_beside_the_file_renders_every_row_into_the_chunks(stack: Stack) -> None:
    put(stack, "list.csv.job.json", manifest(PARAMS))
    put(stack, "list.csv", LIST.encode())
    loops = StartedLoops()
    splitter = make_splitter(loops)

    assert splitter.split(stack.env["SOURCE_BUCKET"], "list.csv.job.json") is None
    job = splitter.split(stack.env["SOURCE_BUCKET"], "list.csv")

    assert job is not None
    assert (job.state, job.rows, job.valid, job.rejected) == ("running", 3, 2, 1)
    assert loops.started == [job.job_id]  # the manifest started nothing
    sent = [row["params"] for row in chunk(stack, job.job_id)]
    assert sent == [
        {"To": "+14155550100", "From": FROM, "Body": "Hi Zoë 🚀, code {{code}} ✓"},
        {"To": "+14155550101", "From": FROM, "Body": "Hi there, code 7 ✓"},
    ]
    assert "3,placeholder {{code}}: column code is empty" in rejects_of(stack, job.job_id)


def test_a_manifest_named_by_metadata_is_read_and_a_missing_one_fails_the_job(
    stack: Stack,
) -> None:
    put(stack, "campaigns/march.json", manifest({**PARAMS, "Body": "{{name|friend}}"}))
    put(stack, "a.csv", LIST.encode(), manifest="campaigns/march.json")
    put(stack, "b.csv", LIST.encode(), manifest="campaigns/april.json", resend="true")
    splitter = make_splitter(StartedLoops())

    named = splitter.split(stack.env["SOURCE_BUCKET"], "a.csv")
    missing = splitter.split(stack.env["SOURCE_BUCKET"], "b.csv")

    assert named is not None and missing is not None
    assert [r["params"]["Body"] for r in chunk(stack, named.job_id)] == ["Zoë 🚀", "friend", "Bob"]
    assert missing.state == "failed"
    assert missing.error == (
        "x-amz-meta-manifest names campaigns/april.json, which is not in "
        f"{stack.env['SOURCE_BUCKET']}"
    )


def test_a_template_naming_an_absent_column_fails_the_job_with_one_reason(stack: Stack) -> None:
    rows = "phone,name,code\n" + "+14155550100,Ada,1\n" * 500
    put(stack, "big.csv.job.json", manifest({**PARAMS, "Body": "Hi {{first_name}}"}))
    put(stack, "big.csv", rows.encode())
    loops = StartedLoops()

    job = make_splitter(loops).split(stack.env["SOURCE_BUCKET"], "big.csv")

    assert job is not None
    assert (job.state, job.error) == (
        "failed",
        "column first_name is not in the file; it has: phone, name, code",
    )
    assert loops.started == []
    assert "rejects_key" not in job_item(stack, job.job_id)


def test_a_bad_manifest_fails_the_job_with_its_reason(stack: Stack) -> None:
    put(stack, "bad.csv.job.json", b'{"params": {"Body": ["x"]}}')
    put(stack, "bad.csv", LIST.encode())

    job = make_splitter(StartedLoops()).split(stack.env["SOURCE_BUCKET"], "bad.csv")

    assert job is not None
    assert (job.state, job.error) == (
        "failed",
        "manifest bad.csv.job.json: params: Body must be a string, a number or true/false",
    )


def test_the_same_list_with_another_template_is_another_campaign(stack: Stack) -> None:
    put(stack, "one.csv.job.json", manifest(PARAMS))
    put(stack, "one.csv", LIST.encode())
    put(stack, "two.csv.job.json", manifest({**PARAMS, "Body": "Bye {{name|there}}"}))
    put(stack, "two.csv", LIST.encode())
    put(stack, "three.csv.job.json", manifest(PARAMS))
    put(stack, "three.csv", LIST.encode())
    splitter = make_splitter(StartedLoops())
    states = [
        splitter.split(stack.env["SOURCE_BUCKET"], f"{n}.csv") for n in ["one", "two", "three"]
    ]

    assert [job.state for job in states if job] == ["running", "running", "duplicate"]


def test_api_params_render_rows_posted_in_the_body(stack: Stack, client: Client) -> None:
    rows = [{"phone": "+14155550100", "name": "Ada"}, {"phone": "+14155550101", "name": "{{x}}"}]
    job_id = create_and_split(
        stack,
        client,
        {"rows": rows, "params": {"From": FROM, "To": "{{phone}}", "Body": "¡Hola {{name}}!"}},
    )

    assert get_job(client, job_id)["valid"] == 2
    assert [r["params"]["Body"] for r in chunk(stack, job_id)] == ["¡Hola Ada!", "¡Hola {{x}}!"]
    other = json.loads(post(client, "/jobs", {"rows": rows, "params": {"Body": "x"}}).body)
    assert other["job_id"] != job_id  # other parameters, another job


def test_api_params_travel_with_an_upload_as_its_manifest(stack: Stack, client: Client) -> None:
    response = post(client, "/jobs", {"filename": "list.csv", "params": PARAMS})
    assert response.status_code == 202, response.body
    created = json.loads(response.body)
    bucket = stack.env["SOURCE_BUCKET"]
    metadata = {k.removeprefix("x-amz-meta-"): v for k, v in created["upload"]["headers"].items()}
    stack.s3.put_object(Bucket=bucket, Key=created["key"], Body=LIST.encode(), Metadata=metadata)
    client.lambda_.invoke("handle_source_file", s3_event(bucket, created["key"] + ".job.json"))
    client.lambda_.invoke("handle_source_file", s3_event(bucket, created["key"]))

    job = get_job(client, created["job_id"])
    assert (job["state"], job["valid"], job["rejected"]) == ("running", 2, 1)
    assert chunk(stack, created["job_id"])[1]["params"]["Body"] == "Hi there, code 7 ✓"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"rows": [{}], "params": ["Body"]}, "`params` must be a JSON object"),
        ({"filename": "x.csv", "params": {"Body": {"a": 1}}}, "Body must be a string"),
        ({"filename": "x.csv.job.json"}, "is a job manifest's name"),
    ],
)
def test_api_refuses_bad_params(client: Client, body: dict[str, Any], message: str) -> None:
    response = post(client, "/jobs", body)
    assert response.status_code == 400
    assert message in json.loads(response.body)["Message"]


def test_the_python_client_submits_params_the_job_renders(
    stack: Stack, client: Client, tmp_path: Path
) -> None:
    from callqueue.client import Client as CallqueueClient
    from tests.gateway import InProcessApi, KeyCheck, gateway_session

    api = "http://api.test"
    gateway = InProcessApi(client.http, KeyCheck(frozenset({"k"})))
    remote = CallqueueClient(api_url=api, api_key="k", http=gateway_session(api, gateway))
    path = tmp_path / "list.csv"
    path.write_text(LIST, encoding="utf-8")

    job = remote.submit(path, params=PARAMS)

    bucket = stack.env["SOURCE_BUCKET"]
    keys = sorted(o["Key"] for o in stack.s3.list_objects_v2(Bucket=bucket)["Contents"])
    assert [k.rsplit("/", 1)[1] for k in keys] == ["list.csv", "list.csv.job.json"]
    for key in keys:
        client.lambda_.invoke("handle_source_file", s3_event(bucket, key))
    assert [r["params"]["Body"] for r in chunk(stack, job.job_id)] == [
        "Hi Zoë 🚀, code {{code}} ✓",
        "Hi there, code 7 ✓",
    ]
