"""A response envelope: one attempt's outcome as the sender publishes it to the response topic
for the downstream sinks, and its strict reading back (ResponseEnvelope.from_json)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, TypeVar, get_args

from chalicelib.core.records import (
    APIS,
    Api,
    Outcome,
    ParamValue,
    TwilioResult,
    carried_json,
    number_in,
)
from chalicelib.errors import CallqueueError


class MalformedEnvelope(CallqueueError, ValueError):
    """A message that is not a response envelope as ResponseEnvelope.to_json writes it."""


@dataclass(frozen=True)
class ResponseError:
    """An envelope's `error`: Twilio's error code, or callqueue's own name for a row that ended
    without a call (`cancelled`), or none for a request that got no answer; and the message."""

    code: int | str | None
    message: str | None
    more_info: str | None


@dataclass(frozen=True)
class ResponseEnvelope:
    """One attempt's response, as published to the response topic for the downstream sinks."""

    job_id: str
    row: int
    api: Api
    attempt: int
    outcome: Outcome
    request: dict[str, ParamValue]
    result: TwilioResult
    due_at: float
    # A code that is not Twilio's (`cancelled`), for a row that ended without a call: it is
    # published as the error's code.
    error_name: str | None = None
    # The row's own columns (its reference, kept columns), as the splitter read them.
    carried: dict[str, str] = field(default_factory=dict)
    # The sender wrote this envelope's result to the row's item itself (the call ledger's outcome
    # write), so the results sink leaves the row alone. Published as `"recorded": true`, absent
    # otherwise (and in envelopes from before the mark).
    recorded: bool = False

    @property
    def number(self) -> str | None:
        """The number the row called: `To`, or `PhoneNumber` for a Lookup."""
        return number_in(self.request)

    @property
    def error(self) -> ResponseError | None:
        r = self.result
        if self.error_name is None and r.error_code is None and r.network_error is None:
            return None
        code = self.error_name if self.error_name is not None else r.error_code
        message = r.error_message if r.error_message is not None else r.network_error
        return ResponseError(code, message, r.more_info)

    def to_json(self) -> dict[str, Any]:
        r = self.result
        error = self.error
        return {
            "job_id": self.job_id,
            "row": self.row,
            "api": self.api,
            "attempt": self.attempt,
            "outcome": self.outcome,
            "request": self.request,
            "status": r.status,
            "error": None if error is None else asdict(error),
            "sid": r.sid,
            "body": r.body,
            "headers": r.headers,
            "timings": {
                "due_at": self.due_at,
                "started_at": r.started_at,
                "finished_at": r.finished_at,
                "lag_seconds": round(r.started_at - self.due_at, 6),
                "duration_seconds": round(r.finished_at - r.started_at, 6),
            },
            **carried_json(self.carried),
            **({"recorded": True} if self.recorded else {}),
        }

    @classmethod
    def from_json(cls, data: Any) -> ResponseEnvelope:
        """The envelope whose `to_json` is `data`: to_json writes `data` again, key for key.

        What to_json writes is what is read: every key, no other, each of its type. Two
        envelopes the wire tells apart only by their JSON are read as well: a cancelled row's
        (its error's code a name, not Twilio's number) and one trimmed to fit a message
        (chalicelib.core.batching.fit_envelope: a trimmed request keeps scalars and is marked
        `"truncated": true`). Raises MalformedEnvelope, naming the field, for anything else."""
        top = _exact_keys(data, _ENVELOPE_KEYS, "the envelope", optional=("carried", "recorded"))
        timings = _exact_keys(top["timings"], _TIMING_KEYS, "timings")
        error = _error_of(top["error"])
        code = None if error is None else error.code
        message = None if error is None else error.message
        result = TwilioResult(
            status=_field(top, "status", _is_int, "an integer", optional=True),
            body=_json_object(top, "body"),
            headers=_headers_of(top["headers"]),
            started_at=_field(timings, "started_at", _is_number, "a number"),
            finished_at=_field(timings, "finished_at", _is_number, "a number"),
            # A message without a code is a request's that got no answer (to_json's choice).
            error_code=code if isinstance(code, int) else None,
            error_message=message if code is not None else None,
            more_info=None if error is None else error.more_info,
            network_error=message if error is not None and code is None else None,
        )
        envelope = cls(
            job_id=_field(top, "job_id", _is_str, "a string"),
            row=_field(top, "row", _is_int, "an integer"),
            api=_one_of(APIS, top, "api"),
            attempt=_field(top, "attempt", _is_int, "an integer"),
            outcome=_one_of(OUTCOMES, top, "outcome"),
            request=_request_of(top["request"]),
            result=result,
            due_at=_field(timings, "due_at", _is_number, "a number"),
            error_name=code if isinstance(code, str) else None,
            carried=_carried_of(top),
            recorded=_recorded_of(top),
        )
        # What to_json derives (the SID from the body, the lag and duration from the times)
        # must be what it would derive: otherwise the envelope would not be written again.
        written = envelope.to_json()
        differ = [key for key in _DERIVED_KEYS if written[key] != top[key]]
        if differ:
            raise MalformedEnvelope(
                f"{' and '.join(differ)} disagree with the rest of the envelope"
                f" (job {envelope.job_id} row {envelope.row})"
            )
        return envelope


