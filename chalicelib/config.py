"""Settings for every handler, read once from the environment.

In AWS the environment comes from `.chalice/config.json` (per stage, written by the infrastructure
deploy from the stack's outputs); locally the runtime sets the same variables from the same stack
deployed into moto. Decorator arguments in app.py (bucket, queue, topic names) come from here too,
because Chalice reads them when it imports the app to deploy it.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from chalicelib.core.capacity import SQS_MAX_CONCURRENCY, SQS_MIN_CONCURRENCY, sender_concurrency
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
# The first of each is the default.
CREDENTIAL_KINDS: Final[tuple[CredentialKind, ...]] = ("test", "live")
API_AUTHS: Final[tuple[ApiAuth, ...]] = ("api_key", "iam")

_Value = TypeVar("_Value", int, float)
_Choice = TypeVar("_Choice", bound=str)


class ConfigError(CallqueueError, ValueError):
    """Settings that are missing, malformed or out of range: one line per problem, each naming
    its variable, so that one deploy shows every mistake rather than the first."""

    def __init__(self, *problems: str) -> None:
        super().__init__(*problems)
        self.problems = problems

    def __str__(self) -> str:
        return "\n".join(self.problems)


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
    # The region phone numbers typed in national format are read in ("US": "(415) 555-0100" is
    # +14155550100); None: such numbers are rejected, with a reason that says to set it.
    default_region: str | None = None
    # Rows all jobs together may release in one day (None: no limit), and the zone whose
    # midnight starts a day for it and for a job's max_per_day.
    account_daily_limit: int | None = None
    account_time_zone: str = "UTC"
    # The public URL of POST /twilio/inbound as Twilio calls it (set as the number's or Messaging
    # Service's incoming webhook); None: incoming messages are refused.
    inbound_webhook_url: str | None = None
    # The SSM parameter holding the deployed REST API's URL (set by `callqueue deploy`): where
    # the webhook URLs not set above come from (chalicelib.aws.api_url); None: no look-up.
    api_url_parameter: str | None = None
    # The SSM parameter holding the callback function's URL (written by the stack once the
    # function exists): where messages ask for status callbacks when STATUS_CALLBACK_URL is
    # unset (chalicelib.aws.api_url); None, or not written yet: the REST route's URL.
    callback_url_parameter: str | None = None
    # Whether messages and calls ask Twilio for their status callbacks (delivery reports). Off:
    # none are asked for (a row's own StatusCallback still is), which saves their cost; rows
    # then end sent, failed or unknown without a delivery status (docs/configuration.md).
    delivery_reports: bool = True

    def __post_init__(self) -> None:
        problems = self._out_of_range()
        if problems:
            raise ConfigError(*problems)

    def _out_of_range(self) -> list[str]:
        """What is wrong with the settings' values, one problem a line naming its variable."""
        problems = []
        if self.cps < 1:
            problems.append(f"CPS must be at least 1, got {self.cps}")
        if self.account_daily_limit is not None and self.account_daily_limit < 0:
            problems.append(
                f"ACCOUNT_DAILY_LIMIT must be 0 (none) or more, got {self.account_daily_limit}"
            )
        if not _is_zone(self.account_time_zone):
            problems.append(
                f"ACCOUNT_TIME_ZONE must be an IANA time zone such as America/New_York, "
                f"got {self.account_time_zone!r}"
            )
        if not 1 <= self.window_seconds <= MAX_WINDOW_SECONDS:
            problems.append(
                f"WINDOW_SECONDS must be 1..{MAX_WINDOW_SECONDS} (SQS's delay ceiling), "
                f"got {self.window_seconds}"
            )
        if self.account_cps <= 0:
            problems.append(f"ACCOUNT_CPS must be above 0, got {self.account_cps}")
        if self.results_page_size is not None and self.results_page_size < 1:
            problems.append(f"RESULTS_PAGE_SIZE must be at least 1, got {self.results_page_size}")
        if not 0 <= self.rate_headroom < MAX_RATE_HEADROOM:
            problems.append(
                f"RATE_HEADROOM must be 0..{MAX_RATE_HEADROOM}, got {self.rate_headroom}"
            )
        if not self.slot_tolerance_seconds >= 0:  # NaN too
            problems.append(
                f"SLOT_TOLERANCE_SECONDS must be 0 or more, got {self.slot_tolerance_seconds}"
            )
        try:
            SenderLimits.parse(self.sender_limits)
        except ValueError as error:
            problems.append(f"SENDER_LIMITS: {error}")
        if self.max_attempts < 1:
            problems.append(f"MAX_ATTEMPTS must be at least 1, got {self.max_attempts}")
        return problems + self._sender_trigger_problems() + self._region_problems()

    def _sender_trigger_problems(self) -> list[str]:
        problems = []
        if not 1 <= self.sender_batch_size <= MAX_SENDER_BATCH:
            problems.append(
                f"SENDER_BATCH_SIZE must be 1..{MAX_SENDER_BATCH}, got {self.sender_batch_size}"
            )
        if not 0 <= self.sender_batching_window_seconds <= MAX_SENDER_BATCHING_WINDOW:
            problems.append(
                f"SENDER_BATCHING_WINDOW_SECONDS must be 0..{MAX_SENDER_BATCHING_WINDOW}"
                " (a sender's batch holds its rows until they are due), "
                f"got {self.sender_batching_window_seconds}"
            )
        if not SQS_MIN_CONCURRENCY <= self.sender_max_concurrency <= SQS_MAX_CONCURRENCY:
            problems.append(
                f"SENDER_MAX_CONCURRENCY must be {SQS_MIN_CONCURRENCY}..{SQS_MAX_CONCURRENCY}"
                " (SQS's bounds), or 0 to size it from ACCOUNT_CPS,"
                f" got {self.sender_max_concurrency}"
            )
        if not problems and self.sender_batch_size > 10 and self.sender_batching_window_seconds < 1:
            # Lambda's rule for SQS triggers: batches above one receive need a batching window.
            problems.append("a SENDER_BATCH_SIZE above 10 needs SENDER_BATCHING_WINDOW_SECONDS")
        return problems

    def _region_problems(self) -> list[str]:
        if self.default_region is None:
            return []
        # Imported only when a region is set: phonenumbers is slow to load, and most handlers
        # read no phone number.
        from phonenumbers import SUPPORTED_REGIONS  # noqa: PLC0415

        if self.default_region in SUPPORTED_REGIONS:
            return []
        return [
            "DEFAULT_REGION must be a region code such as US or GB (ISO 3166-1), "
            f"got {self.default_region!r}"
        ]

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """The settings the environment gives; ConfigError lists every malformed or out-of-range
        variable at once."""
        read = _Reader(os.environ if env is None else env)
        values = read.settings()
        try:
            settings = cls(**values)
        except ConfigError as error:
            # A malformed variable was read as its default, so these are the other problems.
            raise ConfigError(*read.problems, *error.problems) from None
        if read.problems:
            raise ConfigError(*read.problems)
        return settings


