"""Least privilege: one IAM policy per function (`.chalice/policies/FUNCTION.json`), naming only the
stack's own resources; "*" only where AWS requires it, each such statement declared (Sid
`AwsRequiresStar...`) and explained (`Comment`, dropped when the policy is rendered)."""

from __future__ import annotations

import fnmatch
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from callqueue.deploy import chalice_stage, infra, stage_policies
from callqueue.deploy.stack import OUTPUT_ENV

REPO = Path(__file__).resolve().parents[2]
CHALICE = REPO / ".chalice"
STAGES = ("dev", "prod")
DECLARED_STAR = re.compile(r"^AwsRequiresStar[A-Za-z0-9]+$")
PLACEHOLDER = re.compile(r"^\$\{(?P<name>[A-Za-z]+)\}(?P<rest>.*)$")
# What may follow a resource's own ARN: its objects (S3), or those under one prefix, its log
# streams (Logs), a named index of the table (DynamoDB).
WITHIN = re.compile(r"^(/\*|/[a-z]+/\*|:\*|/index/[A-Za-z0-9_.-]+)?$")


def app_functions() -> set[str]:
    import app as app_module

    app = app_module.app
    names = {f.name for f in app.pure_lambda_functions} | {s.name for s in app.event_sources}
    if app.routes:
        names.add("api_handler")
    return names


