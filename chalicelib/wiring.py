"""The objects each handler needs, built on first use and kept for the container's lifetime.

Nothing is built at import: Chalice imports app.py to deploy it, and tests import it before
setting up moto. `reset()` drops everything (tests, and the local runtime between runs).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from functools import cache, partial
from typing import Any

import boto3
from botocore.config import Config
from chalice.app import ChaliceViewError

from chalicelib.api.callback_url import FunctionUrlCallbacks
from chalicelib.api.inbound import InboundMessages
from chalicelib.api.jobs import JobsApi
from chalicelib.api.plan import PlanApi
from chalicelib.api.rate import RateApi
from chalicelib.api.retry import RetryApi
from chalicelib.api.staged import StagedApi
from chalicelib.api.status import StatusCallbacks
from chalicelib.api.suppression import SuppressionApi
from chalicelib.aws.api_url import ApiUrl, WebhookUrls
from chalicelib.aws.buckets import Bucket, Storage
from chalicelib.aws.continuation import SplitContinuation
from chalicelib.aws.daily_counts import DailyCounts
from chalicelib.aws.event_bus import EventPublisher
from chalicelib.aws.jobs_table import JobStore
from chalicelib.aws.results_table import ResultsTable
from chalicelib.aws.send_queue import SendQueue
from chalicelib.aws.staging import StagedFiles
from chalicelib.config import Settings
from chalicelib.core.metering import SenderLimits
from chalicelib.core.schedule import visible_early_seconds
from chalicelib.core.spacing import account_rate
from chalicelib.errors import CallqueueError
from chalicelib.intake.checkpoint import Budget
from chalicelib.intake.content import DAY_SECONDS, ContentClaims
from chalicelib.intake.splitter import Splitter
from chalicelib.observability import Metrics, in_lambda
from chalicelib.release.enqueuer import Enqueuer
from chalicelib.release.keeper import LoopKeeper
from chalicelib.release.releaser import Releaser
from chalicelib.release.resume import resume
from chalicelib.release.state_machine import ReleaseLoop
from chalicelib.sending.ledger import CallLedger
from chalicelib.sending.limiter import RateLimiter
from chalicelib.sending.parts import FINISH_AFTER_CALLS_SECONDS, SenderParts, SenderSettings
from chalicelib.sending.publisher import ResponsePublisher
from chalicelib.sending.sender import Sender
from chalicelib.sending.suppression import SuppressionList, stopped_number
from chalicelib.twilio.credentials import load_auth_token, load_credentials
from chalicelib.twilio.gateway import CapturingHttpClient, TwilioGateway, make_gateway

# The twilio SDK logs every request's parameters (phone numbers, bodies) at INFO.
logging.getLogger("twilio.http_client").setLevel(logging.WARNING)

HttpClientFactory = Callable[[str | None, float], CapturingHttpClient]
_http_client_factory: HttpClientFactory = CapturingHttpClient
_session_factory: Callable[[], boto3.session.Session] = boto3.session.Session


def use_twilio_http_client(factory: HttpClientFactory) -> None:
    """Replace how the Twilio HTTP client is built (the local runtime injects its faults here)."""
    global _http_client_factory  # noqa: PLW0603
    _http_client_factory = factory
    reset()


def use_boto3_session(
    factory: Callable[[], boto3.session.Session], *, max_pool_connections: int = 50
) -> None:
    """Replace how boto3 sessions are made (the local runtime counts AWS requests this way, and
    its clients serve every handler at once, so it gives them a larger connection pool)."""
    global _session_factory, _CLIENT_CONFIG  # noqa: PLW0603
    _session_factory = factory
    _CLIENT_CONFIG = Config(max_pool_connections=max_pool_connections)
    reset()


@cache
def settings() -> Settings:
    return Settings.from_env()


@cache
def metrics() -> Metrics:
    """The container's metrics (EMF lines on stdout in Lambda); each user flushes its own."""
    return Metrics(settings().stage)


# A sender has up to SENDER_CALL_CONCURRENCY calls in flight, each using DynamoDB around its
# call; botocore's default pool of 10 connections would make them reconnect.
_CLIENT_CONFIG = Config(max_pool_connections=50)
_clients: dict[str, Any] = {}
_clients_lock = threading.Lock()


class AwsEnvironmentMissing(CallqueueError, ChaliceViewError):
    """No AWS region or credentials: the app runs outside Lambda without a stack to reach (plain
    `chalice local`). A route answers 503 with this message instead of botocore's 500."""

    STATUS_CODE = 503


