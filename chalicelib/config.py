"""Settings for every handler, read once from the environment.

In AWS the environment comes from `.chalice/config.json` (per stage, written by the infrastructure
deploy from the stack's outputs); locally the runtime sets the same variables from the same stack
deployed into moto. Decorator arguments in app.py (bucket, queue, topic names) come from here too,
because Chalice reads them when it imports the app to deploy it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from chalicelib.core.metering import SenderLimits
from chalicelib.errors import CallqueueError

# SQS cannot delay a message longer than 15 minutes, and a chunk's rows are enqueued with delays
# spanning one window, so a window can be at most that long.
MAX_WINDOW_SECONDS = 900
# Lambda's ceiling on the batch size of an SQS trigger of a standard queue.
MAX_SENDER_BATCH = 10_000
# Lambda allows a batching window of 300 s; the sender's is at most this: its rows are made
# visible that much (and 2 s more) before they are due, and each batch holds them until then,
# within the function's minute.
MAX_SENDER_BATCHING_WINDOW = 10
# Slots are laid out at 99% of the account's rate: a sliding second then holds ACCOUNT_CPS calls
# even when some reach Twilio up to 10 ms later than their slots, at any rate (the slots of
# 1.01 s at 99% are 99.99% of a second's).
DEFAULT_RATE_HEADROOM = "0.01"
# ... and a call more than 5 ms late for its slot, as it is about to be sent, is not made then (it
# takes a fresh slot): half the headroom's budget, the other half left for the request's way to
# Twilio. Measured with the local stack at 200 CPS (callqueue run, 3,000 rows): calls passed this
# check p50 0.05 ms, p99 2.5 ms after their slots, and reached the emulator p99 0.9 ms, at most
# 3.3 ms after it (the kernel's receive time). A tighter tolerance wastes more slots on a loaded
# machine (each missed slot goes unused); a looser one needs more headroom.
DEFAULT_SLOT_TOLERANCE_SECONDS = "0.005"
MAX_RATE_HEADROOM = 0.5

CredentialKind = Literal["test", "live"]
ApiAuth = Literal["api_key", "iam"]


class ConfigError(CallqueueError, ValueError):
    """A setting is missing or out of range."""


@dataclass(frozen=True)
class Settings:
    stage: str
    source_bucket: str
    holding_bucket: str
    process_bucket: str
    reports_bucket: str
    send_queue: str
    dead_letter_queue: str
    response_topic_arn: str
    jobs_table: str
    state_machine_arn: str
    twilio_secret_id: str
    twilio_credentials: CredentialKind
    twilio_base_url: str | None
    cps: int
    window_seconds: int
    max_attempts: int
    backoff_base_seconds: float
    sender_batch_size: int
    sender_max_concurrency: int
    sender_batching_window_seconds: int
    twilio_timeout_seconds: float
    archive_bucket: str
    results_table: str
    suppression_table: str
    archive_queue: str
    results_queue: str
    router_queue: str
    suppression_queue: str
    systemic_queue: str
    error_bus: str
    alert_topic_arn: str
    retention_days: int
    systemic_error_threshold: int
    stalled_after_seconds: int
    idempotency_table: str
    in_doubt_after_seconds: float
    rate_limit_table: str
    # The account's calls per second, shared by every job (CPS is a job's own pace).
    account_cps: float
    # Per-sender limits: "" (off), "auto" (Twilio's defaults by kind of number), or overrides
    # such as "auto,+15005550006=10" (chalicelib.core.metering.SenderLimits).
    sender_limits: str
    # How many of a batch's calls may be in flight at once.
    sender_call_concurrency: int
    # The account's Twilio concurrency limit, if known: readings near it slow the senders.
    twilio_concurrency_limit: int | None
    # How late a metered call may go for its slot before it takes a fresh one.
    slot_tolerance_seconds: float
    # The share of the account's rate left unused (0.01: slots at 99% of ACCOUNT_CPS), so a call
    # that reaches Twilio a little late cannot put a sliding second over ACCOUNT_CPS.
    rate_headroom: float
    # Items per Query page when a job's results are read (None: DynamoDB's 1 MB pages).
    results_page_size: int | None
    # The public URL of POST /twilio/status as Twilio calls it (API Gateway's host and stage path
    # are not what the function sees), signed by Twilio; empty: no status callbacks are asked for.
    status_callback_url: str | None
    # How the job routes are protected in API Gateway: an API key or IAM (SigV4) authorisation.
    api_auth: ApiAuth
    # Rows accepted in the body of POST /jobs; larger files go through a presigned upload.
    api_max_rows: int
    # How long a job's content stays claimed (chalicelib.intake.content): the same bytes uploaded
    # again within it are a duplicate unless the upload asks for a resend.
    content_retention_days: int = 30

    def __post_init__(self) -> None:
        if self.cps < 1:
            raise ConfigError(f"CPS must be at least 1, got {self.cps}")
        if not 1 <= self.window_seconds <= MAX_WINDOW_SECONDS:
            raise ConfigError(
                f"window must be 1..{MAX_WINDOW_SECONDS} seconds (SQS's delay ceiling), "
                f"got {self.window_seconds}"
            )
        if self.account_cps <= 0:
            raise ConfigError(f"ACCOUNT_CPS must be above 0, got {self.account_cps}")
        if self.results_page_size is not None and self.results_page_size < 1:
            raise ConfigError(f"RESULTS_PAGE_SIZE must be at least 1, got {self.results_page_size}")
        if not 0 <= self.rate_headroom < MAX_RATE_HEADROOM:
            raise ConfigError(
                f"RATE_HEADROOM must be 0..{MAX_RATE_HEADROOM}, got {self.rate_headroom}"
            )
        if not self.slot_tolerance_seconds >= 0:  # NaN too
            raise ConfigError(
                f"SLOT_TOLERANCE_SECONDS must be 0 or more, got {self.slot_tolerance_seconds}"
            )
        try:
            SenderLimits.parse(self.sender_limits)
        except ValueError as error:
            raise ConfigError(f"SENDER_LIMITS: {error}") from None
        if self.max_attempts < 1:
            raise ConfigError(f"max attempts must be at least 1, got {self.max_attempts}")
        if not 1 <= self.sender_batch_size <= MAX_SENDER_BATCH:
            raise ConfigError(f"SENDER_BATCH_SIZE must be 1..{MAX_SENDER_BATCH}")
        if not 0 <= self.sender_batching_window_seconds <= MAX_SENDER_BATCHING_WINDOW:
            raise ConfigError(
                f"SENDER_BATCHING_WINDOW_SECONDS must be 0..{MAX_SENDER_BATCHING_WINDOW}"
                " (a sender's batch holds its rows until they are due)"
            )
        if self.sender_batch_size > 10 and self.sender_batching_window_seconds < 1:
            # Lambda's rule for SQS triggers: batches above one receive need a batching window.
            raise ConfigError("a SENDER_BATCH_SIZE above 10 needs SENDER_BATCHING_WINDOW_SECONDS")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        stage = env.get("CALLQUEUE_STAGE", "dev")
        prefix = f"callqueue-{stage}"
        region = env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1"
        account = env.get("CALLQUEUE_ACCOUNT_ID", "000000000000")
        credentials = env.get("TWILIO_CREDENTIALS", "test")
        if credentials not in ("test", "live"):
            raise ConfigError(f"TWILIO_CREDENTIALS must be 'test' or 'live', got {credentials!r}")
        return cls(
            stage=stage,
            source_bucket=env.get("SOURCE_BUCKET", f"{prefix}-source"),
            holding_bucket=env.get("HOLDING_BUCKET", f"{prefix}-holding"),
            process_bucket=env.get("PROCESS_BUCKET", f"{prefix}-process"),
            reports_bucket=env.get("REPORTS_BUCKET", f"{prefix}-reports"),
            send_queue=env.get("SEND_QUEUE", f"{prefix}-send"),
            dead_letter_queue=env.get("DEAD_LETTER_QUEUE", f"{prefix}-send-dlq"),
            response_topic_arn=env.get(
                "RESPONSE_TOPIC_ARN", f"arn:aws:sns:{region}:{account}:{prefix}-responses"
            ),
            jobs_table=env.get("JOBS_TABLE", f"{prefix}-jobs"),
            state_machine_arn=env.get(
                "STATE_MACHINE_ARN",
                f"arn:aws:states:{region}:{account}:stateMachine:{prefix}-release",
            ),
            twilio_secret_id=env.get("TWILIO_SECRET_ID", "callqueue/twilio"),
            twilio_credentials=credentials,  # type: ignore[arg-type]  # checked above
            twilio_base_url=env.get("TWILIO_BASE_URL") or None,
            cps=_int(env, "CPS", 10),
            window_seconds=_int(env, "WINDOW_SECONDS", MAX_WINDOW_SECONDS),
            max_attempts=_int(env, "MAX_ATTEMPTS", 5),
            backoff_base_seconds=float(env.get("BACKOFF_BASE_SECONDS", "2")),
            sender_batch_size=_int(env, "SENDER_BATCH_SIZE", 100),
            sender_max_concurrency=_int(env, "SENDER_MAX_CONCURRENCY", 50),
            sender_batching_window_seconds=_int(env, "SENDER_BATCHING_WINDOW_SECONDS", 1),
            twilio_timeout_seconds=float(env.get("TWILIO_TIMEOUT_SECONDS", "10")),
            archive_bucket=env.get("ARCHIVE_BUCKET", f"{prefix}-archive"),
            results_table=env.get("RESULTS_TABLE", f"{prefix}-results"),
            suppression_table=env.get("SUPPRESSION_TABLE", f"{prefix}-suppression"),
            archive_queue=env.get("ARCHIVE_QUEUE", f"{prefix}-archive"),
            results_queue=env.get("RESULTS_QUEUE", f"{prefix}-results"),
            router_queue=env.get("ROUTER_QUEUE", f"{prefix}-router"),
            suppression_queue=env.get("SUPPRESSION_QUEUE", f"{prefix}-suppression"),
            systemic_queue=env.get("SYSTEMIC_QUEUE", f"{prefix}-systemic"),
            error_bus=env.get("ERROR_BUS", f"{prefix}-errors"),
            alert_topic_arn=env.get(
                "ALERT_TOPIC_ARN", f"arn:aws:sns:{region}:{account}:{prefix}-alerts"
            ),
            retention_days=_int(env, "RETENTION_DAYS", 30),
            systemic_error_threshold=_int(env, "SYSTEMIC_ERROR_THRESHOLD", 5),
            stalled_after_seconds=_int(env, "STALLED_AFTER_SECONDS", 1800),
            idempotency_table=env.get("IDEMPOTENCY_TABLE", f"{prefix}-calls"),
            # Longer than a call can take (Twilio timeout, hold, publish) before a started call
            # that never recorded its outcome is given up as unknown.
            in_doubt_after_seconds=float(env.get("IN_DOUBT_AFTER_SECONDS", "90")),
            rate_limit_table=env.get("RATE_LIMIT_TABLE", f"{prefix}-rate"),
            account_cps=float(env.get("ACCOUNT_CPS") or _int(env, "CPS", 10)),
            sender_limits=env.get("SENDER_LIMITS", ""),
            sender_call_concurrency=_int(env, "SENDER_CALL_CONCURRENCY", 50),
            twilio_concurrency_limit=_int(env, "TWILIO_CONCURRENCY_LIMIT", 0) or None,
            slot_tolerance_seconds=float(
                env.get("SLOT_TOLERANCE_SECONDS") or DEFAULT_SLOT_TOLERANCE_SECONDS
            ),
            rate_headroom=float(env.get("RATE_HEADROOM") or DEFAULT_RATE_HEADROOM),
            results_page_size=_int(env, "RESULTS_PAGE_SIZE", 0) or None,
            status_callback_url=env.get("STATUS_CALLBACK_URL") or None,
            api_auth=_api_auth(env.get("API_AUTH", "api_key")),
            api_max_rows=_int(env, "API_MAX_ROWS", 10_000),
            content_retention_days=_int(env, "CONTENT_RETENTION_DAYS", 30),
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from None


def _api_auth(raw: str) -> ApiAuth:
    if raw == "api_key":
        return "api_key"
    if raw == "iam":
        return "iam"
    raise ConfigError(f"API_AUTH must be 'api_key' or 'iam', got {raw!r}")
