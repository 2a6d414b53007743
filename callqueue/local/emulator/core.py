"""What every part of the emulator shares: the default fake credentials, the API version, the JSON
and form types, Twilio's error answer (`_ApiError`, `error_body`, `_Reply`), the fields of a
created resource, and small helpers on forms, SIDs, numbers and times."""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any

from chalicelib.errors import CallqueueError

# The default credentials are fixed fakes for local use, not secrets.
DEFAULT_ACCOUNT_SID = "ACfeedfacefeedfacefeedfacefeedface"
DEFAULT_AUTH_TOKEN = "emulator-auth-token-not-a-secret"  # noqa: S105 - a fixed local fake
DEFAULT_API_KEY_SID = "SKfeedfacefeedfacefeedfacefeedface"
DEFAULT_API_KEY_SECRET = "emulator-api-key-secret-not-a-secret"  # noqa: S105 - a fixed local fake

API_VERSION = "2010-04-01"

Json = dict[str, Any]
Form = Mapping[str, Sequence[str]]

_E164 = re.compile(r"\+[1-9]\d{1,14}")


def _sid_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(prefix + r"[0-9a-fA-F]{32}")


_ACCOUNT_SID = _sid_pattern("AC")


class _ApiError(CallqueueError):
    """An error answer: Twilio's error body with the given status and code."""

    def __init__(self, status: int, code: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def error_body(status: int, code: int, message: str) -> Json:
    return {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }


def _not_found(path: str) -> _ApiError:
    return _ApiError(404, 20404, f"The requested resource {path} was not found")


@dataclass(frozen=True)
class _Reply:
    status: int
    body: Json
    code: int | None = None
    processed: bool = False
    sid: str | None = None
    edge_page: str | None = None
    """An edge proxy's HTML page sent instead of `body`, without Twilio's headers."""

    @classmethod
    def of(cls, error: _ApiError) -> _Reply:
        return cls(error.status, error_body(error.status, error.code, error.message), error.code)


def _first(form: Form, name: str) -> str | None:
    values = form.get(name)
    return values[0] if values else None


def _new_sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _rfc2822(t: float) -> str:
    return format_datetime(datetime.fromtimestamp(t, UTC))


def _iso8601(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _is_e164(number: str) -> bool:
    return _E164.fullmatch(number) is not None


def _nanp_format(national: str) -> str:
    return f"({national[:3]}) {national[3:6]}-{national[6:]}"


def _outbound_resource(
    account_sid: str,
    collection: str,
    sid: str,
    now: float,
    status: str,
    to: str,
    subresources: Mapping[str, str],
    fields: Json,
) -> Json:
    """A 2010-04-01 resource of `collection` (Messages, Calls) as its creation answers it: the
    fields every such resource has and the resource's own `fields`, in Twilio's order (by name).
    `subresources` maps each subresource's key to its name in the URI."""
    uri = f"/{API_VERSION}/Accounts/{account_sid}/{collection}/{sid}"
    shared = {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "date_created": _rfc2822(now),
        "date_updated": _rfc2822(now),
        "direction": "outbound-api",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": status,
        "subresource_uris": {k: f"{uri}/{v}.json" for k, v in subresources.items()},
        "to": to,
        "uri": f"{uri}.json",
    }
    return dict(sorted({**shared, **fields}.items()))