def _session() -> boto3.session.Session:
    session = _session_factory()
    missing = [
        what
        for what, absent in (
            ("region", session.region_name is None),
            ("credentials", session.get_credentials() is None),
        )
        if absent
    ]
    if missing:
        raise AwsEnvironmentMissing(
            f"no AWS {' or '.join(missing)}: this app reaches a stage's stack. Locally, run "
            "`callqueue up` (the local stack, and this API on it); for a deployed stage, set "
            "AWS_DEFAULT_REGION, credentials and CALLQUEUE_STAGE, or use `callqueue chalice local`"
        )
    return session


def _client(service: str) -> Any:
    # One client per service and container: making one loads its API model, which costs more
    # than many calls. Concurrent first uses (several sender batches at once) share it.
    with _clients_lock:
        if service not in _clients:
            _clients[service] = _session().client(  # type: ignore[call-overload]
                service, config=_CLIENT_CONFIG
            )
        return _clients[service]


def storage() -> Storage:
    return Storage(_client("s3"))


def jobs() -> JobStore:
    return JobStore(_client("dynamodb"), settings().jobs_table)


@cache
def send_queue() -> SendQueue:
    s = settings()
    return SendQueue(
        _client("sqs"),
        s.send_queue,
        s.dead_letter_queue,
        visible_early=visible_early_seconds(s.sender_batching_window_seconds),
    )


@cache
def splitter() -> Splitter:
    loop = ReleaseLoop(_client("stepfunctions"), settings().state_machine_arn)
    return Splitter(storage(), jobs(), loop, settings(), claims=content_claims(), metrics=metrics())


def split_budget(bucket: str, key: str, context: Any) -> Budget | None:
    """The time a split of `key` has in this Lambda invocation, and how it continues in the
    next; None outside Lambda (the local runtime, tests), where a split runs to its end."""
    if context is None or not in_lambda():
        return None
    continuation = SplitContinuation(_client("lambda"), context.function_name)
    return Budget(context.get_remaining_time_in_millis, lambda: continuation.start(bucket, key))


def content_claims() -> ContentClaims:
    s = settings()
    retention = s.content_retention_days * DAY_SECONDS
    return ContentClaims(_client("dynamodb"), s.jobs_table, retention_seconds=retention)


@cache
def release_loop() -> ReleaseLoop:
    return ReleaseLoop(_client("stepfunctions"), settings().state_machine_arn)


@cache
def releaser() -> Releaser:
    s = settings()
    return Releaser(
        storage(),
        jobs(),
        s.holding_bucket,
        s.process_bucket,
        loop=release_loop(),
        daily=DailyCounts(_client("dynamodb"), s.jobs_table),
        daily_limit=s.account_daily_limit,
        account_zone=s.account_time_zone,
    )


@cache
def enqueuer() -> Enqueuer:
    return Enqueuer(storage(), send_queue(), metrics=metrics())


@cache
def gateway() -> TwilioGateway:
    s = settings()
    credentials = load_credentials(
        _client("secretsmanager"), s.twilio_secret_id, s.twilio_credentials
    )
    http = _http_client_factory(s.twilio_base_url, s.twilio_timeout_seconds)
    # DELIVERY_REPORTS=off: no status callbacks asked for (the routes still take earlier ones).
    status = webhook_urls().status if s.delivery_reports else None
    return make_gateway(credentials, http, status_callback=status)


@cache
def webhook_urls() -> WebhookUrls:
    """The webhook URLs: the settings', or else the deployed API's, read from SSM on first need."""
    s = settings()
    api = None if s.api_url_parameter is None else ApiUrl(_client("ssm"), s.api_url_parameter)
    function = (
        None
        if s.callback_url_parameter is None
        else ApiUrl(_client("ssm"), s.callback_url_parameter)
    )
    return WebhookUrls(s.status_callback_url, s.inbound_webhook_url, api, function)


@cache
def ledger() -> CallLedger:
    s = settings()
    return CallLedger(
        _client("dynamodb"),
        # One item a row, both the call's claim and its result (docs/decisions/one-item-per-row.md).
        s.results_table,
        in_doubt_after=s.in_doubt_after_seconds,
        retention_days=s.retention_days,
    )


@cache
def limiter() -> RateLimiter:
    s = settings()
    # Spaced for the calls' lateness as well as the headroom (chalicelib.core.spacing).
    rate = account_rate(s.account_cps, s.rate_headroom, s.slot_tolerance_seconds)
    return RateLimiter(_client("dynamodb"), s.rate_limit_table, rate=rate)


@cache
def sender() -> Sender:
    s = settings()
    parts = SenderParts(
        gateway,
        send_queue(),
        ResponsePublisher(_client("sns"), s.response_topic_arn),
        ledger(),
        jobs=jobs().get,
        suppressed=suppression().suppressed,
        suppressed_early=partial(suppression().suppressed, consistent=False),
        stops=stopped_number,
        suppress=suppression().add_from,
        limiter=limiter(),
    )
    return Sender(
        parts,
        SenderSettings(
            max_attempts=s.max_attempts,
            backoff_base=s.backoff_base_seconds,
            senders=SenderLimits.parse(s.sender_limits),
            concurrency=s.sender_call_concurrency,
            concurrency_limit=s.twilio_concurrency_limit,
            late_tolerance=s.slot_tolerance_seconds,
            visible_early=visible_early_seconds(s.sender_batching_window_seconds),
            lookup_timeout=1.5 * s.twilio_timeout_seconds,
            finish_seconds=s.twilio_timeout_seconds + FINISH_AFTER_CALLS_SECONDS,
        ),
    )


