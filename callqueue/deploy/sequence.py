"""A whole stage deployed, or destroyed, in one call: what `callqueue deploy` and `callqueue
destroy` run. Each step reports one line through `report` as it ends.

Deploy: the Twilio secret is checked, the infrastructure stack created or updated
(callqueue.deploy.infra), the functions deployed by Chalice with the stack's values
(callqueue.deploy.chalice_stage), the SQS triggers given partial batch responses, the stack
given the callback function for its function URL (callqueue.deploy.infra, step 4), and the REST
API's URL recorded for `outputs(stage)`. Destroy, in reverse: Chalice's functions, the URL, the
buckets' objects and the stack, the stage's local files.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3

from callqueue.deploy import chalice_stage, infra
from callqueue.deploy.stack_outputs import (
    StackOutputs,
    api_url_parameter,
    callback_url_parameter,
    outputs,
    stack_name,
)
from callqueue.project import PROJECT_DIR

Report = Callable[[str], None]
# Chalice deploys a dozen functions with their roles; IAM's propagation retries alone take minutes.
CHALICE_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Target:
    """Where a stage goes: AWS in the environment's account and region, or a moto server
    (`moto`: the tests; AWS_ENDPOINT_URL names it)."""

    project_dir: Path = PROJECT_DIR
    moto: bool = False
    poll: float = 5.0

    def client(self, service: str) -> Any:
        return boto3.client(service)  # type: ignore[call-overload]


def deploy(
    stage: str,
    *,
    parameters: Mapping[str, str] | None = None,
    target: Target | None = None,
    report: Report = print,
) -> StackOutputs:
    """Deploy everything of `stage`; returns where it is. InfraError names the failed step."""
    target = target or Target()
    clock = _Clock(report)
    secret = (parameters or {}).get("TwilioSecretName", infra.DEFAULT_SECRET)
    infra.secret_arn(target.client("secretsmanager"), secret)
    clock.done(f"Twilio secret {secret} found")
    # The function URL needs the function: on a stage's first deploy, the stack gets it after
    # Chalice; later, every update keeps it.
    existed = infra.deployed_callback_function(target.client("lambda"), stage)
    parameters = {**(parameters or {}), infra.CALLBACK_PARAMETER: existed}
    env = _stack(target, stage, parameters)
    clock.done(f"stack {stack_name(stage)}: {len(env)} outputs, policies rendered")
    _chalice(target, "deploy", stage)
    clock.done(f"functions deployed by Chalice ({_deployed_count(target, stage)} resources)")
    changed = infra.post_deploy(target.client("lambda"), stage, project_dir=target.project_dir)
    clock.done(f"ReportBatchItemFailures on {len(changed)} SQS triggers")
    callback = infra.function_name(stage, infra.CALLBACK_FUNCTION)
    # moto has no function URLs (its copy of the stack leaves them out), and its updates make
    # some resources anew (new names), which the functions just deployed would not know.
    if target.moto:
        clock.done("callback function URL: none on moto, status callbacks come to the REST route")
    else:
        if not existed:
            _stack(target, stage, {**parameters, infra.CALLBACK_PARAMETER: callback})
        published = callback_url_parameter(stage)
        clock.done(f"callback function URL on {callback}, published in {published}")
    url = rest_api_url(target.project_dir, stage)
    if url is not None:
        target.client("ssm").put_parameter(
            Name=api_url_parameter(stage), Value=url, Type="String", Overwrite=True
        )
        clock.done(f"REST API at {url}")
    return outputs(stage, cloudformation=target.client("cloudformation"), ssm=target.client("ssm"))


def destroy(stage: str, *, target: Target | None = None, report: Report = print) -> None:
    """Remove everything of `stage` that deploy made: functions, API URL, stack, local files."""
    target = target or Target()
    clock = _Clock(report)
    deployed = target.project_dir / ".chalice" / "deployed" / f"{stage}.json"
    if deployed.is_file():
        _chalice(target, "delete", stage)
        clock.done("functions deleted by Chalice")
    else:
        clock.done(f"no functions to delete ({deployed.name} not found in .chalice/deployed)")
    ssm = target.client("ssm")
    # Absent when the stage was deployed without routes, or destroyed halfway before.
    with contextlib.suppress(ssm.exceptions.ParameterNotFound):
        ssm.delete_parameter(Name=api_url_parameter(stage))
    buckets = infra.destroy(
        target.client("cloudformation"), target.client("s3"), stage, poll=target.poll
    )
    clock.done(f"stack {stack_name(stage)} deleted, {len(buckets)} buckets emptied first")
    chalice_stage.stage_file(target.project_dir, stage).unlink(missing_ok=True)
    shutil.rmtree(chalice_stage.policy_dir(target.project_dir, stage), ignore_errors=True)


def _stack(target: Target, stage: str, parameters: Mapping[str, str]) -> dict[str, str]:
    return infra.deploy(
        target.client("cloudformation"),
        target.client("secretsmanager"),
        stage,
        parameters=parameters,
        project_dir=target.project_dir,
        moto=target.moto,
        poll=target.poll,
    )


def rest_api_url(project_dir: Path, stage: str) -> str | None:
    """The REST API's URL from Chalice's record of the stage (None: no routes deployed)."""
    deployed = project_dir / ".chalice" / "deployed" / f"{stage}.json"
    for resource in json.loads(deployed.read_text())["resources"]:
        if resource.get("resource_type") == "rest_api":
            return str(resource["rest_api_url"])
    return None


def _chalice(target: Target, command: str, stage: str) -> None:
    result = chalice_stage.run(
        [command, "--stage", stage], project_dir=target.project_dir, timeout=CHALICE_TIMEOUT
    )
    if result.returncode != 0:
        # Chalice's own message (a traceback only for its own errors), last lines first.
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise infra.InfraError(f"chalice {command} --stage {stage} failed:\n{tail}")


def _deployed_count(target: Target, stage: str) -> int:
    deployed = target.project_dir / ".chalice" / "deployed" / f"{stage}.json"
    return len(json.loads(deployed.read_text())["resources"])


class _Clock:
    """Reports each step with the seconds it took."""

    def __init__(self, report: Report) -> None:
        self._report = report
        self._start = time.monotonic()

    def done(self, what: str) -> None:
        now = time.monotonic()
        self._report(f"{what} ({now - self._start:.1f} s)")
        self._start = now