def statements(policy: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield from policy["Statement"]


def as_list(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def check_statement(statement: dict[str, Any], own_resource: Any) -> list[str]:
    """What is wrong with a statement: wildcard actions, foreign or undeclared "*" resources."""
    problems = []
    sid = statement.get("Sid", "")
    if statement["Effect"] != "Allow" or "NotAction" in statement or "NotResource" in statement:
        problems.append(f"{sid}: only Allow with Action and Resource")
    problems += [f"{sid}: wildcard action {a}" for a in as_list(statement["Action"]) if "*" in a]
    for resource in as_list(statement["Resource"]):
        if resource == "*":
            if not DECLARED_STAR.match(sid) or not statement.get("Comment", "").strip():
                problems.append(f"{sid}: '*' resource without AwsRequiresStar Sid and Comment")
        elif not own_resource(resource):
            problems.append(f"{sid}: {resource} is not one of the stack's resources")
    return problems


def test_every_function_has_its_own_policy_in_every_stage() -> None:
    config = json.loads((CHALICE / "config.json").read_text())
    functions = app_functions()
    assert set(infra.policy_sources()) == functions
    for stage in STAGES:
        stage_config = config["stages"][stage]
        assert stage_config["autogen_policy"] is False
        assert isinstance(stage_config["xray"], bool)
        for function in functions:
            assert stage_config["lambda_functions"][function]["iam_policy_file"] == (
                f"policies/{stage}/{function}.json"
            )


def test_policy_sources_name_only_stack_resources_and_declared_stars() -> None:
    # Placeholders are the stack's resources: exactly what policy_values can fill in.
    location = infra.Location("aws", "us-east-1", "123456789012")
    env = {name: name.lower() for name in OUTPUT_ENV.values()}
    known = set(infra.policy_values(env, location, "dev", "arn:secret"))

    def own(resource: str) -> bool:
        match = PLACEHOLDER.match(resource)
        return bool(match and match["name"] in known and WITHIN.match(match["rest"]))

    problems = []
    for function, path in infra.policy_sources().items():
        policy = json.loads(path.read_text())
        assert policy["Version"] == "2012-10-17"
        for statement in statements(policy):
            problems += [f"{function}: {p}" for p in check_statement(statement, own)]
    assert problems == []


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A copy of the project's .chalice files, so a deploy writes config.json there."""
    (tmp_path / ".chalice").mkdir()
    shutil.copy(CHALICE / "config.json", tmp_path / ".chalice" / "config.json")
    shutil.copytree(CHALICE / "policies", tmp_path / ".chalice" / "policies")
    return tmp_path


def test_rendered_policies_name_the_deployed_stack_and_nothing_else(project: Path) -> None:
    with mock_aws():
        secrets = boto3.client("secretsmanager")
        secret_arn = secrets.create_secret(Name="callqueue/twilio", SecretString="{}")["ARN"]
        env = infra.deploy(
            boto3.client("cloudformation"), secrets, "dev", project_dir=project, moto=True, poll=0
        )
    # config.json is left as it was; the stage's values are in the git-ignored .chalice/stacks.
    assert (project / ".chalice" / "config.json").read_bytes() == (
        CHALICE / "config.json"
    ).read_bytes()
    overlay = json.loads(chalice_stage.stage_file(project, "dev").read_text())
    assert overlay["environment_variables"]["SEND_QUEUE"] == env["SEND_QUEUE"]
    rendered = sorted(chalice_stage.policy_dir(project, "dev").glob("*.json"))
    assert {p.stem for p in rendered} == set(infra.policy_sources())
    # Chalice, given the overlay, reads each function's rendered policy and keeps its settings.
    merged = chalice_stage.overlaid(json.loads((CHALICE / "config.json").read_text()), project)
    functions = merged["stages"]["dev"]["lambda_functions"]
    assert functions["handle_source_file"] == {
        "iam_policy_file": "stacks/dev/handle_source_file.json",
        "lambda_timeout": 900,
        "lambda_memory_size": 1024,
    }
    assert merged["stages"]["dev"]["environment_variables"]["TWILIO_CREDENTIALS"] == "test"
    # ... as Chalice's own config object sees it.
    chalice_config = chalice_stage.StageConfigFactory(str(project)).create_config_obj("dev")
    assert chalice_config.environment_variables["SEND_QUEUE"] == env["SEND_QUEUE"]
    sender_config = chalice_config.scope("dev", "handle_send_batch")
    assert sender_config.iam_policy_file == "stacks/dev/handle_send_batch.json"
    assert (
        merged["stages"]["prod"]
        == json.loads((CHALICE / "config.json").read_text())["stages"]["prod"]
    )

    location = infra.Location("aws", "us-east-1", "123456789012")
    stack_arns = set(infra.policy_values(env, location, "dev", secret_arn).values())
    for path in rendered:
        function = infra.function_name("dev", path.stem)  # callqueue-dev for api_handler
        log_group = f"arn:aws:logs:us-east-1:123456789012:log-group:/aws/lambda/{function}"
        itself = f"arn:aws:lambda:us-east-1:123456789012:function:{function}"
        templates = infra.policy_values(env, location, "dev", "")
        arns = (stack_arns - {templates["LogGroupArn"], templates["FunctionArn"]}) | {
            log_group,
            itself,
        }

        def own(resource: str, arns: set[str] = arns) -> bool:
            return any(resource.startswith(a) and WITHIN.match(resource[len(a) :]) for a in arns)

        policy = json.loads(path.read_text())
        assert "${" not in path.read_text()
        problems = []
        for statement in statements(policy):
            assert "Comment" not in statement  # IAM accepts no such element
            problems += check_statement({**statement, "Comment": "declared"}, own)
        assert problems == [], path.name
    sender = json.loads(
        (chalice_stage.policy_dir(project, "dev") / "handle_send_batch.json").read_text()
    )
    assert any(s["Resource"] == secret_arn for s in sender["Statement"])
    # The functions are told where the REST API's URL is, and the two that read it may read it.
    assert chalice_config.environment_variables["API_URL_PARAMETER"] == "/callqueue/dev/api-url"
    url_arn = "arn:aws:ssm:us-east-1:123456789012:parameter/callqueue/dev/api-url"
    for function in ("handle_send_batch", "api_handler"):
        policy = json.loads(
            (chalice_stage.policy_dir(project, "dev") / f"{function}.json").read_text()
        )
        assert {"ssm:GetParameter": url_arn} in [
            {a: s["Resource"] for a in as_list(s["Action"]) if a.startswith("ssm:")}
            for s in policy["Statement"]
        ]


def test_the_api_writes_and_deletes_in_holding_only_under_staged() -> None:
    policy = json.loads((CHALICE / "policies" / "api_handler.json").read_text())
    holding = [
        s
        for s in statements(policy)
        if any(r.startswith("${HoldingBucketArn}") for r in as_list(s["Resource"]))
    ]
    writes = [s for s in holding if {"s3:PutObject", "s3:DeleteObject"} & set(as_list(s["Action"]))]
    assert [as_list(s["Resource"]) for s in writes] == [["${HoldingBucketArn}/staged/*"]]
    assert set(as_list(writes[0]["Action"])) == {"s3:DeleteObject", "s3:GetObject", "s3:PutObject"}


def test_check_statement_rejects_wildcards_and_foreign_resources() -> None:
    def own(resource: str) -> bool:
        return resource.startswith("arn:aws:sqs:us-east-1:1:mine")

    wildcard = {
        "Sid": "A",
        "Effect": "Allow",
        "Action": "sqs:*",
        "Resource": "arn:aws:sqs:us-east-1:1:mine",
    }
    foreign = {
        "Sid": "B",
        "Effect": "Allow",
        "Action": "sqs:SendMessage",
        "Resource": "arn:aws:sqs:us-east-1:1:theirs",
    }
    undeclared = {"Sid": "C", "Effect": "Allow", "Action": "xray:PutTraceSegments", "Resource": "*"}
    declared = {**undeclared, "Sid": "AwsRequiresStarXRay", "Comment": "X-Ray has no resources"}
    assert check_statement(wildcard, own) == ["A: wildcard action sqs:*"]
    assert len(check_statement(foreign, own)) == 1
    assert len(check_statement(undeclared, own)) == 1
    assert check_statement(declared, own) == []


def grants(function: str) -> dict[str, set[str]]:
    """The actions a function's policy source allows, by resource placeholder."""
    policy = json.loads(infra.policy_sources()[function].read_text())
    allowed: dict[str, set[str]] = {}
    for statement in statements(policy):
        for resource in as_list(statement["Resource"]):
            allowed.setdefault(resource, set()).update(as_list(statement["Action"]))
    return allowed


def test_status_callbacks_may_read_and_bind_the_call_ledger_and_nothing_more() -> None:
    # The callback route runs in api_handler: CallLedger.bind_callback reads the row's item
    # and binds the first SID to a row still calling, and the delivery status is recorded on
    # the same item; it never puts a row of its own. (Query: a job's progress.)
    assert grants("api_handler")["${ResultsTableArn}"] == {
        "dynamodb:GetItem",
        "dynamodb:UpdateItem",
        "dynamodb:Query",
    }


def test_only_the_sender_and_the_api_read_the_webhook_urls_and_nothing_else_of_ssm() -> None:
    # The sender asks for status callbacks at the callback function's URL, else the API's; the
    # API checks Twilio's signatures of its own. No other function reads either (the callback
    # function checks the URL it was called at), and none reads any other parameter.
    readers: dict[str, set[tuple[str, frozenset[str]]]] = {}
    for function in infra.policy_sources():
        for resource, actions in grants(function).items():
            ssm = frozenset(a for a in actions if a.startswith("ssm:"))
            if ssm:
                readers.setdefault(function, set()).add((resource, ssm))
    get = frozenset({"ssm:GetParameter"})
    assert readers == {
        "handle_send_batch": {("${ApiUrlParameterArn}", get), ("${CallbackUrlParameterArn}", get)},
        "api_handler": {("${ApiUrlParameterArn}", get)},
    }


def test_the_callback_function_binds_records_and_reports_deliveries_and_nothing_more() -> None:
    # What POST /twilio/status does, and only that: its URL is public, so its role is narrow.
    assert grants("status_callback_url") == {
        "${ResultsTableArn}": {"dynamodb:GetItem", "dynamodb:UpdateItem"},
        "${ErrorBusArn}": {"events:PutEvents"},
        "${TwilioSecretArn}": {"secretsmanager:GetSecretValue"},
        "${LogGroupArn}": {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"},
        "${LogGroupArn}:*": {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"},
        "*": {"xray:PutTraceSegments", "xray:PutTelemetryRecords"},
    }


def test_the_api_url_parameter_arn_is_the_stage_s_parameter_only() -> None:
    location = infra.Location("aws", "eu-west-1", "123456789012")
    env = {name: name.lower() for name in OUTPUT_ENV.values()}
    arns = {
        stage: infra.policy_values(env, location, stage, "arn:secret")["ApiUrlParameterArn"]
        for stage in ("dev", "prod")
    }
    assert arns == {
        "dev": "arn:aws:ssm:eu-west-1:123456789012:parameter/callqueue/dev/api-url",
        "prod": "arn:aws:ssm:eu-west-1:123456789012:parameter/callqueue/prod/api-url",
    }
    committed = json.loads((CHALICE / "policies" / "prod" / "api_handler.json").read_text())
    (pattern,) = [s["Resource"] for s in committed["Statement"] if s["Sid"] == "ApiUrl"]
    assert not fnmatch.fnmatchcase(arns["dev"], pattern)
    assert fnmatch.fnmatchcase(arns["prod"], pattern)


def test_release_loop_may_continue_as_new_and_be_restarted() -> None:
    assert grants("release_chunk")["${StateMachineArn}"] == {"states:StartExecution"}
    assert grants("api_handler")["${StateMachineArn}"] == {
        "states:ListExecutions",
        "states:StartExecution",
    }
    # A rate change stops the job's waiting execution; nothing else stops one.
    assert grants("api_handler")["${ReleaseExecutionsArn}:*"] == {"states:StopExecution"}
    assert all(
        "states:StopExecution" not in actions
        for function in infra.policy_sources()
        if function != "api_handler"
        for actions in grants(function).values()
    )


def test_committed_stage_policies_are_rendered_from_the_sources() -> None:
    # After a source changes: `python -c "from callqueue.deploy.stage_policies import
    # write_stage_policies as w; w('dev'); w('prod')"`.
    config = json.loads((CHALICE / "config.json").read_text())
    for stage, stage_config in config["stages"].items():
        for function, own in stage_config["lambda_functions"].items():
            committed = json.loads((CHALICE / own["iam_policy_file"]).read_text())
            source = json.loads(infra.policy_sources()[function].read_text())
            patterns = stage_policies.pattern_values(stage)
            name = infra.function_name(stage, function)
            values = {
                **patterns,
                "LogGroupArn": patterns["LogGroupArn"].replace("$function", name),
                "FunctionArn": patterns["FunctionArn"].replace("$function", name),
            }
            assert committed == infra.render_policy(source, values), (stage, function)


def test_stage_policy_patterns_match_every_resource_of_a_deployed_stack(project: Path) -> None:
    with mock_aws():
        secrets = boto3.client("secretsmanager")
        secrets.create_secret(Name="callqueue/twilio", SecretString="{}")
        infra.deploy(
            boto3.client("cloudformation"), secrets, "dev", project_dir=project, moto=True, poll=0
        )
    for exact_path in sorted(chalice_stage.policy_dir(project, "dev").glob("*.json")):
        exact = json.loads(exact_path.read_text())["Statement"]
        committed = json.loads((CHALICE / "policies" / "dev" / exact_path.name).read_text())
        assert len(exact) == len(committed["Statement"])
        for mine, pattern in zip(exact, committed["Statement"], strict=True):
            for arn, glob in zip(
                as_list(mine["Resource"]), as_list(pattern["Resource"]), strict=True
            ):
                assert fnmatch.fnmatchcase(arn, glob), (exact_path.name, arn, glob)
    # ... and no other stage's.
    prod = json.loads((CHALICE / "policies" / "prod" / "handle_send_batch.json").read_text())
    dev_queue = json.loads(chalice_stage.stage_file(project, "dev").read_text())[
        "environment_variables"
    ]["SEND_QUEUE"]
    assert not fnmatch.fnmatchcase(
        f"arn:aws:sqs:us-east-1:123456789012:{dev_queue}", prod["Statement"][0]["Resource"]
    )