def invocation_end(context: Any) -> float | None:
    """When Lambda ends this invocation, on the sender's clock; None outside Lambda's context
    (tests that call a handler without one)."""
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    return None if remaining is None else time.time() + remaining() / 1000.0


# -- tables the sender, the API and the sinks share ----------------------------------------------


@cache
def suppression() -> SuppressionList:
    return SuppressionList(_client("dynamodb"), settings().suppression_table)


@cache
def results() -> ResultsTable:
    s = settings()
    return ResultsTable(
        _client("dynamodb"),
        s.results_table,
        retention_days=s.retention_days,
        page_size=s.results_page_size,
        metrics=metrics(),
    )


# -- the REST API --------------------------------------------------------------------------------


@cache
def jobs_api() -> JobsApi:
    store = jobs()
    # Presigned URLs signed with SigV4: it signs the upload's metadata headers by name, and
    # SigV2 is refused by newer regions and for KMS-encrypted objects.
    s3 = _session().client("s3", config=Config(signature_version="s3v4"))
    s = settings()
    return JobsApi(
        Bucket(s3, s.source_bucket),
        Bucket(s3, s.reports_bucket),
        store,
        s,
        progress=results().progress,
        resume=lambda job_id, now: resume(store, job_id, now=now),
        loops=LoopKeeper(store, release_loop()),
        staged=staged_files(),
    )


@cache
def staged_files() -> StagedFiles:
    """HOLDING's staged files, with presigned URLs signed with SigV4 as jobs_api's."""
    s3 = _session().client("s3", config=Config(signature_version="s3v4"))
    return StagedFiles(s3, settings().holding_bucket)


def staged_api() -> StagedApi:
    return StagedApi(staged_files())


@cache
def plan_api() -> PlanApi:
    return PlanApi(settings(), staged=staged_files())


@cache
def rate_api() -> RateApi:
    return RateApi(jobs(), release_loop())


def suppression_api() -> SuppressionApi:
    return SuppressionApi(suppression(), settings().default_region)


@cache
def retry_api() -> RetryApi:
    s3, s = _client("s3"), settings()
    holding, source = Bucket(s3, s.holding_bucket), Bucket(s3, s.source_bucket)
    return RetryApi(jobs(), holding, source, results().outcomes)


@cache
def status_callbacks() -> StatusCallbacks:
    s = settings()
    return StatusCallbacks(
        webhook_urls().status_route,
        cache(
            lambda: load_auth_token(
                _client("secretsmanager"), s.twilio_secret_id, s.twilio_credentials
            )
        ),
        results(),
        EventPublisher(_client("events"), s.error_bus),
        ledger(),
        metrics(),
    )


@cache
def callback_function() -> FunctionUrlCallbacks:
    """The status callbacks through the callback function's URL (chalicelib.api.callback_url)."""
    return FunctionUrlCallbacks(status_callbacks())


@cache
def inbound_messages() -> InboundMessages:
    s = settings()
    secrets = _client("secretsmanager")
    return InboundMessages(
        webhook_urls().inbound,
        cache(lambda: load_auth_token(secrets, s.twilio_secret_id, s.twilio_credentials)),
        cache(
            lambda: load_credentials(secrets, s.twilio_secret_id, s.twilio_credentials).account_sid
        ),
        suppression(),
        metrics(),
    )


# What else keeps objects built from these clients (downstream.wiring) registers here.
_on_reset: list[Callable[[], None]] = []


def on_reset(clear: Callable[[], None]) -> None:
    """Have `clear` run on every reset(): a wiring module of another package keeps objects
    built from this module's clients and settings."""
    _on_reset.append(clear)


def client(service: str) -> Any:
    """The container's boto3 client for `service` (shared with downstream.wiring)."""
    return _client(service)


def reset() -> None:
    with _clients_lock:
        _clients.clear()
    for clear in _on_reset:
        clear()
    for cached in (
        settings,
        metrics,
        send_queue,
        splitter,
        release_loop,
        releaser,
        enqueuer,
        gateway,
        webhook_urls,
        sender,
        ledger,
        limiter,
        suppression,
        results,
        jobs_api,
        staged_files,
        plan_api,
        rate_api,
        retry_api,
        status_callbacks,
        callback_function,
        inbound_messages,
    ):
        cached.cache_clear()