_ENVELOPE_KEYS = (
    "job_id",
    "row",
    "api",
    "attempt",
    "outcome",
    "request",
    "status",
    "error",
    "sid",
    "body",
    "headers",
    "timings",
)
_ERROR_KEYS = ("code", "message", "more_info")
_TIMING_KEYS = ("due_at", "started_at", "finished_at", "lag_seconds", "duration_seconds")
_DERIVED_KEYS = ("error", "sid", "timings")
OUTCOMES: tuple[Outcome, ...] = get_args(Outcome)

T = TypeVar("T")


def _is_int(value: Any) -> bool:
    # JSON has no booleans among its numbers; Python's bool is an int.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


def _exact_keys(
    value: Any, keys: tuple[str, ...], what: str, optional: tuple[str, ...] = ()
) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise MalformedEnvelope(f"{what} is {type(value).__name__}, not an object")
    missing = [key for key in keys if key not in value]
    unknown = sorted(str(key) for key in value if key not in keys + optional)
    problems = [f"no {', '.join(missing)}"] if missing else []
    problems += [f"unknown {', '.join(unknown)}"] if unknown else []
    if problems:
        raise MalformedEnvelope(f"{what} has {' and '.join(problems)}")
    return value


def _field(
    data: Mapping[str, Any],
    name: str,
    accepts: Callable[[Any], bool],
    expected: str,
    *,
    optional: bool = False,
) -> Any:
    value = data[name]
    if not (accepts(value) or (optional and value is None)):
        raise MalformedEnvelope(f"{name} is {value!r:.80}, not {expected}")
    return value


def _one_of(choices: tuple[T, ...], data: Mapping[str, Any], name: str) -> T:
    for choice in choices:
        if data[name] == choice:
            return choice
    raise MalformedEnvelope(
        f"{name} is {data[name]!r:.80}, not one of {', '.join(map(str, choices))}"
    )


def _json_object(data: Mapping[str, Any], name: str) -> dict[str, Any] | None:
    value = _field(data, name, lambda v: isinstance(v, dict), "an object", optional=True)
    return None if value is None else dict(value)


def _error_of(value: Any) -> ResponseError | None:
    if value is None:
        return None
    error = _exact_keys(value, _ERROR_KEYS, "error")
    code = _field(error, "code", lambda v: _is_int(v) or _is_str(v), "a code", optional=True)
    message = _field(error, "message", _is_str, "a string", optional=True)
    more_info = _field(error, "more_info", _is_str, "a string", optional=True)
    return ResponseError(code, message, more_info)


def _headers_of(value: Any) -> dict[str, str]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise MalformedEnvelope(f"headers is {value!r:.80}, not an object of strings")
    return dict(value)


def _request_of(value: Any) -> dict[str, ParamValue]:
    """The request as published: Twilio's parameters, or, trimmed, the short scalars kept."""
    if not isinstance(value, dict):
        raise MalformedEnvelope(f"request is {value!r:.80}, not an object")
    trimmed = value.get("truncated") is True
    for name, param in value.items():
        if isinstance(param, str) or (
            isinstance(param, list) and all(isinstance(p, str) for p in param)
        ):
            continue
        if trimmed and (param is None or isinstance(param, bool | int | float)):
            continue
        raise MalformedEnvelope(f"request parameter {name} is {param!r:.80}, not a string")
    return dict(value)


def _carried_of(top: Mapping[str, Any]) -> dict[str, str]:
    """An envelope's carried columns: absent, or a non-empty object of strings (to_json writes
    no empty one)."""
    if "carried" not in top:
        return {}
    value = top["carried"]
    if (
        not isinstance(value, dict)
        or not value
        or not all(isinstance(v, str) for v in value.values())
    ):
        raise MalformedEnvelope(f"carried is {value!r:.80}, not an object of strings")
    return dict(value)


def _recorded_of(top: Mapping[str, Any]) -> bool:
    """An envelope's mark: absent, or true (to_json writes no false)."""
    if "recorded" not in top:
        return False
    if top["recorded"] is not True:
        raise MalformedEnvelope(f"recorded is {top['recorded']!r:.80}, not true")
    return True
