"""The deployment on moto in server mode, through the command: `callqueue deploy --stage dev`
(secret check, stack, `chalice deploy` with the stack's values, post-deploy, the API's URL) leaves
the tracked config.json as it was; the deployed functions have the stack's environment and their
own exact policies; a file dropped into the deployed SOURCE bucket is split by the handler with
the configuration Lambda holds; `callqueue destroy --stage dev` removes it all.

The moto server, its gaps and the `deployed_stage` fixture: tests/deploy/moto.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import boto3
import pytest

from callqueue.deploy import StageNotDeployed, chalice_stage, infra, outputs
from chalicelib import wiring
from tests.deploy.deployment import project_copy
from tests.deploy.moto import DeployedStage, callqueue

pytestmark = pytest.mark.e2e


def test_deploy_command_deploys_everything_and_leaves_config_json_alone(
    deployed_stage: DeployedStage, monkeypatch: pytest.MonkeyPatch
) -> None:
    project, stack = deployed_stage.project, deployed_stage.stack
    # The tracked config is byte for byte what it was; the stack's values are in .chalice/stacks.
    assert (project / ".chalice" / "config.json").read_bytes() == deployed_stage.config_before
    overlay = json.loads(chalice_stage.stage_file(project, "dev").read_text())
    # ... with where the functions find the API's URL, to ask for and check status callbacks,
    # and the callback function's (moto has no function URLs: the stack's is left out there).
    parameter = "/callqueue/dev/api-url"
    assert overlay["environment_variables"] == {
        **stack.environment(),
        "API_URL_PARAMETER": parameter,
        "CALLBACK_URL_PARAMETER": "/callqueue/dev/status-callback-url",
    }
    # One line per step, in order.
    lines = deployed_stage.deploy_output.splitlines()
    assert [line.split()[0] for line in lines] == [
        "Twilio",
        "stack",
        "functions",
        "ReportBatchItemFailures",
        "callback",
        "REST",
        "stage",
    ]
    assert stack.api_url is not None and stack.api_url.startswith("https://")

    # Every function has the stack's environment and a role of its own with its exact policy.
    lam, iam = boto3.client("lambda"), boto3.client("iam")
    for function in infra.policy_sources(project):
        name = "callqueue-dev" if function == "api_handler" else f"callqueue-dev-{function}"
        configuration = lam.get_function_configuration(FunctionName=name)
        variables = configuration["Environment"]["Variables"]
        assert variables["SEND_QUEUE"] == stack.send_queue
        assert variables["TWILIO_CREDENTIALS"] == "test"
        assert variables["API_URL_PARAMETER"] == parameter
        role = configuration["Role"].rsplit("/", 1)[-1]
        assert role == f"callqueue-dev-{function}"
        documents = [
            iam.get_role_policy(RoleName=role, PolicyName=p)["PolicyDocument"]
            for p in iam.list_role_policies(RoleName=role)["PolicyNames"]
        ]
        rendered = chalice_stage.policy_dir(project, "dev") / f"{function}.json"
        assert json.loads(rendered.read_text()) in documents
    sender = json.loads(
        (chalice_stage.policy_dir(project, "dev") / "handle_send_batch.json").read_text()
    )
    assert any(s["Resource"] == deployed_stage.secret_arn for s in sender["Statement"])
    ssm = boto3.client("ssm")
    assert ssm.get_parameter(Name=parameter)["Parameter"]["Value"] == stack.api_url

    # The triggers are on the stack's resources, with partial batch responses.
    notification = boto3.client("s3").get_bucket_notification_configuration(
        Bucket=stack.source_bucket
    )["LambdaFunctionConfigurations"]
    assert notification[0]["LambdaFunctionArn"].endswith(":callqueue-dev-handle_source_file")
    mappings = lam.list_event_source_mappings()["EventSourceMappings"]
    assert {m["EventSourceArn"].rsplit(":", 1)[-1] for m in mappings} >= {
        stack.send_queue,
        stack.results_queue,
    }
    assert len(mappings) == 6
    assert all(m["FunctionResponseTypes"] == ["ReportBatchItemFailures"] for m in mappings)

    # A file dropped into the deployed SOURCE bucket, split by the handler with the deployed
    # function's configuration: the job is recorded, its chunk in HOLDING, its loop started.
    deployed = lam.get_function_configuration(FunctionName="callqueue-dev-handle_source_file")
    for name, value in deployed["Environment"]["Variables"].items():
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3")
    body = b"To,From,Body\n+15005550006,+15005550006,hello\n+15005550006,+15005550006,again\n"
    s3.put_object(Bucket=stack.source_bucket, Key="e2e.csv", Body=body)
    wiring.reset()
    try:
        job = wiring.splitter().split(stack.source_bucket, "e2e.csv")
    finally:
        wiring.reset()
    assert (job.rows, job.valid, job.chunks) == (2, 2, 1)
    assert len(s3.list_objects_v2(Bucket=stack.holding_bucket).get("Contents", [])) == 1
    executions = boto3.client("stepfunctions").list_executions(
        stateMachineArn=stack.state_machine_arn
    )["executions"]
    assert [e["name"] for e in executions] == [job.job_id]

    # Destroy: functions, API URL, buckets (one holds the file) and stack, the local values.
    result = callqueue(project, "destroy", "--stage", "dev", "--moto")
    assert result.returncode == 0, result.stdout + result.stderr
    assert lam.list_functions()["Functions"] == []
    with pytest.raises(StageNotDeployed, match="callqueue deploy --stage dev"):
        outputs("dev")
    assert not chalice_stage.stage_file(project, "dev").exists()
    assert (project / ".chalice" / "config.json").read_bytes() == deployed_stage.config_before


def test_deploy_without_the_secret_says_how_to_create_it_and_deploys_nothing(
    moto_endpoint: str, tmp_path: Path
) -> None:
    project = project_copy(tmp_path / "project")
    result = callqueue(project, "deploy", "--stage", "dev", "--moto")
    assert result.returncode == 2
    [message] = result.stderr.splitlines()
    assert "aws secretsmanager create-secret --name callqueue/twilio" in message
    assert boto3.client("cloudformation").describe_stacks()["Stacks"] == []
