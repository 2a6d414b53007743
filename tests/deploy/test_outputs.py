"""`callqueue.deploy.outputs(stage)`: a deployed stage found by name, as one typed record; a stage
not deployed (or deploying) is one clear error; AWS settings missing are one line from the CLI."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from callqueue.cli import main
from callqueue.deploy import StackOutputs, StageNotDeployed, outputs
from callqueue.deploy.moto_stack import deploy_into_moto
from callqueue.deploy.stack import OUTPUT_ENV


def test_outputs_of_a_deployed_stage_are_its_stack_outputs_and_api_url() -> None:
    with mock_aws():
        cloudformation = boto3.client("cloudformation")
        env = deploy_into_moto(cloudformation, "callqueue-qa", {"Stage": "qa"}, poll=0)
        found = outputs("qa")
        assert found.environment() == env
        assert found.stage == "qa" and found.stack_name == "callqueue-qa"
        assert (found.region, found.account) == ("us-east-1", "123456789012")
        assert found.source_bucket in found.buckets and len(set(found.buckets)) == 5
        assert found.api_url is None  # the functions are not deployed
        boto3.client("ssm").put_parameter(
            Name="/callqueue/qa/api-url", Value="https://x.example/api/", Type="String"
        )
        assert outputs("qa").api_url == "https://x.example/api/"
        with pytest.raises(StageNotDeployed, match=r"stage 'prod' is not deployed in us-east-1"):
            outputs("prod")


def test_every_output_the_functions_need_is_a_field() -> None:
    names = {f.name for f in dataclasses.fields(StackOutputs)}
    assert {env.lower() for env in OUTPUT_ENV.values()} <= names


def test_a_stack_without_the_outputs_is_not_a_deployed_stage() -> None:
    stack = {
        "StackName": "callqueue-qa",
        "StackStatus": "CREATE_IN_PROGRESS",
        "StackId": "arn:aws:cloudformation:us-east-1:123456789012:stack/callqueue-qa/1",
        "Outputs": [{"OutputKey": "SourceBucket", "OutputValue": "b"}],
    }
    with pytest.raises(StageNotDeployed, match=r"CREATE_IN_PROGRESS\) lacks the outputs"):
        StackOutputs.of_stack("qa", stack)


def test_deploy_without_a_region_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("AWS_DEFAULT_REGION", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert main(["deploy", "--stage", "dev"]) == 2
    assert capsys.readouterr().err == (
        "callqueue: no AWS region: set AWS_DEFAULT_REGION (or AWS_PROFILE with a region)\n"
    )
