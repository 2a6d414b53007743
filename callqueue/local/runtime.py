"""The local runtime: the whole pipeline on one machine.

moto runs in server mode on loopback in a process of its own (callqueue.local.moto_server),
with the deployment's own CloudFormation template deployed into it; the Twilio emulator runs
beside it, in a process of its own too (callqueue.local.emulator_process); the real Chalice
handlers run in this process, driven by the app's own event sources (callqueue.local.triggers),
and the real state machine runs on moto's Step Functions interpreter, whose Lambda tasks reach
the handlers through a function host (callqueue.local.lambdas).
"""

from __future__ import annotations

import gc
import importlib
import json
import logging
import math
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import requests
from botocore.config import Config

from callqueue.deploy.moto_stack import deploy_into_moto, expose_state_machine_to_interpreter
from callqueue.deploy.stack import PROJECT_DIR
from callqueue.local import lambdas
from callqueue.local.api_server import ApiServer
from callqueue.local.emulator import (
    DEFAULT_ACCOUNT_SID,
    DEFAULT_AUTH_TOKEN,
    DEFAULT_SLOW_SECONDS,
)
from callqueue.local.emulator_process import EmulatorProcess
from callqueue.local.faults import FaultSpec
from callqueue.local.triggers import Triggers
from callqueue.local.worker_process import (
    AwsRequestCounter,
    CrashingHttpClient,
    Worker,
    relax_garbage_collection,
)
from chalicelib import wiring
from chalicelib.aws.buckets import rejects_key
from chalicelib.aws.jobs_table import JobStore
from chalicelib.config import DEFAULT_RATE_HEADROOM, DEFAULT_SLOT_TOLERANCE_SECONDS
from chalicelib.core.jobs import Job
from chalicelib.intake.splitter import job_id_for
from chalicelib.twilio.gateway import CapturingHttpClient
from downstream.reconcile import read_rejects_csv

log = logging.getLogger(__name__)

REGION = "us-east-1"
# The app's sender: its handler runs in processes of its own (Options.sender_processes).
SENDER_HANDLER = "handle_send_batch"
# Lambda runs each instance in a sandbox of its own. Twenty instances' threads in one process
# waited for its one GIL: at 200 CPS the calls left p50 1.3 ms and p90 5.5 ms after their slots,
# 4.5% more than 10 ms late (their slots missed), and took p99 18 ms more to reach the emulator;
# in four processes p50 0.5 ms, p90 3.4 to 4.1 ms, 2.3 to 3.9% missed, p99 5 to 8 ms on the way.
SENDER_PROCESSES = 4
# Where they may, those processes' threads run under the real-time policy
# (callqueue.local.worker_process.prioritize).
SECRET_ID = "callqueue/twilio"  # noqa: S105 - the secret's name
FINAL = ("sent", "failed", "unknown", "dead_lettered", "suppressed")


# Time a sender's batch may take to publish its outcomes after its last call's deadline.
PUBLISH_ALLOWANCE_SECONDS = 15


@dataclass(frozen=True)
class Options:
    cps: int = 50
    window_seconds: int = 900
    stage: str = "local"
    requests_log: Path | None = None
    faults: FaultSpec | None = None
    # Faults of the emulator's lists and fetches (a sender's look-ups), and how late a `slow`
    # fault answers (longer than a call's 10 s timeout by default).
    lookup_faults: FaultSpec | None = None
    slow_seconds: float = DEFAULT_SLOW_SECONDS
    latency: float = 0.0
    concurrency_limit: int | None = None
    # The account's calls per second, shared by all jobs (None: the same as cps).
    account_cps: int | None = None
    sender_limits: str = ""
    # As deployed (chalicelib.config).
    slot_tolerance_seconds: float = float(DEFAULT_SLOT_TOLERANCE_SECONDS)
    # Processes serving the sender's invocations, each to the least busy (0: the runtime's own
    # interpreter); callqueue.local.worker_process.
    sender_processes: int = SENDER_PROCESSES
    rate_headroom: float = float(DEFAULT_RATE_HEADROOM)
    # Locally a crashed batch comes back after seconds, not the deployment's 6 minutes (the send
    # queue's is longer: send_visibility_timeout).
    visibility_timeout: int = 15
    max_receive_count: int = 5
    max_attempts: int = 5
    # Retries back off from half a second locally (2 s in a deployment) so a run ends sooner.
    backoff_base_seconds: float = 0.5
    # Schedules (the reconciler) run every few seconds locally, not every minute.
    schedule_period: float = 2.0
    systemic_error_threshold: int = 3
    # A call not done after this many seconds is in doubt. Longer than a sender's batch can
    # take here (claims, slots, holds and calls against a busy moto), as the deployment's 90 s
    # is longer than the sender's 60 s Lambda timeout. Its half is a claimed row's deadline for
    # its call: 30 s holds twenty instances' rows at twice the account's rate (two jobs sharing
    # 100 CPS take 20 s a batch); with 15 s the last rows were given back and came in a 6 s tail.
    in_doubt_after_seconds: float = 60.0
    seed: int | None = None
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


