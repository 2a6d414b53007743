"""What a route was sent: the current request and its raw body, and POST /jobs's JSON body with
the metadata it asks of the intake. Refusals are Chalice's HTTP errors (400, 413)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from chalice.app import BadRequestError, ChaliceViewError, Request

from chalicelib.config import ConfigError
from chalicelib.core.schedule import Schedule
from chalicelib.intake.carry import REFERENCE, Carry
from chalicelib.intake.timing import NAMES, JobTiming
from chalicelib.intake.validation.templates import BadParams, JobParams, job_params

# Lambda refuses a synchronous request larger than 6 MB before the function sees it; a smaller
# ceiling leaves room for the event's other fields.
MAX_BODY_BYTES = 5 * 1024 * 1024


class PayloadTooLargeError(ChaliceViewError):
    STATUS_CODE = 413


def current(request: Request | None) -> Request:
    if request is None:
        raise RuntimeError("no current request: called outside a route")
    return request


def raw_body_of(request: Request) -> bytes:
    body = request.raw_body
    return body if isinstance(body, bytes) else str(body).encode()


def json_of(raw: bytes, refusal: str) -> Any:
    """A request's JSON body (None when empty). BadRequestError, saying `refusal`, for a body
    that is not JSON, including one nested past Python's recursion limit; and for text that is
    not Unicode (a lone surrogate escape such as "\\ud800" parses, then fails wherever it is
    encoded: in a chunk, a message, a log line)."""
    try:
        body = json.loads(raw or b"null")
    except (ValueError, RecursionError):
        raise BadRequestError(refusal) from None
    try:
        json.dumps(body, ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadRequestError(
            "the body holds text that is not valid Unicode (a lone surrogate such as \\ud800)"
        ) from None
    return body


def job_request(request: Request | None, now: float) -> tuple[dict[str, Any], dict[str, str]]:
    """POST /jobs's body, a JSON object with one of `rows`, `filename` or `staged_key`, and the
    object metadata the intake reads for the job (its rate, its window, its timing, whether to send
    again). A relative start ("in 2h") counts from `now`."""
    raw_body = raw_body_of(current(request))
    if len(raw_body) > MAX_BODY_BYTES:
        raise PayloadTooLargeError(f"the body is over {MAX_BODY_BYTES} bytes; upload a file")
    body = json_of(raw_body, "the body is not JSON")
    if not isinstance(body, dict):
        raise BadRequestError("the body must be a JSON object with `rows` or `filename`")
    metadata = {**_rate_metadata(body), **_carry_metadata(body), **_timing_metadata(body, now)}
    resend = body.get("resend", False)
    if not isinstance(resend, bool):
        raise BadRequestError("`resend` must be true or false")
    if resend:
        # The intake reads it from the object's metadata: send this content again even if
        # an earlier job sent the same within the retention window.
        metadata["resend"] = "true"
    if sum(name in body for name in ("rows", "filename", "staged_key")) != 1:
        raise BadRequestError(
            "give one of `rows` (the rows themselves), `filename` or `staged_key`"
        )
    return body, metadata


def _carry_metadata(body: Mapping[str, Any]) -> dict[str, str]:
    """The columns that travel with each row (`reference_column`, `keep_columns`), as the
    splitter reads them from object metadata (chalicelib.intake.carry)."""
    reference = body.get("reference_column", REFERENCE)
    keep = body.get("keep_columns", [])
    if not isinstance(reference, str) or not reference.strip():
        raise BadRequestError("`reference_column` must be a column name")
    if not isinstance(keep, list) or not all(isinstance(c, str) and c.strip() for c in keep):
        raise BadRequestError("`keep_columns` must be a list of column names")
    try:
        return Carry.of(reference.strip(), tuple(c.strip() for c in keep)).metadata()
    except ConfigError as error:
        raise BadRequestError(str(error)) from None


def _timing_metadata(body: Mapping[str, Any], now: float) -> dict[str, str]:
    """The job's start, send window and daily cap (chalicelib.intake.timing), a start made
    absolute (UTC) now, so the splitter reads the time the request meant."""
    maximum = body.get("max_per_day")
    if maximum is not None and (not isinstance(maximum, int) or isinstance(maximum, bool)):
        raise BadRequestError(f"`max_per_day` must be an integer, got {maximum!r}")
    given = {name: body.get(name) for name in NAMES}
    # One setting at a time, so the 400 names the bad one (each is read on its own: days
    # without hours mean whole days).
    for name, value in given.items():
        try:
            JobTiming.of({name: value}, now)
        except ConfigError as error:
            raise BadRequestError(f"`{name}`: {error}") from None
    return JobTiming.of(given, now).metadata()


def request_identity(body: Mapping[str, Any], metadata: Mapping[str, str]) -> dict[str, Any]:
    """What makes two POST /jobs of the same rows the same job: the metadata, with the timing
    as it was asked ("in 2h"), so a client's retry a moment later is the same request."""
    settings = {k: v for k, v in metadata.items() if k.replace("-", "_") not in NAMES}
    return {**settings, **{name: body[name] for name in NAMES if body.get(name) is not None}}


def _rate_metadata(body: Mapping[str, Any]) -> dict[str, str]:
    """The job's own rate and window, as the splitter reads them from object metadata."""
    metadata: dict[str, str] = {}
    for field, name in (("cps", "cps"), ("window", "window")):
        value = body.get(field)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            raise BadRequestError(f"`{field}` must be an integer")
        metadata[name] = str(value)
    if metadata:
        try:
            Schedule(int(metadata.get("cps", 1)), int(metadata.get("window", 1)))
        except ConfigError as error:
            raise BadRequestError(str(error)) from None
    return metadata


def job_name(value: Any) -> str:
    """The name a job's rows are stored under, from the body's `name`."""
    if not isinstance(value, str) or not value.replace("-", "").replace("_", "").isalnum():
        raise BadRequestError("`name` must be letters, digits, - and _")
    return value[:40]


def params_of(body: Mapping[str, Any]) -> JobParams:
    """POST /jobs's `params`: job-wide parameters, written as the job's manifest."""
    try:
        return job_params(body.get("params"), "`params`")
    except BadParams as error:
        raise BadRequestError(str(error)) from None
