"""The Twilio credentials, from the Secrets Manager secret (a JSON object): what calls Twilio
(an account SID with an API key, or test credentials) and the auth token that checks the
signatures of Twilio's status callbacks."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chalicelib.config import CredentialKind
from chalicelib.errors import CallqueueError

if TYPE_CHECKING:
    from mypy_boto3_secretsmanager import SecretsManagerClient

# Keys of the secret, by credential kind. Live calls authenticate with an API key, as Twilio
# recommends; test credentials only exist as account SID + auth token.
SECRET_KEYS: dict[str, tuple[str, str, str]] = {
    "live": ("ACCOUNT_SID", "API_KEY_SID", "API_KEY_SECRET"),
    "test": ("TEST_ACCOUNT_SID", "TEST_ACCOUNT_SID", "TEST_AUTH_TOKEN"),
}
# The key of the auth token, by credential kind. Twilio signs callbacks with the account's auth
# token, even for messages created with an API key: live credentials need it beside the key.
AUTH_TOKEN_KEYS: Mapping[str, str] = {"live": "AUTH_TOKEN", "test": "TEST_AUTH_TOKEN"}


class CredentialsError(CallqueueError):
    """The Twilio secret is missing a key; names the key, never a value."""


class SigningKeyMissing(CallqueueError):
    """The Twilio secret has no auth token to check callback signatures with."""


@dataclass(frozen=True)
class Credentials:
    account_sid: str
    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(account_sid={self.account_sid!r}, username=..., password=...)"


def _secret(secrets: SecretsManagerClient, secret_id: str) -> dict[str, Any]:
    values: dict[str, Any] = json.loads(
        secrets.get_secret_value(SecretId=secret_id)["SecretString"]
    )
    return values


def load_credentials(
    secrets: SecretsManagerClient, secret_id: str, kind: CredentialKind
) -> Credentials:
    values = _secret(secrets, secret_id)
    names = SECRET_KEYS[kind]
    missing = [name for name in names if not values.get(name)]
    if missing:
        raise CredentialsError(
            f"secret {secret_id} has no {', '.join(missing)} ({kind} credentials)"
        )
    account_sid, username, password = (str(values[name]) for name in names)
    return Credentials(account_sid=account_sid, username=username, password=password)


def load_auth_token(secrets: SecretsManagerClient, secret_id: str, kind: CredentialKind) -> str:
    name = AUTH_TOKEN_KEYS[kind]
    token = _secret(secrets, secret_id).get(name)
    if not token:
        raise SigningKeyMissing(f"secret {secret_id} has no {name} to check callbacks with")
    return str(token)