# Names of resources: (setting, variable, the name when the variable is unset), the default a
# template over the stage's prefix, the region and the account.
_NAMES: Final[tuple[tuple[str, str, str], ...]] = (
    ("source_bucket", "SOURCE_BUCKET", "{prefix}-source"),
    ("holding_bucket", "HOLDING_BUCKET", "{prefix}-holding"),
    ("process_bucket", "PROCESS_BUCKET", "{prefix}-process"),
    ("reports_bucket", "REPORTS_BUCKET", "{prefix}-reports"),
    ("archive_bucket", "ARCHIVE_BUCKET", "{prefix}-archive"),
    ("send_queue", "SEND_QUEUE", "{prefix}-send"),
    ("dead_letter_queue", "DEAD_LETTER_QUEUE", "{prefix}-send-dlq"),
    ("archive_queue", "ARCHIVE_QUEUE", "{prefix}-archive"),
    ("results_queue", "RESULTS_QUEUE", "{prefix}-results"),
    ("router_queue", "ROUTER_QUEUE", "{prefix}-router"),
    ("suppression_queue", "SUPPRESSION_QUEUE", "{prefix}-suppression"),
    ("systemic_queue", "SYSTEMIC_QUEUE", "{prefix}-systemic"),
    ("jobs_table", "JOBS_TABLE", "{prefix}-jobs"),
    ("results_table", "RESULTS_TABLE", "{prefix}-results"),
    ("suppression_table", "SUPPRESSION_TABLE", "{prefix}-suppression"),
    ("rate_limit_table", "RATE_LIMIT_TABLE", "{prefix}-rate"),
    ("error_bus", "ERROR_BUS", "{prefix}-errors"),
    (
        "response_topic_arn",
        "RESPONSE_TOPIC_ARN",
        "arn:aws:sns:{region}:{account}:{prefix}-responses",
    ),
    ("alert_topic_arn", "ALERT_TOPIC_ARN", "arn:aws:sns:{region}:{account}:{prefix}-alerts"),
    (
        "state_machine_arn",
        "STATE_MACHINE_ARN",
        "arn:aws:states:{region}:{account}:stateMachine:{prefix}-release",
    ),
    ("twilio_secret_id", "TWILIO_SECRET_ID", "callqueue/twilio"),
)

