"""A stage deployed on moto's server by the command itself: `callqueue deploy --stage dev`, run as
a user runs it (a process of its own, in a copy of the project), and `callqueue destroy` after.

moto gaps, worked around here only:
- CloudFormation: no model for bucket and queue policies, alarms or email subscriptions; they are
  left out of what is deployed (`--moto`: callqueue.deploy.moto_stack.moto_compatible;
  test_infrastructure checks them).
- API Gateway: ImportRestApi takes only OpenAPI 3 and CreateDeployment wants a method with an
  integration; Chalice imports Swagger 2.0. The REST API is created empty with one mock method,
  so its routes are not deployed on moto (tests/handlers/test_api.py drives them in-process).
- Lambda: moto runs no functions here; a test runs a handler in its own process with the
  deployed function's environment.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto.apigateway.models import APIGatewayBackend
from moto.server import ThreadedMotoServer

from callqueue.deploy import StackOutputs, outputs
from tests.deploy.deployment import project_copy


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A moto server on loopback, named by AWS_ENDPOINT_URL for this process and its children."""

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
    # The server keeps moto's in-process backends, which outlive it: start from nothing.
    urllib.request.urlopen(urllib.request.Request(f"{url}/moto-api/reset", method="POST"))  # noqa: S310
    monkeypatch.setenv("AWS_ENDPOINT_URL", url)
    try:
        yield url
    finally:
        server.stop()


def callqueue(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`callqueue ARGS` in the project copy (its own callqueue package, so its own .chalice/)."""
    return subprocess.run(
        [sys.executable, "-m", "callqueue.cli", *args],
        cwd=project,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )


@dataclass(frozen=True)
class DeployedStage:
    """What `callqueue deploy` made, and what it printed."""

    project: Path
    stack: StackOutputs
    config_before: bytes
    deploy_output: str
    secret_arn: str


@pytest.fixture
def deployed_stage(moto_endpoint: str, tmp_path: Path) -> Iterator[DeployedStage]:
    """Stage `dev` deployed on moto by `callqueue deploy --stage dev`; destroyed afterwards by
    `callqueue destroy --stage dev` (which the test of destroy checks). A test that drives a
    job through the deployed stack (`callqueue submit`) starts from this."""
    project = project_copy(tmp_path / "project")
    config = (project / ".chalice" / "config.json").read_bytes()
    secrets = boto3.client("secretsmanager")
    secret = secrets.create_secret(Name="callqueue/twilio", SecretString="{}")["ARN"]
    result = callqueue(project, "deploy", "--stage", "dev", "--moto")
    assert result.returncode == 0, result.stdout + result.stderr
    stage = DeployedStage(project, outputs("dev"), config, result.stdout, secret)
    yield stage
    live = [
        s
        for s in boto3.client("cloudformation").describe_stacks()["Stacks"]
        if s["StackName"] == "callqueue-dev" and s["StackStatus"] != "DELETE_COMPLETE"
    ]
    if live:
        destroyed = callqueue(project, "destroy", "--stage", "dev", "--moto")
        assert destroyed.returncode == 0, destroyed.stdout + destroyed.stderr
