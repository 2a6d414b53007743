"""The Python API (callqueue.client) against the app in this process: its routes through
chalice.test's gateway behind API Gateway's key check (tests/gateway.py), presigned uploads and
downloads through moto's S3, the stage found from the stack's outputs in moto's CloudFormation."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from chalice.test import Client as ChaliceClient

from callqueue.client import (
    BadFile,
    BadRequest,
    Client,
    Conflict,
    JobNotFound,
    NotAuthorized,
    StackNotFound,
    WaitTimeout,
)
from tests.gateway import InProcessApi, KeyCheck, gateway_session
from tests.handlers.test_pipeline import s3_event
from tests.stack import Stack

API = "http://api.test"
KEY = "key-of-the-dev-usage-plan"
VALID_FROM = "+15005550006"


@pytest.fixture
def app_client(stack: Stack, tmp_path: Path) -> Iterator[ChaliceClient]:
    import app as app_module

    with ChaliceClient(app_module.app, stage_name="dev", project_dir=str(tmp_path)) as client:
        yield client


@pytest.fixture
def gateway(app_client: ChaliceClient) -> InProcessApi:
    return InProcessApi(app_client.http, KeyCheck(frozenset({KEY})))


def remote(gateway: InProcessApi, key: str | None = KEY) -> Client:
    return Client(api_url=API, api_key=key, http=gateway_session(API, gateway))


def write_csv(path: Path, count: int, *, invalid: int = 0) -> Path:
    lines = ["To,From,Body"]
    lines += [f"+1415555{i:04d},{VALID_FROM},message {i}" for i in range(count)]
    lines += [f"not-a-number-{i},{VALID_FROM},bad {i}" for i in range(invalid)]
    path.write_text("\n".join(lines) + "\n")
    return path


def split(stack: Stack, app_client: ChaliceClient, key: str) -> None:
    """What the SOURCE bucket's event does once the upload lands."""
    app_client.lambda_.invoke("handle_source_file", s3_event(stack.env["SOURCE_BUCKET"], key))


def uploaded_key(stack: Stack) -> str:
    objects = stack.s3.list_objects_v2(Bucket=stack.env["SOURCE_BUCKET"]).get("Contents", [])
    assert len(objects) == 1
    return str(objects[0]["Key"])


def test_client_submit_uploads_the_file_with_its_signed_metadata_then_the_job_appears(
    stack: Stack, app_client: ChaliceClient, gateway: InProcessApi, tmp_path: Path
) -> None:
    client = remote(gateway)
    path = write_csv(tmp_path / "calls.csv", 3, invalid=1)

    job = client.submit(path, cps=5, window=60, name="spring-promo")

    key = uploaded_key(stack)
    assert key.startswith("uploads/") and key.endswith("/spring-promo.csv")
    stored = stack.s3.get_object(Bucket=stack.env["SOURCE_BUCKET"], Key=key)
    assert stored["Body"].read() == path.read_bytes()
    assert stored["Metadata"] == {"job-id": job.job_id, "cps": "5", "window": "60"}
    assert job.job_id.startswith("spring-promo-")
    # Not split yet: the API does not know the job, the handle says why.
    assert job.status().state == "submitted"
    with pytest.raises(JobNotFound, match=f"no job {job.job_id}"):
        client.job(job.job_id).status()

    split(stack, app_client, key)
    status = job.status()
    assert (status.rows, status.target_cps) == (4, 5)
    assert status.state in ("running", "released")  # the release loop runs on its own
    assert status.counts["rejected"] == 1 and status.pending == 3
    assert [s.job_id for s in client.jobs(limit=5)] == [job.job_id]
    (reject,) = job.rejects()
    assert reject.row == 4 and "not-a-number-0" in reject.reason
    saved = job.rejects(tmp_path / "rejects.csv")
    assert saved.read_text().splitlines()[0] == "row,reason"
    # Every row has no outcome yet: there is no outcomes.csv, and the message says why.
    with pytest.raises(JobNotFound, match=r"no outcomes.csv yet: it is (running|released)"):
        job.outcomes()
    assert not (tmp_path / "outcomes.csv").exists()


def test_client_steering_answers_the_apis_409_reasons(
    stack: Stack, app_client: ChaliceClient, gateway: InProcessApi, tmp_path: Path
) -> None:
    client = remote(gateway)
    job = client.submit(write_csv(tmp_path / "calls.csv", 5), window=60)
    split(stack, app_client, uploaded_key(stack))

    assert job.pause() == "paused"
    with pytest.raises(Conflict, match=f"cannot pause: job {job.job_id} is already paused") as e:
        job.pause()
    assert (e.value.status, e.value.code) == (409, "ConflictError")
    assert job.resume() in ("running", "released")
    assert job.cancel() == "cancelled"
    with pytest.raises(Conflict, match=r"cannot cancel: .* is already cancelled"):
        job.cancel()
    with pytest.raises(Conflict, match=r"cannot resume: .* was cancelled"):
        job.resume()


