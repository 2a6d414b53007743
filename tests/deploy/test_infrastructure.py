"""The infrastructure template: cfn-lint clean, and hardened (private encrypted buckets, TLS only,
expiring data, encrypted queues, recoverable tables, alarms), whatever moto makes of it."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from callqueue.deploy import infra
from callqueue.deploy.moto_stack import moto_compatible
from callqueue.deploy.stack import render_template
from callqueue.deploy.stack_outputs import callback_url_parameter
from chalicelib.api.delivery_metrics import DELIVERY_METRICS
from chalicelib.observability import HIGH_RESOLUTION, NAMESPACE

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


def test_staged_files_expire_after_a_day_and_the_browser_may_put_them(
    template: dict[str, Any],
) -> None:
    holding = template["Resources"]["HoldingBucket"]["Properties"]
    staged = [r for r in holding["LifecycleConfiguration"]["Rules"] if r.get("Prefix") == "staged/"]
    assert staged == [
        {"Id": "expire-staged", "Status": "Enabled", "Prefix": "staged/", "ExpirationInDays": 1}
    ]
    assert [r["AllowedMethods"] for r in holding["CorsConfiguration"]["CorsRules"]] == [["PUT"]]
    # The chunks' own rule has no prefix: it keeps applying to the whole bucket.
    assert any("Prefix" not in r for r in holding["LifecycleConfiguration"]["Rules"])


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
    # The call ledger is kept on the results table's items (one item a row).
    assert set(tables) == {"JobsTable", "ResultsTable", "SuppressionTable", "RateLimitTable"}
    for name in ("ResultsTable", "RateLimitTable", "JobsTable"):
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
        # The callback function's URL, and the parameter publishing it: the local runtime serves
        # its own (callqueue.local.function_url).
        "AWS::Lambda::Url",
        "AWS::SSM::Parameter",
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


def share_of(template: dict[str, Any], **counts: float | None) -> float:
    """The undelivered-share alarm's value for one period's sums (None: no data point), its
    expressions evaluated as CloudWatch's metric math does for these functions."""
    alarm = template["Resources"]["UndeliveredRateAlarm"]["Properties"]
    minimum = template["Parameters"]["UndeliveredAlarmMinimumMessages"]["Default"]
    names: dict[str, Any] = {
        "FILL": lambda value, fill: fill if value is None else value,
        "IF": lambda condition, then, otherwise: then if condition else otherwise,
        **counts,
    }
    for query in alarm["Metrics"]:
        if "Expression" in query:
            expression = query["Expression"]
            if isinstance(expression, dict):
                expression = expression["Fn::Sub"].replace(
                    "${UndeliveredAlarmMinimumMessages}", str(minimum)
                )
            # The template's own expressions, over numbers and the two functions above only.
            names[query["Id"]] = eval(expression, {"__builtins__": {}}, names)  # noqa: S307
    return float(names["share"])


def test_the_undelivered_share_alarm_reads_the_delivery_metrics_in_15_minutes(
    template: dict[str, Any],
) -> None:
    alarm = template["Resources"]["UndeliveredRateAlarm"]["Properties"]
    stats = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert {i: s["Metric"]["MetricName"] for i, s in stats.items()} == {
        "delivered": "Delivered",
        "undelivered": "Undelivered",
        "failed": "DeliveryFailed",
    }
    assert set(DELIVERY_METRICS.values()) == {s["Metric"]["MetricName"] for s in stats.values()}
    for stat in stats.values():
        assert (stat["Period"], stat["Stat"], stat["Metric"]["Namespace"]) == (
            900,
            "Sum",
            NAMESPACE,
        )
        assert stat["Metric"]["Dimensions"] == [{"Name": "Stage", "Value": {"Ref": "Stage"}}]
    assert [m["Id"] for m in alarm["Metrics"] if m["ReturnData"]] == ["share"]
    expressions = {m["Id"]: m["Expression"] for m in alarm["Metrics"] if "Expression" in m}
    assert expressions == {
        "settled": "FILL(delivered, 0) + FILL(undelivered, 0) + FILL(failed, 0)",
        "share": {
            "Fn::Sub": "IF(settled >= ${UndeliveredAlarmMinimumMessages}, "
            "100 * (FILL(undelivered, 0) + FILL(failed, 0)) / settled, 0)"
        },
    }
    assert alarm["Threshold"] == {"Ref": "UndeliveredRateThresholdPercent"}
    assert (alarm["ComparisonOperator"], alarm["TreatMissingData"]) == (
        "GreaterThanThreshold",
        "notBreaching",
    )
    parameters = template["Parameters"]
    assert parameters["UndeliveredRateThresholdPercent"]["Default"] == 20
    assert parameters["UndeliveredAlarmMinimumMessages"]["Default"] == 20


