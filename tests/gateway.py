"""What API Gateway does in front of the app and neither `chalice local` nor chalice.test checks:
the API key. `gateway_session` gives the client a requests session whose requests to the API's
URL pass API Gateway's key check (a missing or wrong `x-api-key` is answered as API Gateway
answers it: 403 `{"message": "Forbidden"}`) and then reach the app, either a served one
(`chalice local`, over HTTP) or chalice.test's in-process gateway. Every other URL (presigned S3
links) goes out as usual."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import BaseAdapter, HTTPAdapter
from requests.structures import CaseInsensitiveDict


def _response(request: requests.PreparedRequest, status: int, body: bytes, headers: Any) -> Any:
    response = requests.Response()
    response.status_code = status
    response._content = body
    response.headers = CaseInsensitiveDict(headers)
    response.url = request.url or ""
    response.request = request
    response.reason = {403: "Forbidden"}.get(status, "")
    return response


def forbidden(request: requests.PreparedRequest) -> requests.Response:
    """API Gateway's answer to a request without a valid key of the stage's usage plans."""
    body = json.dumps({"message": "Forbidden"}).encode()
    headers = {"Content-Type": "application/json", "x-amzn-ErrorType": "ForbiddenException"}
    return _response(request, 403, body, headers)


class KeyCheck:
    def __init__(self, keys: frozenset[str]) -> None:
        self.keys = keys
        self.seen: list[Mapping[str, str]] = []

    def passes(self, request: requests.PreparedRequest) -> bool:
        self.seen.append(dict(request.headers))
        return request.headers.get("x-api-key") in self.keys


class ServedApi(HTTPAdapter):
    """API Gateway's key check in front of a served API (`chalice local`)."""

    def __init__(self, check: KeyCheck) -> None:
        super().__init__()
        self._check = check

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if not self._check.passes(request):
            return forbidden(request)
        return super().send(request, **kwargs)


class InProcessApi(BaseAdapter):
    """API Gateway's key check in front of chalice.test's gateway (the app in this process)."""

    def __init__(self, http: Any, check: KeyCheck, *, stage_path: str = "") -> None:
        """`stage_path`: the URL's path before the routes (API Gateway's stage, `/api`)."""
        super().__init__()
        self._http = http
        self._check = check
        self._stage_path = stage_path.rstrip("/")

    def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:  # type: ignore[override]
        if not self._check.passes(request):
            return forbidden(request)
        url = urlsplit(request.url or "")
        path = url.path.removeprefix(self._stage_path)
        path += f"?{url.query}" if url.query else ""
        body = request.body or b""
        answer = self._http.request(
            request.method or "GET",
            path,
            headers=dict(request.headers),
            body=body if isinstance(body, bytes) else body.encode(),
        )
        return _response(request, answer.status_code, answer.body, answer.headers)

    def close(self) -> None:
        pass


def gateway_session(api_url: str, adapter: BaseAdapter) -> requests.Session:
    session = requests.Session()
    session.mount(api_url.rstrip("/") + "/", adapter)
    return session
