"""The infrastructure template: cfn-lint clean, and hardened (private encrypted buckets, TLS only,
expiring data, encrypted queues, recoverable tables, alarms), whatever moto makes of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from callqueue.deploy.moto_stack import moto_compatible
from callqueue.deploy.stack import render_template

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return render_template()


def of_type(template: dict[str, Any], kind: str) -> dict[str, dict[str, Any]]:
    return {n: r for n, r in template["Resources"].items() if r["Type"] == kind}


def test_template_passes_cfn_lint(template: dict[str, Any], tmp_path: Path) -> None:
    rendered = tmp_path / "callqueue.json"
    rendered.write_text(json.dumps(template))
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run(
        [str(cfn_lint), str(rendered)], capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_buckets_are_private_encrypted_tls_only_and_expiring(template: dict[str, Any]) -> None:
    buckets = of_type(template, "AWS::S3::Bucket")
    policies = {
        p["Properties"]["Bucket"]["Ref"]: p["Properties"]["PolicyDocument"]
        for p in of_type(template, "AWS::S3::BucketPolicy").values()
    }
    assert len(buckets) == 5
    for name, bucket in buckets.items():
        props = bucket["Properties"]
        assert all(props["PublicAccessBlockConfiguration"].values()), name
        encryption = props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]
        assert encryption["ServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
        rules = props["LifecycleConfiguration"]["Rules"]
        assert any("ExpirationInDays" in r and r["Status"] == "Enabled" for r in rules), name
        deny = policies[name]["Statement"][0]
        assert deny["Effect"] == "Deny"
        assert deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_queues_encrypted_and_send_visibility_covers_six_sender_timeouts(
    template: dict[str, Any],
) -> None:
    for name, queue in of_type(template, "AWS::SQS::Queue").items():
        assert queue["Properties"]["SqsManagedSseEnabled"] is True, name
    config = json.loads((REPO / ".chalice" / "config.json").read_text())
    visibility = template["Parameters"]["SendVisibilityTimeout"]["Default"]
    for stage in config["stages"].values():
        own = stage.get("lambda_functions", {}).get("handle_send_batch", {})
        timeout = own.get("lambda_timeout", stage.get("lambda_timeout", config["lambda_timeout"]))
        assert visibility >= 6 * timeout


def test_tables_on_demand_with_point_in_time_recovery(template: dict[str, Any]) -> None:
    tables = of_type(template, "AWS::DynamoDB::Table")
    assert "RateLimitTable" in tables
    for name, table in tables.items():
        props = table["Properties"]
        assert props["BillingMode"] == "PAY_PER_REQUEST", name
        assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    # Rows of personal data or short-lived state expire (in the jobs table, the content claims:
    # the jobs themselves have no expires_at); suppressions are kept.
    for name in ("ResultsTable", "IdempotencyTable", "RateLimitTable", "JobsTable"):
        ttl = tables[name]["Properties"]["TimeToLiveSpecification"]
        assert ttl == {"AttributeName": "expires_at", "Enabled": True}, name
    assert "TimeToLiveSpecification" not in tables["SuppressionTable"]["Properties"]


def test_alarms_dashboard_logging_and_secret_reference(template: dict[str, Any]) -> None:
    alarms = of_type(template, "AWS::CloudWatch::Alarm")
    assert {"SendDeadLetterAlarm", "ErrorRateAlarm", "ThrottleRateAlarm", "JobStalledAlarm"} <= set(
        alarms
    )
    for alarm in alarms.values():
        assert alarm["Properties"]["AlarmActions"] == [{"Ref": "AlertTopic"}]
    body = of_type(template, "AWS::CloudWatch::Dashboard")["Dashboard"]["Properties"]
    text = body["DashboardBody"]["Fn::Sub"][0]
    for metric in ("Calls", "Outcomes", "TwilioRequestDuration", "TwilioConcurrentRequests"):
        assert f'"{metric}"' in text
    machine = template["Resources"]["ReleaseStateMachine"]["Properties"]
    assert machine["LoggingConfiguration"]["Level"] == "ERROR"
    # The secret is referred to by name; no value of it is in the template.
    assert template["Parameters"]["TwilioSecretName"]["Default"] == "callqueue/twilio"
    assert not of_type(template, "AWS::SecretsManager::Secret")
    assert set(template["Parameters"]["Stage"]) >= {"Default", "AllowedPattern"}


def test_moto_copy_leaves_out_only_what_moto_cannot_create(template: dict[str, Any]) -> None:
    document, dropped = moto_compatible(template)
    kinds = {template["Resources"][n]["Type"] for n in dropped}
    # The Dashboard refers to the alarms; a moto upgrade that adds a model shows up here.
    assert kinds == {
        "AWS::S3::BucketPolicy",
        "AWS::SQS::QueuePolicy",
        "AWS::CloudWatch::Alarm",
        "AWS::SNS::Subscription",
        "AWS::CloudWatch::Dashboard",
    }
    assert "Dashboard" in dropped
    assert "DashboardName" not in document["Outputs"]
    assert "SourceBucket" in document["Resources"]


def test_reconciler_stalls_and_failures_each_raise_an_alarm(template: dict[str, Any]) -> None:
    alarms = of_type(template, "AWS::CloudWatch::Alarm")
    by_metric = {
        a["Properties"].get("MetricName"): a["Properties"]
        for a in alarms.values()
        if a["Properties"].get("Namespace") == "callqueue"
    }

    for metric in ("JobsStalled", "ReconcileFailures"):
        assert by_metric[metric]["Threshold"] == 1
        assert by_metric[metric]["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