def test_client_errors_are_typed_with_the_apis_own_message(
    gateway: InProcessApi, tmp_path: Path
) -> None:
    client = remote(gateway)
    with pytest.raises(JobNotFound, match=r"^no job nope-123$") as missing:
        client.job("nope-123").pause()
    assert missing.value.status == 404
    with pytest.raises(BadRequest, match=r"`limit` must be 1\.\.100"):
        client.jobs(limit=101)
    text = tmp_path / "calls.txt"
    text.write_text("To\n+14155550100\n")
    with pytest.raises(BadRequest, match=r"cannot tell the format of 'calls.txt'"):
        client.submit(text)
    with pytest.raises(BadRequest, match=r"`cps` must be an integer|at least"):
        client.submit(write_csv(tmp_path / "c.csv", 1), cps=0)
    with pytest.raises(BadFile, match=r"no such file"):
        client.submit(tmp_path / "missing.csv")
    with pytest.raises(BadFile, match=r"no such file"):
        client.submit(tmp_path)


@pytest.mark.parametrize("key", [None, "", "not-the-key"])
def test_client_without_the_stages_key_is_refused_as_api_gateway_refuses(
    stack: Stack, gateway: InProcessApi, tmp_path: Path, key: str | None
) -> None:
    client = remote(gateway, key=key)
    with pytest.raises(NotAuthorized, match=r"^Forbidden \(HTTP 403\): check the API key") as e:
        client.jobs()
    assert e.value.status == 403
    with pytest.raises(NotAuthorized):
        client.submit(write_csv(tmp_path / "calls.csv", 1))
    # Refused before anything reached the stack.
    assert "Contents" not in stack.s3.list_objects_v2(Bucket=stack.env["SOURCE_BUCKET"])


def test_client_sends_the_key_to_the_api_only_never_to_s3(
    stack: Stack, app_client: ChaliceClient, gateway: InProcessApi, tmp_path: Path
) -> None:
    sent: list[dict[str, Any]] = []
    session = gateway_session(API, gateway)
    session.hooks["response"].append(
        lambda response, *args, **kwargs: sent.append(
            {"url": response.request.url, "headers": dict(response.request.headers)}
        )
    )
    client = Client(api_url=API, api_key=KEY, http=session)
    job = client.submit(write_csv(tmp_path / "calls.csv", 1, invalid=1))
    split(stack, app_client, uploaded_key(stack))
    job.rejects()
    s3 = [r for r in sent if not r["url"].startswith(API)]
    assert len(s3) == 2  # the upload and the rejects.csv download
    assert all("x-api-key" not in {h.lower() for h in r["headers"]} for r in s3)
    assert all(h["x-api-key"] == KEY for h in gateway._check.seen)
    assert KEY not in repr(client.endpoint)


# -- finding a stage's API ----------------------------------------------------------------------


def stage_stack(name: str, outputs: dict[str, str]) -> None:
    """A stack with these outputs, as a deployment that holds the API would have."""
    template = {
        "Resources": {"Handle": {"Type": "AWS::SQS::Queue"}},
        "Outputs": {k: {"Value": v} for k, v in outputs.items()},
    }
    boto3.client("cloudformation").create_stack(StackName=name, TemplateBody=json.dumps(template))


def deployed(project: Path, stage: str, url: str, api_auth: str | None = None) -> Path:
    (project / ".chalice" / "deployed").mkdir(parents=True)
    record = {"resources": [{"name": "rest_api", "resource_type": "rest_api", "rest_api_url": url}]}
    (project / ".chalice" / "deployed" / f"{stage}.json").write_text(json.dumps(record))
    if api_auth:
        config = {"stages": {stage: {"environment_variables": {"API_AUTH": api_auth}}}}
        (project / ".chalice" / "config.json").write_text(json.dumps(config))
    return project


