"""Observability: JSON log lines that carry the Lambda invocation and the job and row being worked
on, Powertools' Tracer where X-Ray is on, and CloudWatch metrics written as embedded metric format
(EMF) log lines.

Logs: `configure_logging()` (from app.py) makes every record of the project's loggers one JSON
object in Lambda (Powertools' formatter: level, location, message, timestamp, service, X-Ray trace
id). `invocation(event, tracer)` (app.py's middleware, around every handler) adds the Lambda
context to every line logged until the handler returns, by any thread: the fields and names of
Powertools' `inject_lambda_context` (function_name, function_memory_size, function_arn,
function_request_id, cold_start). `bound(job_id=..., row=...)` adds those fields to every line
logged inside it, in this thread's context. Outside Lambda (the local runtime, tests) the loggers
keep their plain format.

Tracing: `tracer()` is Powertools' Tracer (X-Ray; boto3 and requests calls become subsegments) in
Lambda unless POWERTOOLS_TRACE_DISABLED (set per stage in config.json, true where the stage has no
X-Ray), and None elsewhere, so aws_xray_sdk is not even imported where nothing is traced. Each
invocation is a subsegment annotated with ColdStart, Service and the job_id bound in it.

Metrics: CloudWatch extracts metrics from EMF lines at no API cost (no PutMetricData calls, no IAM
permission). A `Metrics` collects counts and measurements, grouped by the second they happened in
and by their dimensions, and `flush()` writes one line per group, once per unit of work: after a
batch is done, so a batch that fails and is delivered again is not counted twice. Every metric
has the `Stage` dimension, the one the alarms and the dashboard read. Calls, 429s and the lag
behind schedule are stored at 1-second resolution (HIGH_RESOLUTION), so the dashboard shows each
second's peak; the others at CloudWatch's standard minute.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TYPE_CHECKING, Any, Literal

from chalice.app import Request

if TYPE_CHECKING:
    from aws_lambda_powertools import Tracer

NAMESPACE = "callqueue"
Unit = Literal["Count", "Milliseconds", "Seconds", "None"]
# EMF takes at most 100 values per metric in one document.
MAX_VALUES = 100
# Stored at 1-second resolution, read by the dashboard's per-second widgets (period 1). CloudWatch
# keeps 1-second data for 3 hours, then as minutes; the alarms read 5-minute periods, so they stay
# standard alarms. A metric keeps one resolution in every document and dimension set.
HIGH_RESOLUTION = frozenset({"Calls", "Throttled", "ScheduleLag"})
# What the Tracer patches: AWS calls and the twilio SDK's requests. Not httplib: requests goes
# through it, and every Twilio call would be traced twice.
TRACED_MODULES = ("botocore", "requests")
_TRUE = {"1", "true", "t", "yes", "y", "on"}
# Each log field of the Lambda context (Powertools' names) and the context attribute it comes from.
CONTEXT_FIELDS = {
    "function_name": "function_name",
    "function_memory_size": "memory_limit_in_mb",
    "function_arn": "invoked_function_arn",
    "function_request_id": "aws_request_id",
}

_fields: ContextVar[Mapping[str, Any]] = ContextVar("callqueue_log_fields", default={})  # noqa: B039 - never mutated


class _Invocation:
    """The invocation in progress. Lambda runs one at a time in a process, so this is process
    state, seen by every thread its handler starts (the sender's call pool logs with it too)."""

    fields: Mapping[str, Any]
    segment: Any  # its X-Ray subsegment, where traced
    started: bool

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.fields, self.segment, self.started = {}, None, False

    def cold_start(self) -> bool:
        """True for the first invocation of this process, as Powertools counts it: never under
        provisioned concurrency, where the process was started before any request."""
        first, self.started = not self.started, True
        initialized = os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")
        return first and initialized != "provisioned-concurrency"


_invocation = _Invocation()
# The invocation's fields in the thread handling it. Lambda has one invocation at a time; the
# local runtime and the tests run handlers side by side in one process, and each thread handling
# one keeps its own (threads it starts see the latest invocation's).
_own_invocation: ContextVar[Mapping[str, Any] | None] = ContextVar(
    "callqueue_invocation", default=None
)


def reset_invocations() -> None:
    """Forget that this process handled an invocation: the next one is a cold start (tests)."""
    _invocation.reset()


@contextmanager
def bound(**fields: Any) -> Iterator[None]:
    """Add fields (job_id, row, ...) to every log line written in the block; None is left out.
    A job_id also annotates the invocation's trace, where there is one (the last bound wins)."""
    token = _fields.set({**_fields.get(), **{k: v for k, v in fields.items() if v is not None}})
    segment = _invocation.segment
    if segment is not None and fields.get("job_id") is not None:
        segment.put_annotation("job_id", str(fields["job_id"]))
    try:
        yield
    finally:
        _fields.reset(token)


class BoundFields(logging.Filter):
    """Copies the invocation's and the bound fields onto each record, where a JSON formatter picks
    them up."""

    def filter(self, record: logging.LogRecord) -> bool:
        own = _own_invocation.get()
        invocation = _invocation.fields if own is None else own
        for name, value in [*invocation.items(), *_fields.get().items()]:
            if not hasattr(record, name):
                setattr(record, name, value)
        return True


def lambda_context_of(event: Any) -> Any:
    """The Lambda context of what a Chalice middleware is given: a REST request's
    `lambda_context` (its `context` is API Gateway's request context); an event's `context` (S3,
    SQS, schedule, pure Lambda functions). None for a request Chalice could not route."""
    if isinstance(event, Request):
        return event.lambda_context
    return getattr(event, "context", None)


def context_fields(context: Any) -> dict[str, Any]:
    """The fields Powertools' `inject_lambda_context` logs, from a Lambda context object; one the
    context lacks is left out (the local runtime's context has fewer attributes than Lambda's), so
    a log field never fails a handler."""
    found = {field: getattr(context, name, None) for field, name in CONTEXT_FIELDS.items()}
    return {field: value for field, value in found.items() if value is not None}


@contextmanager
def invocation(event: Any, tracer: Tracer | None = None) -> Iterator[None]:
    """One handler's invocation: its Lambda context on every log line until it returns and, with
    a tracer, a subsegment annotated like Powertools' `capture_lambda_handler` (an exception
    raised inside is recorded on it)."""
    context = lambda_context_of(event)
    cold_start = _invocation.cold_start()
    fields = {} if context is None else {**context_fields(context), "cold_start": cold_start}
    _invocation.fields = fields
    token = _own_invocation.set(fields)
    try:
        if tracer is None:
            yield
            return
        name = f"## {fields.get('function_name', 'handler')}"
        with tracer.provider.in_subsegment(name=name) as segment:
            if segment is not None:
                segment.put_annotation("ColdStart", cold_start)
                segment.put_annotation("Service", tracer.service)
            _invocation.segment = segment
            yield
    finally:
        _own_invocation.reset(token)
        if _invocation.fields is fields:
            _invocation.fields = {}
            _invocation.segment = None


def tracing_on(env: Mapping[str, str] | None = None) -> bool:
    """In Lambda, unless POWERTOOLS_TRACE_DISABLED or `chalice local` (Powertools' own rules)."""
    env = os.environ if env is None else env
    disabled = env.get("POWERTOOLS_TRACE_DISABLED", "false").strip().lower() in _TRUE
    return in_lambda(env) and not disabled and "AWS_CHALICE_CLI_MODE" not in env


def tracer(
    env: Mapping[str, str] | None = None, *, patch_modules: Sequence[str] = TRACED_MODULES
) -> Tracer | None:
    """Powertools' Tracer, patching `patch_modules`, where tracing is on; None elsewhere, and
    aws_xray_sdk is then never imported (Powertools' Tracer imports it even when disabled)."""
    env = os.environ if env is None else env
    if not tracing_on(env):
        return None
    from aws_lambda_powertools import Tracer  # noqa: PLC0415 - imports aws_xray_sdk

    service = env.get("POWERTOOLS_SERVICE_NAME") or NAMESPACE
    return Tracer(service=service, patch_modules=list(patch_modules))


def in_lambda(env: Mapping[str, str] | None = None) -> bool:
    return "AWS_LAMBDA_FUNCTION_NAME" in (os.environ if env is None else env)


def configure_logging(
    loggers: Iterable[str],
    *,
    level: int = logging.INFO,
    service: str | None = None,
    json_lines: bool | None = None,
) -> None:
    """Set the project's loggers' level; in Lambda (or with json_lines) write them as JSON lines
    on stdout, with the invocation's and the bound fields. The service is POWERTOOLS_SERVICE_NAME
    (else callqueue). Idempotent: a second call replaces the handler."""
    as_json = in_lambda() if json_lines is None else json_lines
    service = service or os.environ.get("POWERTOOLS_SERVICE_NAME") or NAMESPACE
    for name in loggers:
        logger = logging.getLogger(name)
        logger.setLevel(level)
        if not as_json:
            continue
        # Powertools is imported only where its formatter is used (it is in the Lambda package).
        from aws_lambda_powertools.logging.formatter import (  # noqa: PLC0415
            LambdaPowertoolsFormatter,
        )

        for handler in [h for h in logger.handlers if getattr(h, "callqueue", False)]:
            logger.removeHandler(handler)
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(LambdaPowertoolsFormatter(service=service))
        handler.addFilter(BoundFields())
        handler.callqueue = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        # Lambda's runtime puts its own plain-text handler on the root logger.
        logger.propagate = False


def stdout_in_lambda(line: str) -> None:
    """The production sink: stdout in Lambda (CloudWatch Logs extracts the metrics); elsewhere a
    DEBUG log line, so a terminal running the local pipeline is not flooded."""
    if in_lambda():
        sys.stdout.write(line + "\n")
        sys.stdout.flush()
    else:
        logging.getLogger(__name__).debug("metrics %s", line)


class Metrics:
    def __init__(
        self,
        stage: str,
        *,
        namespace: str = NAMESPACE,
        sink: Callable[[str], None] = stdout_in_lambda,
        clock: Callable[[], float] = time.time,
        high_resolution: Iterable[str] = HIGH_RESOLUTION,
    ) -> None:
        self._stage = stage
        self._high_resolution = frozenset(high_resolution)
        self._namespace = namespace
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        # (second, dimensions) -> metric name -> (unit, values); counts keep one running total.
        self._groups: dict[
            tuple[int, tuple[tuple[str, str], ...]], dict[str, tuple[str, list[float]]]
        ]
        self._groups = {}

    def count(self, name: str, n: float = 1, *, at: float | None = None, **dims: str) -> None:
        """Add n to a count, at time `at` (default now) with extra dimensions (e.g. Outcome)."""
        with self._lock:
            metrics = self._group(at, dims)
            _, values = metrics.setdefault(name, ("Count", [0.0]))
            values[0] += n

    def measure(
        self, name: str, value: float, unit: Unit, *, at: float | None = None, **dims: str
    ) -> None:
        """Record one value (a duration, a gauge); CloudWatch keeps statistics and percentiles."""
        with self._lock:
            self._group(at, dims).setdefault(name, (unit, []))[1].append(value)

    def timing(self, name: str, seconds: float, *, at: float | None = None, **dims: str) -> None:
        """A duration given in seconds, recorded in milliseconds."""
        self.measure(name, seconds * 1000.0, "Milliseconds", at=at, **dims)

    def flush(self) -> int:
        """Write what was collected as EMF lines and forget it; returns the lines written."""
        with self._lock:
            groups, self._groups = self._groups, {}
        lines = 0
        for (second, dims), metrics in sorted(groups.items()):
            for document in self._documents(second, dict(dims), metrics):
                self._sink(json.dumps(document, separators=(",", ":")))
                lines += 1
        return lines

    def discard(self) -> None:
        with self._lock:
            self._groups = {}

    def _group(
        self, at: float | None, dims: Mapping[str, str]
    ) -> dict[str, tuple[str, list[float]]]:
        second = int(self._clock() if at is None else at)
        key = (second, tuple(sorted({"Stage": self._stage, **dims}.items())))
        return self._groups.setdefault(key, {})

    def _definition(self, name: str, unit: str) -> dict[str, Any]:
        if name in self._high_resolution:
            return {"Name": name, "Unit": unit, "StorageResolution": 1}
        return {"Name": name, "Unit": unit}

    def _documents(
        self, second: int, dims: dict[str, str], metrics: Mapping[str, tuple[str, list[float]]]
    ) -> Iterator[dict[str, Any]]:
        pending = {name: list(values) for name, (_, values) in metrics.items()}
        while pending:
            values = {name: v[:MAX_VALUES] for name, v in pending.items()}
            pending = {name: v[MAX_VALUES:] for name, v in pending.items() if v[MAX_VALUES:]}
            yield {
                "_aws": {
                    "Timestamp": second * 1000,
                    "CloudWatchMetrics": [
                        {
                            "Namespace": self._namespace,
                            "Dimensions": [sorted(dims)],
                            "Metrics": [
                                self._definition(name, metrics[name][0]) for name in sorted(values)
                            ],
                        }
                    ],
                },
                **dims,
                **{name: v[0] if len(v) == 1 else v for name, v in values.items()},
            }


def record_responses(metrics: Metrics, envelopes: Iterable[Mapping[str, Any]]) -> None:
    """The Twilio call metrics of published response envelopes, each at the second its call
    started: calls, outcomes, errors by code, 429s, Twilio-Request-Duration,
    Twilio-Concurrent-Requests and the lag behind schedule. A `suppressed` row made no call."""
    for envelope in envelopes:
        timings = envelope.get("timings") or {}
        at = timings.get("started_at")
        outcome = str(envelope.get("outcome"))
        metrics.count("Outcomes", at=at, Outcome=outcome)
        if outcome == "suppressed":
            continue
        metrics.count("Calls", at=at)
        metrics.count("Calls", at=at, Api=str(envelope.get("api")))
        status = envelope.get("status")
        error = envelope.get("error")
        if status is None or status >= 400:
            metrics.count("Errors", at=at)
            code = (error or {}).get("code")
            if code is not None:
                metrics.count("Errors", at=at, ErrorCode=str(code))
        if status == 429:
            metrics.count("Throttled", at=at)
        if "lag_seconds" in timings:
            metrics.measure("ScheduleLag", float(timings["lag_seconds"]), "Seconds", at=at)
        headers = {k.lower(): v for k, v in (envelope.get("headers") or {}).items()}
        duration = _number(headers.get("twilio-request-duration"))
        if duration is not None:
            metrics.timing("TwilioRequestDuration", duration, at=at)
        concurrent = _number(headers.get("twilio-concurrent-requests"))
        if concurrent is not None:
            metrics.measure("TwilioConcurrentRequests", concurrent, "Count", at=at)


def _number(text: Any) -> float | None:
    """A header's numeric value; Twilio sends them as strings, absent on some errors."""
    if text is None:
        return None
    try:
        return float(text)
    except (TypeError, ValueError):
        return None
