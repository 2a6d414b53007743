"""HTTP to the REST API: one session, the stage's authentication, and every error answer turned
into the client's own error with the API's message.

Authentication follows the stage's API_AUTH: `x-api-key` for `api_key` (API Gateway checks it
against the stage's usage plans), or a SigV4 signature with the caller's AWS credentials for
`iam` (botocore's signer, as the AWS CLI signs). `chalice local` (`callqueue up`) checks neither.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any, Literal
from urllib.parse import urlsplit

import requests
from botocore.auth import SigV4Auth as Signer
from botocore.awsrequest import AWSRequest
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from callqueue.client.errors import (
    ApiError,
    BadRequest,
    Conflict,
    ConnectionFailed,
    JobNotFound,
    NotAuthorized,
    ServerError,
)

Auth = Literal["api_key", "iam", "none"]
# Seconds to connect and to wait for an answer: the API answers within API Gateway's 29 s.
TIMEOUT = (10.0, 35.0)
_ERRNO = re.compile(r"\[Errno -?\d+\] [^'\")\]]+")
_BY_STATUS: Mapping[int, type[ApiError]] = {
    400: BadRequest,
    401: NotAuthorized,
    403: NotAuthorized,
    404: JobNotFound,
    409: Conflict,
    413: BadRequest,
}


class ApiKeyAuth(requests.auth.AuthBase):
    def __init__(self, key: str) -> None:
        self._key = key

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["x-api-key"] = self._key
        return request


class SigV4Auth(requests.auth.AuthBase):
    """Signs each request for API Gateway (`execute-api`) with botocore's SigV4 signer."""

    def __init__(self, credentials: Any, region: str) -> None:
        self._credentials = credentials
        self._region = region

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        signed = AWSRequest(
            method=request.method,
            url=request.url,
            data=request.body,
            headers={k: v for k, v in request.headers.items() if k.lower() != "connection"},
        )
        Signer(self._credentials.get_frozen_credentials(), "execute-api", self._region).add_auth(
            signed
        )
        request.headers.update(dict(signed.headers.items()))
        return request


def region_of(api_url: str) -> str | None:
    """The region in an API Gateway URL (https://ID.execute-api.REGION.amazonaws.com/api/)."""
    parts = (urlsplit(api_url).hostname or "").split(".")
    if len(parts) >= 4 and parts[1] == "execute-api":
        return parts[2]
    return None


def why_unreachable(error: requests.RequestException) -> str:
    """The cause a person reads ("[Errno 111] Connection refused", "timed out"), not urllib3's
    chain of wrappers."""
    if isinstance(error, requests.Timeout):
        return "timed out"
    found = _ERRNO.search(str(error))
    return found.group(0) if found else type(error).__name__


def error_for(response: requests.Response) -> ApiError:
    """The client's error for an HTTP error answer, with the API's own message."""
    code: str | None = None
    message = ""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        # Chalice's errors: {"Code": "ConflictError", "Message": ...}; API Gateway's own
        # (a missing or wrong API key, a throttle): {"message": "Forbidden"}.
        code = body.get("Code") if isinstance(body.get("Code"), str) else None
        raw = body.get("Message", body.get("message"))
        message = raw if isinstance(raw, str) else ""
    if not message:
        message = (response.text or response.reason or "").strip()[:200]
    kind = _BY_STATUS.get(response.status_code)
    if kind is None:
        kind = ServerError if response.status_code >= 500 else ApiError
    message = " ".join(message.split()) or f"HTTP {response.status_code}"
    if kind is NotAuthorized:
        message = f"{message} (HTTP {response.status_code}): check the API key or credentials"
    elif kind is ServerError:
        message = f"the API failed (HTTP {response.status_code}): {message}"
    return kind(message, status=response.status_code, code=code)


def retrying_session() -> requests.Session:
    """A session that retries what is safe to repeat: a GET that met a connection error, a
    throttle (429) or a gateway's 502, 503 or 504, with backoff, as urllib3's Retry does it.
    A POST is never repeated: a second POST /jobs would be a second upload URL."""
    retry = Retry(
        total=4,
        backoff_factor=0.5,
        status_forcelist=(429, 502, 503, 504),
        allowed_methods=frozenset({"GET"}),
        raise_on_status=False,
    )
    session = requests.Session()
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


class Transport:
    """JSON requests to one API; `auth` says how they are authenticated."""

    def __init__(
        self,
        api_url: str,
        auth: requests.auth.AuthBase | None = None,
        *,
        session: requests.Session | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self._auth = auth
        self.session = session or retrying_session()

    def get(self, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        return self._call("GET", path, params=params)

    def post(self, path: str, body: Mapping[str, Any] | None = None) -> dict[str, Any]:
        return self._call("POST", path, body=body)

    def _call(
        self,
        method: str,
        path: str,
        *,
        body: Mapping[str, Any] | None = None,
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        url = f"{self.api_url}{path}"
        data = None if body is None else json.dumps(body)
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            response = self.session.request(
                method,
                url,
                data=data,
                params=params,
                headers=headers,
                auth=self._auth,
                timeout=TIMEOUT,
            )
        except requests.RequestException as error:
            raise ConnectionFailed(
                f"cannot reach the API at {self.api_url}: {why_unreachable(error)}"
            ) from None
        if response.status_code >= 400:
            raise error_for(response)
        try:
            answer = response.json()
        except ValueError:
            raise ApiError(
                f"{method} {path}: the API's answer is not JSON", status=response.status_code
            ) from None
        if not isinstance(answer, dict):
            raise ApiError(f"{method} {path}: unexpected answer", status=response.status_code)
        return answer