def test_client_finds_the_api_and_its_key_in_the_stage_stacks_outputs(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    gateway = boto3.client("apigateway")
    key = gateway.create_api_key(
        name="callqueue-qa", value="the-qa-key-value-0123456789", enabled=True
    )
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/"
    stage_stack("callqueue-qa", {"EndpointURL": url, "ApiKeyId": key["id"]})
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALLQUEUE_API_KEY", raising=False)

    endpoint = Client(stage="qa").endpoint
    assert (endpoint.api_url, endpoint.auth, endpoint.region) == (url, "api_key", "eu-west-1")
    assert endpoint.api_key == "the-qa-key-value-0123456789"
    # A key given wins over the stack's.
    assert Client(stage="qa", api_key="given").endpoint.api_key == "given"
    monkeypatch.setenv("CALLQUEUE_API_KEY", "from-env")
    assert Client(stage="qa").endpoint.api_key == "from-env"


def test_client_takes_the_url_chalice_deploy_recorded_when_the_stack_has_none(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The real stack of stage dev (tests/stack.py) holds no API: `chalice deploy` made it.
    url = "https://xyz789.execute-api.us-east-1.amazonaws.com/api/"
    monkeypatch.chdir(deployed(tmp_path, "dev", url, api_auth="iam"))
    monkeypatch.delenv("CALLQUEUE_API_KEY", raising=False)

    client = Client(stage="dev")
    assert (client.endpoint.api_url, client.endpoint.auth) == (url, "iam")


def test_client_takes_the_url_callqueue_deploy_keeps_in_ssm_first(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    kept = "https://kept123.execute-api.us-east-1.amazonaws.com/api/"
    boto3.client("ssm").put_parameter(Name="/callqueue/dev/api-url", Value=kept, Type="String")
    monkeypatch.chdir(deployed(tmp_path, "dev", "https://older.example/api/"))

    endpoint = Client(stage="dev", api_key="k").endpoint
    assert (endpoint.api_url, endpoint.region) == (kept, "us-east-1")


def test_client_signs_requests_with_sigv4_for_an_iam_stage(app_client: ChaliceClient) -> None:
    signed: list[dict[str, str]] = []

    class Iam(KeyCheck):
        # IAM, not a key, guards this stage: API Gateway checks the signature.
        def passes(self, request: Any) -> bool:
            signed.append(dict(request.headers))
            return True

    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/api"
    gateway = InProcessApi(app_client.http, Iam(frozenset()), stage_path="/api")
    client = Client(api_url=url, auth="iam", http=gateway_session(url, gateway))
    assert client.jobs() == []
    assert "x-api-key" not in signed[0]
    authorization = signed[0]["Authorization"]
    assert re.fullmatch(
        r"AWS4-HMAC-SHA256 Credential=\w+/\d{8}/eu-west-1/execute-api/aws4_request, "
        r"SignedHeaders=[a-z0-9;-]+, Signature=[0-9a-f]{64}",
        authorization,
    )
    assert {"host", "x-amz-date"} <= set(
        authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    )


def test_client_says_what_is_missing_to_find_a_stage(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALLQUEUE_API_KEY", raising=False)
    monkeypatch.delenv("CALLQUEUE_API_URL", raising=False)
    with pytest.raises(StackNotFound, match=r"^no stack callqueue-nope in us-east-1: deploy"):
        Client(stage="nope")
    with pytest.raises(StackNotFound, match=r"stage 'dev' has no REST API: deploy its functions"):
        Client(stage="dev")
    stage_stack("callqueue-qa", {"EndpointURL": "https://a.execute-api.us-east-1.amazonaws.com/"})
    with pytest.raises(StackNotFound, match=r"needs an API key: give --api-key or set CALLQUEUE"):
        Client(stage="qa")
    with pytest.raises(StackNotFound, match=r"name a stage"):
        Client()
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.delenv("AWS_REGION")
    with pytest.raises(StackNotFound, match=r"no AWS region"):
        Client(stage="qa")


# -- the commands -------------------------------------------------------------------------------


@pytest.fixture
def cli(gateway: InProcessApi, monkeypatch: pytest.MonkeyPatch) -> None:
    """The commands' client talks to the app in this process (through the key check)."""
    from callqueue.cli import remote as remote_commands

    monkeypatch.setattr(remote_commands, "client_of", lambda args: remote(gateway))


def test_cli_status_and_jobs_show_the_job(
    stack: Stack,
    app_client: ChaliceClient,
    gateway: InProcessApi,
    cli: None,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from callqueue.cli import main

    path = write_csv(tmp_path / "calls.csv", 2, invalid=1)
    assert main(["submit", str(path), "--api-url", API, "--detach", "--window", "60"]) == 0
    captured = capsys.readouterr()
    job_id = captured.out.strip()
    assert captured.err == f"{path}: job {job_id}\n"
    split(stack, app_client, uploaded_key(stack))

    assert main(["status", job_id, "--api-url", API]) == 0
    shown = capsys.readouterr().out
    assert f"job       {job_id}\n" in shown
    assert "rows      3, 2 pending\n" in shown
    assert "outcomes  rejected 1, suppressed 0, sent 0," in shown
    assert f"`callqueue rejects {job_id}`" in shown
    assert main(["status", job_id, "--api-url", API, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["job_id"] == job_id
    assert main(["jobs", "--api-url", API]) == 0
    assert re.search(
        rf"^{job_id}\s+(running|released)\s+3\s+1\s+10\s", capsys.readouterr().out, re.M
    )
    assert main(["rejects", job_id, "--api-url", API]) == 0
    assert capsys.readouterr().out.startswith("row,reason\r\n3,")


def test_cli_errors_are_one_line_with_the_apis_message(
    cli: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from callqueue.cli import main

    monkeypatch.delenv("CALLQUEUE_API_URL", raising=False)
    assert main(["status", "nope-1", "--api-url", API]) == 2
    assert capsys.readouterr().err == "callqueue: no job nope-1\n"
    assert main(["submit", "missing.csv", "--api-url", API]) == 2
    assert capsys.readouterr().err == "callqueue: missing.csv: no such file\n"


def test_cli_without_a_stack_named_says_how_to_name_one(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from callqueue.cli import main

    monkeypatch.delenv("CALLQUEUE_API_URL", raising=False)
    monkeypatch.delenv("JOBS_TABLE", raising=False)
    assert main(["cancel", "nope-1"]) == 2
    assert capsys.readouterr().err == "callqueue: name the stack: --stage STAGE, or --api-url URL\n"
    # resume keeps its older way (the environment's stack), and says so when there is none.
    assert main(["resume", "nope-1"]) == 2
    assert capsys.readouterr().err.startswith("callqueue: name the stack: --stage STAGE, --api-url")


class FakeTime:
    """The client's clock and sleep: waiting moves time on, nothing really waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_wait_gives_up_on_a_job_that_never_appears_and_on_its_timeout(
    stack: Stack, app_client: ChaliceClient, gateway: InProcessApi, tmp_path: Path
) -> None:
    fake = FakeTime()
    client = Client(
        api_url=API,
        api_key=KEY,
        http=gateway_session(API, gateway),
        clock=fake.clock,
        sleep=fake.sleep,
    )
    job = client.submit(write_csv(tmp_path / "calls.csv", 2), window=60)
    seen: list[str] = []
    # Uploaded, never split (no S3 event here): the API never learns of the job.
    with pytest.raises(JobNotFound, match=r"not known 120 s after its upload"):
        job.wait(progress=lambda s: seen.append(s.state), poll=5)
    # Past 120 s, not at it: the last poll at 125 s still found nothing.
    assert set(seen) == {"submitted"} and fake.slept == [5] * 25

    split(stack, app_client, uploaded_key(stack))
    fake.slept.clear()
    with pytest.raises(WaitTimeout, match=rf"^job {job.job_id} is still (running|released) after"):
        job.wait(poll=3, timeout=10)
    assert fake.slept == [3, 3, 3, 3]


def test_cli_test_send_to_a_stack_is_a_job_of_its_own_with_only_the_rendered_rows(
    stack: Stack, cli: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A campaign's first rows, rendered and readdressed to the user's number, travel as their
    own `test-` job: the campaign file is not uploaded and can still be sent in full."""
    from callqueue.cli import main

    campaign = tmp_path / "customers.csv"
    campaign.write_text("phone,name\n+14155550101,Ada\n+14155550102,Émile 🚀\n+14155550103,Bo\n")
    argv = ["test-send", str(campaign), "--to", "+1 (415) 555-0199", "--rows", "2"]
    argv += ["--param", f"From={VALID_FROM}", "--param", "To={{phone}}"]
    argv += ["--param", "Body=Hi {{name}}", "--api-url", API]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "test row 1 (messages) to +14155550199: job row 1" in out
    assert "test row 2 (messages) to +14155550199: job row 2" in out
    key = uploaded_key(stack)
    assert key.rsplit("/", 1)[-1].startswith("test-customers")
    body = stack.s3.get_object(Bucket=stack.env["SOURCE_BUCKET"], Key=key)["Body"].read()
    sent = [json.loads(line) for line in body.decode().splitlines()]
    assert sent == [
        {"api": "messages", "From": VALID_FROM, "To": "+14155550199", "Body": "Hi Ada"},
        {"api": "messages", "From": VALID_FROM, "To": "+14155550199", "Body": "Hi Émile 🚀"},
    ]
