"""Commands of a deployment (docs/deploy.md): the infrastructure template, and the steps around
`chalice deploy` (callqueue.deploy.infra)."""

from __future__ import annotations

import argparse
import json

from callqueue.cli.exits import EXIT_OK, UsageError


def template(args: argparse.Namespace) -> int:
    from callqueue.deploy.stack import render_template

    print(json.dumps(render_template(), indent=2))
    return EXIT_OK


def infra_deploy(args: argparse.Namespace) -> int:
    import boto3

    from callqueue.deploy import infra

    parameters = dict(_key_value(p) for p in args.parameter)
    if args.twilio_secret:
        parameters["TwilioSecretName"] = args.twilio_secret
    if args.alert_email:
        parameters["AlertEmail"] = args.alert_email
    try:
        env = infra.deploy(
            boto3.client("cloudformation"),
            boto3.client("secretsmanager"),
            args.stage,
            parameters=parameters,
        )
    except infra.InfraError as error:
        raise UsageError(str(error)) from None
    print(
        f"stack {infra.stack_name(args.stage)}: {len(env)} outputs written to .chalice/config.json"
    )
    print(f"policies rendered into .chalice/policies/{args.stage}/")
    stage = args.stage
    print(f"next: chalice deploy --stage {stage} && callqueue infra post-deploy --stage {stage}")
    return EXIT_OK


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--parameter {text!r}: expected KEY=VALUE")
    return key, value


def infra_post_deploy(args: argparse.Namespace) -> int:
    import boto3

    from callqueue.deploy import infra

    try:
        changed = infra.post_deploy(boto3.client("lambda"), args.stage)
    except infra.InfraError as error:
        raise UsageError(str(error)) from None
    print("ReportBatchItemFailures on: " + ", ".join(changed))
    return EXIT_OK


def infra_destroy(args: argparse.Namespace) -> int:
    import boto3

    from callqueue.deploy import infra

    try:
        buckets = infra.destroy(boto3.client("cloudformation"), boto3.client("s3"), args.stage)
    except infra.InfraError as error:
        raise UsageError(str(error)) from None
    print(f"emptied {len(buckets)} bucket(s); stack {infra.stack_name(args.stage)} deleted")
    return EXIT_OK
