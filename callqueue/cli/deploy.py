"""Commands of a deployment (docs/deploy.md): `deploy` and `destroy` (callqueue.deploy.sequence),
`stage add`, `chalice` (Chalice's commands with the deployed stage's values), the infrastructure
template, and the lower-level steps `infra deploy|post-deploy|destroy` (callqueue.deploy.infra)."""

from __future__ import annotations

import argparse
import contextlib
import json
from collections.abc import Iterator

from callqueue.cli.exits import EXIT_OK, UsageError
from callqueue.deploy.stack_outputs import stack_name


def template(args: argparse.Namespace) -> int:
    from callqueue.deploy.stack import render_template

    print(json.dumps(render_template(), indent=2))
    return EXIT_OK


@contextlib.contextmanager
def _aws_errors() -> Iterator[None]:
    """A deployment step's failure, or AWS settings missing or refused, as one message."""
    from botocore.exceptions import ClientError, NoCredentialsError, NoRegionError

    from callqueue.deploy import StageNotDeployed, infra

    try:
        yield
    except (infra.InfraError, StageNotDeployed) as error:
        raise UsageError(str(error)) from None
    except NoRegionError:
        raise UsageError(
            "no AWS region: set AWS_DEFAULT_REGION (or AWS_PROFILE with a region)"
        ) from None
    except NoCredentialsError:
        raise UsageError("no AWS credentials: set AWS_PROFILE or AWS_ACCESS_KEY_ID...") from None
    except ClientError as error:
        raise UsageError(f"AWS refused: {error}") from None


def deploy_stage(args: argparse.Namespace) -> int:
    from callqueue.deploy import sequence

    target = sequence.Target(moto=args.moto)
    with _aws_errors():
        deployed = sequence.deploy(args.stage, parameters=_parameters(args), target=target)
    print(f"stage {args.stage} deployed: upload files to s3://{deployed.source_bucket}/")
    return EXIT_OK


def destroy_stage(args: argparse.Namespace) -> int:
    from callqueue.deploy import sequence

    with _aws_errors():
        sequence.destroy(args.stage, target=sequence.Target(moto=args.moto))
    print(f"stage {args.stage} destroyed")
    return EXIT_OK


def stage_add(args: argparse.Namespace) -> int:
    from callqueue.deploy import stages

    try:
        stages.add_stage(args.name, live=args.live)
    except stages.StageError as error:
        raise UsageError(str(error)) from None
    kind = "live" if args.live else "test"
    print(f"stage {args.name} added to .chalice/config.json ({kind} Twilio credentials)")
    print(f"next: callqueue deploy --stage {args.name}")
    return EXIT_OK


def chalice(args: argparse.Namespace) -> int:
    from callqueue.deploy import chalice_stage

    return chalice_stage.run(args.chalice_args, capture=False).returncode


def _parameters(args: argparse.Namespace) -> dict[str, str]:
    parameters = dict(_key_value(p) for p in args.parameter)
    if args.twilio_secret:
        parameters["TwilioSecretName"] = args.twilio_secret
    if args.alert_email:
        parameters["AlertEmail"] = args.alert_email
    return parameters


def infra_deploy(args: argparse.Namespace) -> int:
    import boto3

    from callqueue.deploy import infra

    with _aws_errors():
        env = infra.deploy(
            boto3.client("cloudformation"),
            boto3.client("secretsmanager"),
            args.stage,
            parameters=_parameters(args),
            lambda_client=boto3.client("lambda"),
        )
    stage = args.stage
    print(f"stack {stack_name(stage)}: {len(env)} outputs and policies in .chalice/stacks/")
    print(f"next: callqueue chalice deploy --stage {stage}; callqueue infra post-deploy ...")
    print("(the first time, `infra deploy` once more after them: the callback function's URL)")
    return EXIT_OK


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise UsageError(f"--parameter {text!r}: expected KEY=VALUE")
    return key, value


def infra_post_deploy(args: argparse.Namespace) -> int:
    import boto3

    from callqueue.deploy import infra

    with _aws_errors():
        changed = infra.post_deploy(boto3.client("lambda"), args.stage)
    print("ReportBatchItemFailures on: " + ", ".join(changed))
    return EXIT_OK


def infra_destroy(args: argparse.Namespace) -> int:
    import boto3

    from callqueue.deploy import infra

    with _aws_errors():
        buckets = infra.destroy(boto3.client("cloudformation"), boto3.client("s3"), args.stage)
    print(f"emptied {len(buckets)} bucket(s); stack {stack_name(args.stage)} deleted")
    return EXIT_OK
