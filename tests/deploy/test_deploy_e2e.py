"""The deployment sequence against moto in server mode: `callqueue infra deploy` (its code path),
`chalice deploy --stage dev` (a subprocess, reaching moto through AWS_ENDPOINT_URL), `callqueue
infra post-deploy`, then a file dropped into the deployed SOURCE bucket and split by the handler
with the configuration Lambda holds.

moto gaps, worked around here only:
- CloudFormation: no model for bucket and queue policies, alarms or email subscriptions; they are
  left out of what is deployed (callqueue.deploy.moto_stack.moto_compatible; test_infrastructure
  checks them).
- API Gateway: ImportRestApi takes only OpenAPI 3 and CreateDeployment wants a method with an
  integration; Chalice imports Swagger 2.0. The REST API is created empty with one mock method,
  so its routes are not deployed on moto (tests/handlers/test_api.py drives them in-process).
- Lambda: moto runs no functions here, so the handler runs in this process with the deployed
  function's environment; the rest of the pipeline on the deployed stack is not driven here
  (the local runtime runs it on a stack of its own: tests/local/test_runtime.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.apigateway.models import APIGatewayBackend
from moto.server import ThreadedMotoServer

from callqueue.deploy import infra
from chalicelib import wiring
from tests.deploy.deployment import project_copy

pytestmark = pytest.mark.e2e

ACCOUNT = "123456789012"


@pytest.fixture
def endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    def import_swagger(self: APIGatewayBackend, api_doc: dict[str, Any], *_: Any) -> Any:
        api = self.create_rest_api(name=api_doc["info"]["title"], description="")
        root = next(iter(api.resources.values()))
        self.put_method(api.id, root.id, "ANY", "NONE")
        self.put_integration(api.id, root.id, "ANY", "MOCK", "", "ANY")
        return api

    monkeypatch.setattr(APIGatewayBackend, "import_rest_api", import_swagger)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    url = f"http://127.0.0.1:{port}"
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    try:
        yield url
    finally:
        server.stop()


def test_infra_deploy_then_chalice_deploy_then_post_deploy(
    endpoint: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = project_copy(tmp_path / "project")
    secrets = boto3.client("secretsmanager")
    secret_arn = secrets.create_secret(Name="callqueue/twilio", SecretString="{}")["ARN"]

    # 1. The stack, config.json and the policies (moto: without what it cannot create).
    env = infra.deploy(
        boto3.client("cloudformation"), secrets, "dev", project_dir=project, moto=True, poll=0.1
    )
    config = json.loads((project / ".chalice" / "config.json").read_text())
    assert config["stages"]["dev"]["environment_variables"]["SOURCE_BUCKET"] == env["SOURCE_BUCKET"]

    # 2. chalice deploy, against the same moto server.
    chalice = Path(sys.executable).parent / "chalice"
    result = subprocess.run(
        [str(chalice), "deploy", "--stage", "dev"],
        cwd=project,
        env={**os.environ, "AWS_ENDPOINT_URL": endpoint},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr

    # Every function has the stack's environment and a role of its own with its own policy.
    lam, iam = boto3.client("lambda"), boto3.client("iam")
    for function in infra.policy_sources(project):
        name = "callqueue-dev" if function == "api_handler" else f"callqueue-dev-{function}"
        configuration = lam.get_function_configuration(FunctionName=name)
        variables = configuration["Environment"]["Variables"]
        assert variables["SEND_QUEUE"] == env["SEND_QUEUE"]
        assert variables["TWILIO_SECRET_ID"] == "callqueue/twilio"
        role = configuration["Role"].rsplit("/", 1)[-1]
        assert role == f"callqueue-dev-{function}"
        documents = [
            iam.get_role_policy(RoleName=role, PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=role)["PolicyNames"]
        ]
        rendered = json.loads(
            (project / ".chalice" / "policies" / "dev" / f"{function}.json").read_text()
        )
        assert rendered in documents
    sender_policy = json.loads(
        (project / ".chalice" / "policies" / "dev" / "handle_send_batch.json").read_text()
    )
    assert any(s["Resource"] == secret_arn for s in sender_policy["Statement"])

    # The triggers are on the stack's resources.
    notification = boto3.client("s3").get_bucket_notification_configuration(
        Bucket=env["SOURCE_BUCKET"]
    )["LambdaFunctionConfigurations"]
    assert notification[0]["LambdaFunctionArn"].endswith(":callqueue-dev-handle_source_file")
    mappings = lam.list_event_source_mappings()["EventSourceMappings"]
    queues = {m["EventSourceArn"].rsplit(":", 1)[-1] for m in mappings}
    assert env["SEND_QUEUE"] in queues
    assert env["RESULTS_QUEUE"] in queues

    # 3. Post-deploy: partial batch responses on every SQS trigger.
    changed = infra.post_deploy(lam, "dev", project_dir=project)
    assert len(changed) == len(mappings) == 6
    for mapping in lam.list_event_source_mappings()["EventSourceMappings"]:
        assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]

    # A file dropped into the deployed SOURCE bucket, split by the handler with the deployed
    # function's configuration: the job is recorded in the deployed table, its chunk in HOLDING.
    deployed = lam.get_function_configuration(FunctionName="callqueue-dev-handle_source_file")
    for name, value in deployed["Environment"]["Variables"].items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3")
    body = b"To,From,Body\n+15005550006,+15005550006,hello\n+15005550006,+15005550006,again\n"
    s3.put_object(Bucket=env["SOURCE_BUCKET"], Key="e2e.csv", Body=body)
    wiring.reset()
    try:
        job = wiring.splitter().split(env["SOURCE_BUCKET"], "e2e.csv")
    finally:
        wiring.reset()
    assert (job.rows, job.valid, job.chunks) == (2, 2, 1)
    held = s3.list_objects_v2(Bucket=env["HOLDING_BUCKET"]).get("Contents", [])
    assert len(held) == 1
    executions = boto3.client("stepfunctions").list_executions(
        stateMachineArn=env["STATE_MACHINE_ARN"]
    )["executions"]
    assert [e["name"] for e in executions] == [job.job_id]

    # Tear down: buckets emptied, stack gone.
    emptied = infra.destroy(boto3.client("cloudformation"), s3, "dev", poll=0.1)
    assert env["SOURCE_BUCKET"] in emptied