# Whole numbers: (setting, variable, default); an empty variable is unset.
_INTEGERS: Final[tuple[tuple[str, str, int], ...]] = (
    ("window_seconds", "WINDOW_SECONDS", MAX_WINDOW_SECONDS),
    ("max_attempts", "MAX_ATTEMPTS", 5),
    # A sender instance waits from its batch's hand-over to its first row's time (a second or
    # two) whatever the batch's size: five seconds of rows a batch share that wait, where one
    # second's paid it five times (docs/decisions/sender-batches.md).
    ("sender_batch_size", "SENDER_BATCH_SIZE", 1000),
    ("sender_batching_window_seconds", "SENDER_BATCHING_WINDOW_SECONDS", 5),
    ("sender_call_concurrency", "SENDER_CALL_CONCURRENCY", 50),
    ("retention_days", "RETENTION_DAYS", 30),
    ("systemic_error_threshold", "SYSTEMIC_ERROR_THRESHOLD", 5),
    ("stalled_after_seconds", "STALLED_AFTER_SECONDS", 1800),
    ("api_max_rows", "API_MAX_ROWS", 10_000),
    ("content_retention_days", "CONTENT_RETENTION_DAYS", 30),
)

# Decimal numbers: (setting, variable, default); an empty variable is unset.
_DECIMALS: Final[tuple[tuple[str, str, float], ...]] = (
    ("backoff_base_seconds", "BACKOFF_BASE_SECONDS", 2.0),
    ("twilio_timeout_seconds", "TWILIO_TIMEOUT_SECONDS", 10.0),
    # Longer than a call can take (Twilio timeout, hold, publish) before a started call that
    # never recorded its outcome is given up as unknown.
    ("in_doubt_after_seconds", "IN_DOUBT_AFTER_SECONDS", 90.0),
    ("slot_tolerance_seconds", "SLOT_TOLERANCE_SECONDS", float(DEFAULT_SLOT_TOLERANCE_SECONDS)),
    ("rate_headroom", "RATE_HEADROOM", float(DEFAULT_RATE_HEADROOM)),
)


STATUS_PATH = "/twilio/status"
INBOUND_PATH = "/twilio/inbound"
# The variable naming the SSM parameter of the deployed REST API's URL.
API_URL_PARAMETER = "API_URL_PARAMETER"
# The variable naming the SSM parameter of the callback function's URL.
CALLBACK_URL_PARAMETER = "CALLBACK_URL_PARAMETER"


