"""The local runtime's settings: the rate, the emulated Twilio, and the deployment's waits and
retries shortened so that a local run ends in seconds; and what they become for the stack and
for the handlers."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path

from callqueue.local.emulator import DEFAULT_SLOW_SECONDS
from callqueue.local.faults import FaultSpec
from callqueue.local.triggers import DEPLOYED_WINDOWS_ENV
from chalicelib.config import DEFAULT_RATE_HEADROOM, DEFAULT_SLOT_TOLERANCE_SECONDS

# Lambda runs each instance in a sandbox of its own. Twenty instances' threads in one process
# waited for its one GIL: at 200 CPS the calls left p50 1.3 ms and p90 5.5 ms after their slots,
# 4.5% more than 10 ms late (their slots missed), and took p99 18 ms more to reach the emulator;
# in four processes p50 0.5 ms, p90 3.4 to 4.1 ms, 2.3 to 3.9% missed, p99 5 to 8 ms on the way.
# Where they may, those processes' threads run under the real-time policy
# (callqueue.local.worker_process.prioritize).
SENDER_PROCESSES = 4
# The local triggers gather a batch for at most a second (callqueue.local.triggers), so the
# senders are told that window too: told the deployed one, they would make rows visible that
# much earlier and hold every batch for it. Batches of 100 keep the claims of a batch, which the
# local moto serves one request at a time, within the rows' two seconds of lead. Unless the
# triggers run the deployed windows (bench/cost.py), or the variable is set.
LOCAL_SENDER_TRIGGER = {"SENDER_BATCH_SIZE": "100", "SENDER_BATCHING_WINDOW_SECONDS": "1"}
# Time a sender's batch may take to publish its outcomes after its last call's deadline.
PUBLISH_ALLOWANCE_SECONDS = 15
# A loaded machine's lateness on top of the stack's own waits before a run calls itself stalled.
STALL_SLACK_SECONDS = 60.0


@dataclass(frozen=True)
class Options:
    # -- the handlers' settings (chalicelib.config), waits and retries shorter than deployed --
    cps: int = 50
    window_seconds: int = 900
    # The account's calls per second, shared by all jobs (None: the same as cps).
    account_cps: int | None = None
    sender_limits: str = ""
    # As deployed.
    slot_tolerance_seconds: float = float(DEFAULT_SLOT_TOLERANCE_SECONDS)
    rate_headroom: float = float(DEFAULT_RATE_HEADROOM)
    max_attempts: int = 5
    # Retries back off from half a second locally (2 s in a deployment) so a run ends sooner.
    backoff_base_seconds: float = 0.5
    systemic_error_threshold: int = 3
    # A call not done after this many seconds is in doubt. Longer than a sender's batch can
    # take here (claims, slots, holds and calls against a busy moto), as the deployment's 90 s
    # is longer than the sender's 60 s Lambda timeout. Its half is a claimed row's deadline for
    # its call: 30 s holds twenty instances' rows at twice the account's rate (two jobs sharing
    # 100 CPS take 20 s a batch); with 15 s the last rows were given back and came in a 6 s tail.
    in_doubt_after_seconds: float = 60.0

    # -- the emulated Twilio --
    requests_log: Path | None = None
    faults: FaultSpec | None = None
    # Faults of the emulator's lists and fetches (a sender's look-ups), and how late a `slow`
    # fault answers (longer than a call's 10 s timeout by default).
    lookup_faults: FaultSpec | None = None
    slow_seconds: float = DEFAULT_SLOW_SECONDS
    latency: float = 0.0
    concurrency_limit: int | None = None
    seed: int | None = None

    # -- the stack's queues (its parameters) --
    # Locally a crashed batch comes back after seconds, not the deployment's 6 minutes (the send
    # queue's is longer: send_visibility_timeout).
    visibility_timeout: int = 15
    max_receive_count: int = 5

    # -- the runtime itself --
    stage: str = "local"
    # Schedules (the reconciler) run every few seconds locally, not every minute.
    schedule_period: float = 2.0
    # Processes serving the sender's invocations, each to the least busy (0: the runtime's own
    # interpreter); callqueue.local.worker_process.
    sender_processes: int = SENDER_PROCESSES
    # Serve the REST API with `chalice local` on this loopback port (None: no API).
    api_port: int | None = None

    @property
    def send_visibility_timeout(self) -> int:
        """The send queue's visibility timeout: longer than a sender's batch can run (its rows'
        call deadline, half the in-doubt time, then its publishing), as the deployment's 360 s
        is longer than the sender's 60 s timeout. With 15 s against a 30 s deadline, rows of a
        batch still calling were delivered again, each a claim that found it taken and a
        message put back. A crashed batch's rows come back no later for it: their claims hold
        them until the in-doubt time anyway."""
        deadline = math.ceil(self.in_doubt_after_seconds / 2)
        return max(self.visibility_timeout, deadline + PUBLISH_ALLOWANCE_SECONDS)

    @property
    def sender_timeout_seconds(self) -> float:
        """The sender's invocations end after this long, as Lambda ends them at the function's
        timeout (callqueue.local.invocation_deadline). In the deployment's proportion to the
        in-doubt time (60 s to 90 s), so a batch is over before another delivery may take its
        rows over; and no longer than the send queue's visibility timeout, as Lambda requires
        of a queue's trigger."""
        return min(self.in_doubt_after_seconds * 2 / 3, float(self.send_visibility_timeout))

    @property
    def stall_limit_seconds(self) -> float:
        """How long a run may see no row settle and nothing reach Twilio before it gives up.
        A release window may pass with nothing due; then a call whose answer was lost waits out
        the in-doubt time before its look-up, and when that look-up finds no slot on the account
        its message comes back only after the send queue's visibility timeout. A fixed 120 s was
        shorter than that chain (60 s + 45 s) on a loaded machine, and a faulted run gave up
        with a row still settling."""
        quiet = self.in_doubt_after_seconds + self.send_visibility_timeout
        return float(self.window_seconds) + quiet + STALL_SLACK_SECONDS

    def stack_parameters(self) -> dict[str, str]:
        """The infrastructure template's parameters for this runtime's stack."""
        return {
            "Stage": self.stage,
            "SendVisibilityTimeout": str(self.send_visibility_timeout),
            "MaxReceiveCount": str(self.max_receive_count),
            "SinkVisibilityTimeout": str(self.visibility_timeout),
        }

    def inbound_url(self) -> str | None:
        """Where the emulator posts replies (`EmulatorProcess.reply`): the runtime's API, when it
        runs."""
        return None if self.api_port is None else f"http://127.0.0.1:{self.api_port}/twilio/inbound"

    def handler_settings(self, twilio_base_url: str, twilio_secret_id: str) -> dict[str, str]:
        """The handlers' settings besides the stack's outputs, as their environment variables."""
        return {
            "CALLQUEUE_STAGE": self.stage,
            "TWILIO_BASE_URL": twilio_base_url,
            "TWILIO_SECRET_ID": twilio_secret_id,
            "TWILIO_CREDENTIALS": "test",
            "CPS": str(self.cps),
            "ACCOUNT_CPS": str(self.account_cps or self.cps),
            "SENDER_LIMITS": self.sender_limits,
            "SLOT_TOLERANCE_SECONDS": str(self.slot_tolerance_seconds),
            "RATE_HEADROOM": str(self.rate_headroom),
            # moto answers a request at a time (moto_patches.locking.BackendLock) and takes about
            # a second to serialize a 1 MB page of results, during which every call's requests
            # wait: the reconciler reads a finished job's results in small pages.
            "RESULTS_PAGE_SIZE": "200",
            # The emulated account's concurrency limit is the one the senders are told of.
            "TWILIO_CONCURRENCY_LIMIT": str(self.concurrency_limit or ""),
            "WINDOW_SECONDS": str(self.window_seconds),
            "MAX_ATTEMPTS": str(self.max_attempts),
            "BACKOFF_BASE_SECONDS": str(self.backoff_base_seconds),
            "SYSTEMIC_ERROR_THRESHOLD": str(self.systemic_error_threshold),
            "IN_DOUBT_AFTER_SECONDS": str(self.in_doubt_after_seconds),
            # The REST route's URL, when the runtime's API runs; the runtime points the senders
            # at the callback function's URL instead (LocalRuntime._start_callback_url).
            "STATUS_CALLBACK_URL": (
                f"http://127.0.0.1:{self.api_port}/twilio/status"
                if self.api_port is not None
                else ""
            ),
            "INBOUND_WEBHOOK_URL": self.inbound_url() or "",
            **local_sender_trigger(),
        }


def local_sender_trigger() -> dict[str, str]:
    """The send trigger's batch size and window for a local run (LOCAL_SENDER_TRIGGER), each
    unless set in the environment; none when the triggers run the deployed windows."""
    if os.environ.get(DEPLOYED_WINDOWS_ENV):
        return {}
    return {name: os.environ.get(name) or value for name, value in LOCAL_SENDER_TRIGGER.items()}
