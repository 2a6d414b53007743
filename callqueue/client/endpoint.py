"""Where a stage's REST API is and how to authenticate to it, found by the stage's name.

Resolution for stage S, first answer wins:
- the URL: the stack `callqueue-S`'s output `EndpointURL` (the name `chalice package` gives it,
  for a stack that holds the API) or `ApiUrl`; else the SSM parameter `/callqueue/S/api-url`
  (which `callqueue deploy` writes once Chalice has made the API); else `rest_api_url` in
  Chalice's `.chalice/deployed/S.json`, which `chalice deploy --stage S` writes;
- how requests are authenticated: the stack's output `ApiAuth`, else the stage's `API_AUTH` in
  `.chalice/config.json`, else `api_key` (the app's default);
- the API key: the one given (`--api-key`, `CALLQUEUE_API_KEY`), else the value of the API key
  whose id is the stack's output `ApiKeyId`. No stack creates a key today (the routes require
  one, so a key and a usage plan are made once per stage by hand, docs/cli.md): it is given.

`OutputsReader` and `ApiUrlReader` are the only dependencies on how a stage's outputs are read,
so a deployment module that reads them (`callqueue.deploy.outputs`) can take their place.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.exceptions

from callqueue.client.errors import ConnectionFailed, StackNotFound
from callqueue.client.transport import Auth, region_of
from callqueue.deploy.stack_outputs import api_url_parameter, stack_name

API_KEY_VARIABLE = "CALLQUEUE_API_KEY"
URL_OUTPUTS = ("EndpointURL", "ApiUrl")
AUTHS: tuple[Auth, ...] = ("api_key", "iam", "none")

# A stage's stack outputs by name; StackNotFound when there is no such stack.
OutputsReader = Callable[[str], Mapping[str, str]]
# A stage's API URL as its deployment recorded it, or None.
ApiUrlReader = Callable[[str], str | None]


@dataclass(frozen=True)
class Endpoint:
    api_url: str
    auth: Auth
    api_key: str | None = None
    # For SigV4: the region the API is in.
    region: str | None = None

    def __repr__(self) -> str:
        # The key is a secret: never in a log or a traceback's locals.
        key = "None" if self.api_key is None else "'***'"
        return f"Endpoint(api_url={self.api_url!r}, auth={self.auth!r}, api_key={key})"


def ssm_api_url(ssm: Any) -> ApiUrlReader:
    """Reads a stage's API URL from its SSM parameter."""

    def api_url(stage: str) -> str | None:
        name = api_url_parameter(stage)
        try:
            with aws_errors(f"reading parameter {name}"):
                return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
        except StackNotFound as error:
            if error.code == "ParameterNotFound":
                return None
            raise

    return api_url


def cloudformation_outputs(cloudformation: Any) -> OutputsReader:
    """Reads a stage's stack outputs with `describe_stacks`."""

    def outputs(stage: str) -> Mapping[str, str]:
        name = stack_name(stage)
        region = cloudformation.meta.region_name
        try:
            with aws_errors(f"reading stack {name} in {region}"):
                stacks = cloudformation.describe_stacks(StackName=name)["Stacks"]
        except StackNotFound as error:
            # CloudFormation answers a missing stack with a ValidationError, nothing narrower.
            if error.code != "ValidationError":
                raise
            raise StackNotFound(
                f"no stack {name} in {region}: deploy stage {stage!r} first, or check the"
                " region (AWS_DEFAULT_REGION)"
            ) from None
        return {o["OutputKey"]: o["OutputValue"] for o in stacks[0].get("Outputs", [])}

    return outputs


@contextmanager
def aws_errors(doing: str) -> Iterator[None]:
    """botocore's errors while finding a stack, as one line saying what was being done: no
    region, no credentials, access denied, no connection."""
    try:
        yield
    except botocore.exceptions.ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        message = error.response.get("Error", {}).get("Message", "")
        raise StackNotFound(f"{doing}: {code}: {message}", code=code) from None
    except botocore.exceptions.NoRegionError:
        raise StackNotFound(
            f"{doing}: no AWS region; set AWS_DEFAULT_REGION or a profile's region"
        ) from None
    except botocore.exceptions.NoCredentialsError:
        raise StackNotFound(f"{doing}: no AWS credentials (AWS_PROFILE, aws configure)") from None
    except botocore.exceptions.BotoCoreError as error:
        raise ConnectionFailed(f"{doing}: {error}") from None


def resolve(
    stage: str,
    *,
    outputs: OutputsReader,
    api_url: ApiUrlReader | None = None,
    api_key: str | None = None,
    api_key_value: Callable[[str], str] | None = None,
    project_dirs: Iterable[Path] = (),
    environ: Mapping[str, str] = os.environ,
) -> Endpoint:
    """The endpoint of stage `stage`. `api_url(stage)` reads the URL a deployment recorded;
    `api_key_value(id)` reads an API key's value (API
    Gateway's get_api_key); `project_dirs` are where `.chalice/` may be (the first wins)."""
    dirs = [d / ".chalice" for d in project_dirs]
    try:
        found = dict(outputs(stage))
    except StackNotFound:
        if not any(_deployed_url(d, stage) for d in dirs):
            raise
        found = {}
    url = next((found[name] for name in URL_OUTPUTS if found.get(name)), None)
    if url is None and found and api_url is not None:
        url = api_url(stage)
    url = url or next((u for d in dirs if (u := _deployed_url(d, stage))), None)
    if url is None:
        raise StackNotFound(
            f"stage {stage!r} has no REST API: deploy its functions (`chalice deploy --stage"
            f" {stage}`) from the project directory, or give --api-url"
        )
    auth = found.get("ApiAuth") or next((a for d in dirs if (a := _stage_auth(d, stage))), None)
    checked = auth_of(auth or "api_key", f"stage {stage!r}'s API_AUTH")
    key = api_key or environ.get(API_KEY_VARIABLE)
    if key is None and found.get("ApiKeyId") and api_key_value is not None:
        key = api_key_value(found["ApiKeyId"])
    if checked == "api_key" and not key:
        raise StackNotFound(
            f"stage {stage!r}'s API needs an API key: give --api-key or set {API_KEY_VARIABLE}"
            " (docs/cli.md says how to create one)"
        )
    return Endpoint(url, checked, key, region_of(url))


def auth_of(value: str, what: str = "auth") -> Auth:
    """`value` as an authentication kind, or StackNotFound naming `what`."""
    if value not in AUTHS:
        raise StackNotFound(f"{what} must be one of {', '.join(AUTHS)}, not {value!r}")
    return value


def _deployed_url(chalice_dir: Path, stage: str) -> str | None:
    """`rest_api_url` of `chalice deploy`'s record of a stage, if there is one."""
    path = chalice_dir / "deployed" / f"{stage}.json"
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    for resource in record.get("resources", []):
        if resource.get("resource_type") == "rest_api" and resource.get("rest_api_url"):
            return str(resource["rest_api_url"])
    return None


def _stage_auth(chalice_dir: Path, stage: str) -> str | None:
    """API_AUTH of the stage in `.chalice/config.json` (the stage's, else the app's)."""
    try:
        config = json.loads((chalice_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    staged = config.get("stages", {}).get(stage, {}).get("environment_variables", {})
    value = staged.get("API_AUTH", config.get("environment_variables", {}).get("API_AUTH"))
    return value if isinstance(value, str) else None