@dataclass
class Tally:
    """Final outcome of every row the runtime has seen, from the response topic and the DLQ."""

    outcomes: dict[tuple[str, int], str] = field(default_factory=dict)
    # Twilio's error code, or `cancelled` for a row of a cancelled job.
    row_codes: dict[tuple[str, int], int | str] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)
    first_attempts: list[float] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def envelope(self, data: dict[str, Any]) -> None:
        outcome = data.get("outcome")
        key = (str(data["job_id"]), int(data["row"]))
        with self.lock:
            timings = data.get("timings") or {}
            if "lag_seconds" in timings:
                self.lags.append(float(timings["lag_seconds"]))
            if data.get("attempt") == 1 and "started_at" in timings:
                self.first_attempts.append(float(timings["started_at"]))
            if outcome in FINAL:
                self.outcomes[key] = str(outcome)
                code = (data.get("error") or {}).get("code")
                if code is not None:
                    self.row_codes[key] = code if isinstance(code, str) else int(code)

    def snapshot(self) -> Tally:
        """A copy taken at one moment: a report built from it counts the same rows in its
        totals, its error codes and its outcome file, while calls still in flight (a paused
        job's last ones) go on settling in the live tally."""
        with self.lock:
            return Tally(
                dict(self.outcomes),
                dict(self.row_codes),
                list(self.lags),
                list(self.first_attempts),
            )

    def error_codes(self) -> Counter[str]:
        """Rows by the error code they ended with: a row counts once, however many times its
        outcome was published (at least once: a redelivered batch publishes it again)."""
        with self.lock:
            return Counter(str(code) for code in self.row_codes.values())

    def dead_lettered(self, job_id: str, row: int) -> None:
        with self.lock:
            self.outcomes.setdefault((job_id, row), "dead_lettered")

    def rows(self, job_id: str) -> list[tuple[int, str, int | str | None]]:
        """(row, outcome, error code) of every settled row of a job, by row."""
        with self.lock:
            return sorted(
                (row, outcome, self.row_codes.get((j, row)))
                for (j, row), outcome in self.outcomes.items()
                if j == job_id
            )

    def counts(self, job_id: str) -> Counter[str]:
        with self.lock:
            return Counter(o for (j, _), o in self.outcomes.items() if j == job_id)


@dataclass(frozen=True)
class Submitted:
    job_id: str
    file: Path