def inbound_url(env: Mapping[str, str]) -> str | None:
    """INBOUND_WEBHOOK_URL, or else the status callback URL's with the inbound route's path: both
    routes are on the same API."""
    explicit = env.get("INBOUND_WEBHOOK_URL")
    if explicit:
        return explicit
    status = env.get("STATUS_CALLBACK_URL") or ""
    if status.endswith(STATUS_PATH):
        return status[: -len(STATUS_PATH)] + INBOUND_PATH
    return None


class _Reader:
    """Reads the settings' variables from `env`. A malformed variable is noted in `problems`,
    naming it, and read as its default, so that reading goes on and finds every problem."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = env
        self.problems: list[str] = []

    def settings(self) -> dict[str, Any]:
        """Every field of Settings by name; Any: each reader gives its settings' type, and
        Settings checks the ranges."""
        env = self.env
        stage = env.get("CALLQUEUE_STAGE", "dev")
        where = {
            "prefix": f"callqueue-{stage}",
            "region": env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION") or "us-east-1",
            "account": env.get("CALLQUEUE_ACCOUNT_ID", "000000000000"),
        }
        cps = self.integer("CPS", 10)
        account_cps = self.decimal("ACCOUNT_CPS", float(cps))
        return {
            **{field: env.get(name, default.format(**where)) for field, name, default in _NAMES},
            **{field: self.integer(name, default) for field, name, default in _INTEGERS},
            **{field: self.decimal(name, default) for field, name, default in _DECIMALS},
            "stage": stage,
            "cps": cps,
            "twilio_credentials": self.one_of("TWILIO_CREDENTIALS", CREDENTIAL_KINDS),
            "api_auth": self.one_of("API_AUTH", API_AUTHS),
            "twilio_base_url": env.get("TWILIO_BASE_URL") or None,
            "status_callback_url": env.get("STATUS_CALLBACK_URL") or None,
            "inbound_webhook_url": inbound_url(env),
            "api_url_parameter": env.get(API_URL_PARAMETER) or None,
            "callback_url_parameter": env.get(CALLBACK_URL_PARAMETER) or None,
            "delivery_reports": self.one_of("DELIVERY_REPORTS", ("on", "off")) == "on",
            "sender_limits": env.get("SENDER_LIMITS", ""),
            "account_cps": account_cps,
            # 0 or unset: sized from the account's rate (chalicelib.core.capacity).
            "sender_max_concurrency": self.integer("SENDER_MAX_CONCURRENCY", 0)
            or sender_concurrency(account_cps),
            # 0 or unset: no known limit, and DynamoDB's own 1 MB pages.
            "twilio_concurrency_limit": self.integer("TWILIO_CONCURRENCY_LIMIT", 0) or None,
            "results_page_size": self.integer("RESULTS_PAGE_SIZE", 0) or None,
            "default_region": env.get("DEFAULT_REGION", "").strip().upper() or None,
            # 0 or unset: no daily limit.
            "account_daily_limit": self.integer("ACCOUNT_DAILY_LIMIT", 0) or None,
            "account_time_zone": env.get("ACCOUNT_TIME_ZONE", "").strip() or "UTC",
        }

    def integer(self, name: str, default: int) -> int:
        return self._parsed(name, int, default, "an integer")

    def decimal(self, name: str, default: float) -> float:
        return self._parsed(name, float, default, "a number")

    def _parsed(
        self, name: str, parse: Callable[[str], _Value], default: _Value, what: str
    ) -> _Value:
        """The variable `name` read by `parse`, or `default` when it is unset or empty."""
        raw = self.env.get(name)
        if raw is None or raw == "":
            return default
        try:
            return parse(raw)
        except ValueError:
            self.problems.append(f"{name} must be {what}, got {raw!r}")
            return default

    def one_of(self, name: str, choices: tuple[_Choice, ...]) -> _Choice:
        """The variable `name`, one of `choices` (the first when unset)."""
        raw = self.env.get(name, choices[0])
        for choice in choices:
            if raw == choice:
                return choice
        self.problems.append(f"{name} must be {' or '.join(map(repr, choices))}, got {raw!r}")
        return choices[0]


def _is_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ValueError, ZoneInfoNotFoundError):
        return False
    return True