@pytest.mark.parametrize(
    ("delivered", "undelivered", "failed", "alarms"),
    [
        (1, 1, None, False),  # 1 of 2: too few to judge
        (None, 19, None, False),  # all undelivered, but under the minimum
        (14, 5, 1, True),  # 6 of 20: 30%
        (None, 20, None, True),  # no Delivered data point at all
        (None, None, 20, True),
        (16, 4, None, False),  # 20% exactly is not above it
        (16, 2, 2, False),
        (1000, 199, 1, False),
        (1000, 200, 51, True),
    ],
)
def test_the_undelivered_share_alarm_needs_a_minimum_volume_and_a_share_above_the_threshold(
    template: dict[str, Any],
    delivered: int | None,
    undelivered: int | None,
    failed: int | None,
    alarms: bool,
) -> None:
    threshold = template["Parameters"]["UndeliveredRateThresholdPercent"]["Default"]
    share = share_of(template, delivered=delivered, undelivered=undelivered, failed=failed)

    assert (share > threshold) is alarms


def test_the_dashboard_shows_delivery_and_its_alarm(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    periods = callqueue_metric_periods(body)
    assert all(periods[m] == {900} for m in DELIVERY_METRICS.values())
    text = of_type(template, "AWS::CloudWatch::Dashboard")["Dashboard"]["Properties"]
    assert text["DashboardBody"]["Fn::Sub"][1]["UndeliveredRate"] == {
        "Fn::GetAtt": ["UndeliveredRateAlarm", "Arn"]
    }
    (alarms,) = [w for w in body["widgets"] if w["type"] == "alarm"]
    assert len(alarms["properties"]["alarms"]) == len(of_type(template, "AWS::CloudWatch::Alarm"))


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The dashboard's JSON, its ${...} references filled with example values."""
    text = of_type(template, "AWS::CloudWatch::Dashboard")["Dashboard"]["Properties"]
    body = text["DashboardBody"]["Fn::Sub"][0]
    return dict(json.loads(re.sub(r"\$\{[^}]+\}", "example", body)))


def callqueue_metric_periods(body: dict[str, Any]) -> dict[str, set[int]]:
    """Each callqueue metric's periods in the dashboard's graphs ("..." repeats the line above's
    namespace and metric)."""
    periods: dict[str, set[int]] = {}
    for widget in body["widgets"]:
        if widget["type"] != "metric":
            continue
        props = widget["properties"]
        previous: list[Any] = []
        for given in props["metrics"]:
            if isinstance(given[0], dict):  # an expression
                continue
            line = previous[:2] + given[1:] if given[0] == "..." else given
            previous = line
            options = line[-1] if isinstance(line[-1], dict) else {}
            if line[0] == "callqueue":
                periods.setdefault(line[1], set()).add(options.get("period", props["period"]))
    return periods


def test_dashboard_shows_calls_429s_and_lag_each_second(template: dict[str, Any]) -> None:
    body = dashboard_body(template)
    # Each graph's own period, not one the console derives from the time range.
    assert body["periodOverride"] == "inherit"
    periods = callqueue_metric_periods(body)
    for metric in HIGH_RESOLUTION:
        # A per-second graph, and a per-minute one for ranges beyond the 3 hours CloudWatch keeps
        # 1-second data.
        assert {1, 60} <= periods[metric], metric
    for metric, seen in periods.items():
        if metric not in HIGH_RESOLUTION:
            # Standard-resolution data has nothing under a minute to show.
            assert all(p % 60 == 0 for p in seen), (metric, seen)
    assert {"Outcomes", "TwilioRequestDuration", "TwilioConcurrentRequests"} <= set(periods)


def test_alarms_on_per_second_metrics_stay_standard_resolution_alarms(
    template: dict[str, Any],
) -> None:
    """An alarm with a period under 60 s is a high-resolution alarm, charged three times over."""
    for name, alarm in of_type(template, "AWS::CloudWatch::Alarm").items():
        props = alarm["Properties"]
        stats = [m["MetricStat"] for m in props.get("Metrics", []) if "MetricStat" in m]
        for period in [props.get("Period", 60)] + [s["Period"] for s in stats]:
            assert period % 60 == 0, name


def test_each_stage_traces_exactly_where_it_has_xray() -> None:
    """Powertools' Tracer reads POWERTOOLS_TRACE_DISABLED; Chalice's `xray` turns on X-Ray for
    the stage's functions. The two must agree, and every function may then send traces."""
    config = json.loads((REPO / ".chalice" / "config.json").read_text())
    assert config["environment_variables"]["POWERTOOLS_SERVICE_NAME"] == "callqueue"
    for name, stage in config["stages"].items():
        disabled = stage["environment_variables"]["POWERTOOLS_TRACE_DISABLED"]
        assert disabled == ("false" if stage["xray"] else "true"), name
    # With autogen_policy false, Chalice adds no X-Ray permission: each policy carries it.
    for path in (REPO / ".chalice" / "policies").glob("*.json"):
        actions = {
            action
            for statement in json.loads(path.read_text())["Statement"]
            for action in (
                [statement["Action"]]
                if isinstance(statement["Action"], str)
                else statement["Action"]
            )
        }
        assert {"xray:PutTraceSegments", "xray:PutTelemetryRecords"} <= actions, path.name


def test_the_callback_function_gets_a_public_function_url_published_where_senders_read_it(
    template: dict[str, Any],
) -> None:
    import app as app_module

    assert infra.CALLBACK_FUNCTION in app_module.app.handler_map
    function = {"Ref": "StatusCallbackFunction"}
    (url,) = of_type(template, "AWS::Lambda::Url").values()
    assert url["Condition"] == "HasStatusCallbackFunction"
    assert url["Properties"]["AuthType"] == "NONE"
    arn = url["Properties"]["TargetFunctionArn"]["Fn::Sub"]
    assert arn.endswith(":function:${StatusCallbackFunction}")
    permissions = {
        p["Properties"]["Action"]: p for p in of_type(template, "AWS::Lambda::Permission").values()
    }
    via_url = permissions["lambda:InvokeFunctionUrl"]
    assert via_url["Properties"] == {
        "Action": "lambda:InvokeFunctionUrl",
        "FunctionName": function,
        "Principal": "*",
        "FunctionUrlAuthType": "NONE",
    }
    # Public InvokeFunction, but only through the URL (new function URLs need both).
    assert permissions["lambda:InvokeFunction"]["Properties"] == {
        "Action": "lambda:InvokeFunction",
        "FunctionName": function,
        "Principal": "*",
        "InvokedViaFunctionUrl": True,
    }
    (parameter,) = of_type(template, "AWS::SSM::Parameter").values()
    assert parameter["Properties"]["Value"] == {"Fn::GetAtt": ["StatusCallbackUrl", "FunctionUrl"]}
    name = parameter["Properties"]["Name"]["Fn::Sub"]
    for stage in ("dev", "prod"):
        assert name.replace("${AppName}", "callqueue").replace(
            "${Stage}", stage
        ) == callback_url_parameter(stage)
    for resource in (*permissions.values(), parameter):
        assert resource["Condition"] == "HasStatusCallbackFunction"
    # Without the function's name the stack deploys none of them (a stage's first deploy).
    assert template["Parameters"]["StatusCallbackFunction"]["Default"] == ""
    assert (
        infra.function_name("dev", infra.CALLBACK_FUNCTION) == "callqueue-dev-status_callback_url"
    )