class LocalRuntime:
    def __init__(self, options: Options, *, project_dir: Path = PROJECT_DIR) -> None:
        self._saved_environment: dict[str, str] | None = None
        self._gc_threshold = gc.get_threshold()
        self.options = options
        self.project_dir = project_dir
        self.counter = AwsRequestCounter()
        self.tally = Tally()
        self.jobs: list[Submitted] = []
        self._aws: subprocess.Popen[str] | None = None
        self._host: lambdas.FunctionHost | None = None
        self._functions: dict[str, lambdas.Handler] = {}
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.env: dict[str, str] = {}
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.emulator: EmulatorProcess | None = None
        self.triggers: Triggers | None = None
        self.endpoint = ""
        self.started_at = 0.0
        self.api: ApiServer | None = None
        self.worker: Worker | None = None

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._gc_threshold = gc.get_threshold()
        relax_garbage_collection()
        # The handlers read their settings from the environment, as in Lambda; stop() puts the
        # process's own environment back.
        self._saved_environment = dict(os.environ)
        self.started_at = time.time()
        # moto's server logs every request through werkzeug at INFO.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._host = lambdas.FunctionHost(self._functions)
        self._host.start()
        self._aws = subprocess.Popen(  # noqa: S603 - our own module, no shell
            [sys.executable, "-m", "callqueue.local.moto_server", self._host.url],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=self.project_dir,
        )
        assert self._aws.stdout is not None  # noqa: S101
        ready = self._aws.stdout.readline().split()
        if ready[:1] != ["READY"]:
            raise RuntimeError("emulated AWS (moto server) did not start")
        port = int(ready[1])
        self.endpoint = f"http://127.0.0.1:{port}"
        os.environ.update(
            {
                "AWS_ENDPOINT_URL": self.endpoint,
                "AWS_ACCESS_KEY_ID": "local",
                "AWS_SECRET_ACCESS_KEY": "local",  # moto accepts any; not a credential
                "AWS_DEFAULT_REGION": REGION,
                "AWS_REGION": REGION,
            }
        )
        for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN"):
            os.environ.pop(name, None)
        requests.post(
            f"{self.endpoint}/moto-api/config",
            json={
                "lambda": {"use_docker": False},
                "stepfunctions": {"execute_state_machine": True},
            },
            timeout=10,
        ).raise_for_status()
        cloudformation = self.client("cloudformation")
        self.env = deploy_into_moto(
            cloudformation,
            f"callqueue-{self.options.stage}",
            {
                "Stage": self.options.stage,
                "SendVisibilityTimeout": str(self.options.send_visibility_timeout),
                "MaxReceiveCount": str(self.options.max_receive_count),
                "SinkVisibilityTimeout": str(self.options.visibility_timeout),
            },
            poll=0.1,
        )
        expose_state_machine_to_interpreter(
            cloudformation,
            self.client("stepfunctions"),
            f"callqueue-{self.options.stage}",
            self.env,
        )
        # In a process of its own, as Twilio is (callqueue.local.emulator_process).
        self.emulator = EmulatorProcess(
            account_sid=DEFAULT_ACCOUNT_SID,
            auth_token=DEFAULT_AUTH_TOKEN,
            latency=self.options.latency,
            concurrency_limit=self.options.concurrency_limit,
            faults=self.options.faults,
            lookup_faults=self.options.lookup_faults,
            slow_seconds=self.options.slow_seconds,
            requests_log=self.options.requests_log,
            seed=self.options.seed,
        )
        self.emulator.start()
        self.client("secretsmanager").create_secret(
            Name=SECRET_ID,
            SecretString=json.dumps(
                {
                    "TEST_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
                    "TEST_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
                }
            ),
        )
        os.environ.update(self.env)
        os.environ.update(
            {
                "CALLQUEUE_STAGE": self.options.stage,
                "TWILIO_BASE_URL": self.emulator.base_url,
                "TWILIO_SECRET_ID": SECRET_ID,
                "TWILIO_CREDENTIALS": "test",
                "CPS": str(self.options.cps),
                "ACCOUNT_CPS": str(self.options.account_cps or self.options.cps),
                "SENDER_LIMITS": self.options.sender_limits,
                "SLOT_TOLERANCE_SECONDS": str(self.options.slot_tolerance_seconds),
                "RATE_HEADROOM": str(self.options.rate_headroom),
                # moto answers a request at a time (moto_patches.locking.BackendLock) and
                # takes about a second to serialize a 1 MB page of results, during which every
                # call's requests wait: the reconciler reads a finished job's results in small
                # pages.
                "RESULTS_PAGE_SIZE": "200",
                # The emulated account's concurrency limit is the one the senders are told of.
                "TWILIO_CONCURRENCY_LIMIT": str(self.options.concurrency_limit or ""),
                "WINDOW_SECONDS": str(self.options.window_seconds),
                "MAX_ATTEMPTS": str(self.options.max_attempts),
                "BACKOFF_BASE_SECONDS": str(self.options.backoff_base_seconds),
                "SYSTEMIC_ERROR_THRESHOLD": str(self.options.systemic_error_threshold),
                "IN_DOUBT_AFTER_SECONDS": str(self.options.in_doubt_after_seconds),
                # Where the emulator sends status callbacks: the API below, when it runs.
                "STATUS_CALLBACK_URL": (
                    f"http://127.0.0.1:{self.options.api_port}/twilio/status"
                    if self.options.api_port is not None
                    else ""
                ),
            }
        )
        # One client per service serves every handler here (each Lambda container has its own):
        # ten senders with their calls in flight, the sinks and the pollers.
        wiring.use_boto3_session(self.counter.session, max_pool_connections=400)
        wiring.use_twilio_http_client(
            # One gateway serves every sender here: a pool for all their calls in flight.
            lambda base_url, timeout: CrashingHttpClient(
                base_url=base_url, timeout=timeout, pool_size=512
            )
        )
        module = self._import_app()
        self._functions.update(lambdas.pure_functions(module.app, self.options.stage))
        lambdas.create_functions(self.client("lambda"), self.client("iam"), list(self._functions))
        if self.options.sender_processes:
            self.worker = Worker(
                self.options.stage,
                [SENDER_HANDLER],
                self.project_dir,
                processes=self.options.sender_processes,
            )
            self.worker.start()
        worker = self.worker
        self.triggers = Triggers(
            module.app,
            self.options.stage,
            self.client,
            region=REGION,
            schedule_period=self.options.schedule_period,
            remote=lambda name: (
                (lambda event: worker.invoke(name, event))
                if worker is not None and worker.serves(name)
                else None
            ),
        )
        self.triggers.install()
        self._observe()
        self.triggers.start()
        if self.options.api_port is not None:
            self.api = ApiServer(
                self.project_dir,
                self.handler_environment(),
                port=self.options.api_port,
                stage=self.options.stage,
            )
            self.api.start()

    def stop(self) -> None:
        gc.set_threshold(*self._gc_threshold)
        if self.api is not None:
            self.api.stop()
        self._stop.set()
        if self.triggers is not None:
            self.triggers.stop()
        for thread in self._threads:
            thread.join(timeout=5)
        if self.worker is not None:
            self.worker.stop()
        if self.emulator is not None:
            self.emulator.stop()
        if self._aws is not None:
            try:
                self._aws.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                # Requests still in flight (a long poll) hold it up; nothing more is wanted of it.
                self._aws.kill()
                self._aws.communicate()
        if self._host is not None:
            self._host.stop()
        # Back to the product's own clients (tests run other things in this process after).
        if self._saved_environment is not None:
            os.environ.clear()
            os.environ.update(self._saved_environment)
        wiring.use_twilio_http_client(CapturingHttpClient)
        wiring.use_boto3_session(boto3.session.Session)

    def __enter__(self) -> LocalRuntime:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- use --------------------------------------------------------------------------------

    @property
    def sender_scheduling(self) -> str:
        """How the sender's threads are scheduled: `SCHED_RR:<priority>` (real-time, in its
        own processes), `normal`, or `in-process` (in the runtime's own interpreter)."""
        return self.worker.scheduling if self.worker is not None else "in-process"

    def aws_requests(self) -> Counter[str]:
        """Every AWS request the project's code made, here and in the sender's process."""
        counts = Counter(self.counter.counts)
        if self.worker is not None:
            counts.update(self.worker.aws_requests())
        return counts

    def client(self, service: str) -> Any:
        """A client for the runtime's own calls (not counted as the project's requests).

        Clients are made once per service: making one loads its API model, which costs more
        than the calls themselves. boto3 clients are safe to share between threads."""
        with self._clients_lock:
            if service not in self._clients:
                session = boto3.session.Session(
                    aws_access_key_id="local",
                    aws_secret_access_key="local",  # noqa: S106 - moto accepts any; not a credential
                    region_name=REGION,
                )
                self._clients[service] = session.client(  # type: ignore[call-overload]
                    service,
                    endpoint_url=self.endpoint,
                    config=Config(
                        retries={"mode": "standard", "max_attempts": 5},
                        max_pool_connections=100,
                    ),
                )
            return self._clients[service]

    def handler_environment(self) -> dict[str, str]:
        """What the handlers see: the stack's outputs and the local settings."""
        names = set(self.env) | {
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "CALLQUEUE_STAGE",
            "TWILIO_BASE_URL",
            "TWILIO_SECRET_ID",
            "TWILIO_CREDENTIALS",
            "CPS",
            "WINDOW_SECONDS",
            "STATUS_CALLBACK_URL",
            # A user's (or a test's) own read timeout for Twilio, as a deployment may set it.
            "TWILIO_TIMEOUT_SECONDS",
        }
        return {name: os.environ[name] for name in sorted(names) if name in os.environ}

    def submit(self, path: Path) -> Submitted:
        bucket = self.env["SOURCE_BUCKET"]
        key = f"{len(self.jobs) + 1:03d}-{path.name}"
        with path.open("rb") as body:
            response = self.client("s3").put_object(Bucket=bucket, Key=key, Body=body)
        submitted = Submitted(job_id_for(bucket, key, response["ETag"].strip('"')), path)
        self.jobs.append(submitted)
        return submitted

    def rejects(self, job_id: str) -> list[tuple[int, str]]:
        """The job's rejected rows (record number, reason), from its rejects report."""
        try:
            body = self.client("s3").get_object(
                Bucket=self.env["REPORTS_BUCKET"], Key=rejects_key(job_id)
            )["Body"]
        except self.client("s3").exceptions.NoSuchKey:
            return []
        return list(read_rejects_csv(body.read().decode("utf-8").splitlines(keepends=True)))

    def job(self, job_id: str) -> Job | None:
        return JobStore(self.client("dynamodb"), self.env["JOBS_TABLE"]).get(job_id)

    # -- observing outcomes -----------------------------------------------------------------

    def _observe(self) -> None:
        sqs = self.client("sqs")
        sns = self.client("sns")
        url = sqs.create_queue(QueueName=f"callqueue-{self.options.stage}-local-observer")[
            "QueueUrl"
        ]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
            "QueueArn"
        ]
        sns.subscribe(
            TopicArn=self.env["RESPONSE_TOPIC_ARN"],
            Protocol="sqs",
            Endpoint=arn,
            Attributes={"RawMessageDelivery": "true"},
        )
        dlq = sqs.get_queue_url(QueueName=self.env["DEAD_LETTER_QUEUE"])["QueueUrl"]
        self._spawn(lambda: self._drain(url, self._on_response, delete=True))
        # The DLQ is read without deleting: its messages stay for `callqueue dlq` and redrive.
        self._spawn(lambda: self._drain(dlq, self._on_dead_letter, delete=False))

    def _spawn(self, target: Callable[[], None]) -> None:
        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _drain(self, url: str, handle: Callable[[str], None], *, delete: bool) -> None:
        sqs = self.client("sqs")
        while not self._stop.is_set():
            try:
                messages = sqs.receive_message(
                    QueueUrl=url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=1,
                    VisibilityTimeout=30,
                ).get("Messages", [])
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("observer: receive failed")
                time.sleep(0.5)
                continue
            for message in messages:
                handle(message["Body"])
            if delete and messages:
                sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[
                        {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
                        for i, m in enumerate(messages)
                    ],
                )

    def _on_response(self, body: str) -> None:
        self.tally.envelope(json.loads(body))

    def _on_dead_letter(self, body: str) -> None:
        data = json.loads(body)
        self.tally.dead_lettered(str(data["job_id"]), int(data["row"]))

    def _import_app(self) -> ModuleType:
        if str(self.project_dir) not in sys.path:
            sys.path.insert(0, str(self.project_dir))
        if "app" in sys.modules:
            return importlib.reload(sys.modules["app"])
        return importlib.import_module("app")
