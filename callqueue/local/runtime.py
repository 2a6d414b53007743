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
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import boto3
import requests
from botocore.config import Config

from callqueue.deploy.moto_stack import deploy_into_moto, expose_state_machine_to_interpreter
from callqueue.local import child_process, cost_log, function_url, lambdas
from callqueue.local.api_server import ApiServer
from callqueue.local.emulator import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN
from callqueue.local.emulator_process import EmulatorProcess
from callqueue.local.function_url import FunctionUrlServer
from callqueue.local.options import Options
from callqueue.local.outcomes import Observer, Tally
from callqueue.local.triggers import Triggers
from callqueue.local.worker_process import (
    AwsRequestCounter,
    CrashingHttpClient,
    Worker,
    relax_garbage_collection,
)
from callqueue.project import PROJECT_DIR
from chalicelib import wiring
from chalicelib.aws.buckets import rejects_key
from chalicelib.aws.jobs_table import JobStore
from chalicelib.core.jobs import Job
from chalicelib.intake.manifest import MANIFEST_SUFFIX, manifest_bytes
from chalicelib.intake.splitter import job_id_for
from chalicelib.intake.validation.templates import JobParams
from chalicelib.twilio.gateway import CapturingHttpClient
from downstream.reconcile import read_rejects_csv

REGION = "us-east-1"
# The app's sender: its handler runs in processes of its own (Options.sender_processes).
SENDER_HANDLER = "handle_send_batch"
SECRET_ID = "callqueue/twilio"  # noqa: S105 - the secret's name
# The app's function behind the status callbacks' function URL (callqueue.deploy.infra's).
CALLBACK_FUNCTION = "status_callback_url"
MOTO_SERVER = "callqueue.local.moto_server"


@dataclass(frozen=True)
class Submitted:
    job_id: str
    file: Path


class LocalRuntime:
    def __init__(
        self,
        options: Options,
        *,
        project_dir: Path = PROJECT_DIR,
        on_step: Callable[[str], None] | None = None,
    ) -> None:
        # Told what starting is doing now (a progress display): it takes seconds.
        self._on_step = on_step or (lambda text: None)
        self._saved_environment: dict[str, str] | None = None
        self._gc_threshold = gc.get_threshold()
        self.options = options
        self.project_dir = project_dir
        self.counter = AwsRequestCounter()
        self.tally = Tally()
        self.jobs: list[Submitted] = []
        self._aws: subprocess.Popen[str] | None = None  # the moto server
        self._host: lambdas.FunctionHost | None = None
        self._functions: dict[str, lambdas.Handler] = {}
        self._observer = Observer(self.client, self.tally)
        self.env: dict[str, str] = {}
        self._clients: dict[str, Any] = {}
        self._clients_lock = threading.Lock()
        self.emulator: EmulatorProcess | None = None
        self.triggers: Triggers | None = None
        self.endpoint = ""
        self.started_at = 0.0
        self.api: ApiServer | None = None
        self.callback_url: FunctionUrlServer | None = None
        self.worker: Worker | None = None

    # -- life cycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._gc_threshold = gc.get_threshold()
        relax_garbage_collection()
        # The handlers read their settings from the environment, as in Lambda; stop() puts the
        # process's own environment back.
        self._saved_environment = dict(os.environ)
        self.started_at = time.time()
        self._on_step("starting emulated AWS (moto)")
        self._start_aws()
        self._on_step("deploying the stack into moto")
        self._deploy_stack()
        self._on_step("starting the Twilio emulator")
        self._start_twilio()
        if self.options.api_port is not None:
            self._start_callback_url()
        self._configure_handlers()
        self._on_step("loading the app and the sender's processes")
        app = self._start_functions()
        self._on_step("connecting the event sources")
        self._start_triggers(app)
        if self.options.api_port is not None:
            self._on_step("starting the REST API (chalice local)")
            self._start_api(self.options.api_port)

    def _start_aws(self) -> None:
        """moto's server in a process of its own, its Lambda invocations sent to the function
        host here; this process's AWS clients pointed at it."""
        # moto's server logs every request through werkzeug at INFO.
        logging.getLogger("werkzeug").setLevel(logging.WARNING)
        self._host = lambdas.FunctionHost(self._functions)
        self._host.start()
        self._aws = child_process.spawn(MOTO_SERVER, self._host.url, cwd=self.project_dir)
        ready = child_process.ready(self._aws)
        if ready is None:
            raise RuntimeError("emulated AWS (moto server) did not start")
        self.endpoint = f"http://127.0.0.1:{int(ready[0])}"
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

    def _deploy_stack(self) -> None:
        cloudformation = self.client("cloudformation")
        name = f"callqueue-{self.options.stage}"
        self.env = deploy_into_moto(cloudformation, name, self.options.stack_parameters(), poll=0.1)
        expose_state_machine_to_interpreter(
            cloudformation, self.client("stepfunctions"), name, self.env
        )

    def _start_twilio(self) -> None:
        """The Twilio emulator, in a process of its own as Twilio is
        (callqueue.local.emulator_process), and the secret of its credentials."""
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
            inbound_url=self.options.inbound_url(),
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

    def _configure_handlers(self) -> None:
        """The handlers' environment (the stack's outputs, the local settings) and clients."""
        assert self.emulator is not None  # noqa: S101 - started before
        os.environ.update(self.env)
        os.environ.update(self.options.handler_settings(self.emulator.base_url, SECRET_ID))
        if self.callback_url is not None:
            os.environ["STATUS_CALLBACK_URL"] = self.callback_url.url
        # One client per service serves every handler here (each Lambda container has its own):
        # ten senders with their calls in flight, the sinks and the pollers.
        wiring.use_boto3_session(self.counter.session, max_pool_connections=400)
        wiring.use_twilio_http_client(
            # One gateway serves every sender here: a pool for all their calls in flight.
            lambda base_url, timeout: CrashingHttpClient(
                base_url=base_url, timeout=timeout, pool_size=512
            )
        )

    def _start_functions(self) -> ModuleType:
        """The app imported, its functions created in moto (run here, through the function
        host), and the sender's worker processes started; returns the app's module."""
        module = self._import_app()
        self._functions.update(lambdas.pure_functions(module.app, self.options.stage))
        lambdas.create_functions(self.client("lambda"), self.client("iam"), list(self._functions))
        if self.options.sender_processes:
            self.worker = Worker(
                self.options.stage,
                [SENDER_HANDLER],
                self.project_dir,
                processes=self.options.sender_processes,
                timeout_seconds=self.options.sender_timeout_seconds,
            )
            self.worker.start()
        return module

    def _start_triggers(self, module: ModuleType) -> None:
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
        self._observer.start(self.options.stage, self.env)
        self.triggers.start()

    def _start_api(self, port: int) -> None:
        env = self.handler_environment()
        # The REST route checks signatures over its own URL (messages go to the function URL).
        env["STATUS_CALLBACK_URL"] = f"http://127.0.0.1:{port}/twilio/status"
        directory = cost_log.log_dir()
        log = None if directory is None else directory / cost_log.API_LOG
        self.api = ApiServer(self.project_dir, env, port=port, stage=self.options.stage, log=log)
        self.api.start()

    def _start_callback_url(self) -> None:
        """The callback function's URL, where the senders ask for status callbacks as on AWS."""
        name = lambdas.function_name("callqueue", self.options.stage, CALLBACK_FUNCTION)
        self.callback_url = function_url.serve(self._functions, name)

    def stop(self) -> None:
        gc.set_threshold(*self._gc_threshold)
        if self.api is not None:
            self.api.stop()
        if self.callback_url is not None:
            self.callback_url.stop()
        self._observer.stop()
        if self.triggers is not None:
            self.triggers.stop()
        if self.worker is not None:
            self.worker.stop()
        if self.emulator is not None:
            self.emulator.stop()
        if self._aws is not None:
            child_process.stop(self._aws)
        if self._host is not None:
            self._host.stop()
        # Back to the product's own clients (tests run other things in this process after).
        if self._saved_environment is not None:
            os.environ.clear()
            os.environ.update(self._saved_environment)
        wiring.use_twilio_http_client(CapturingHttpClient)
        wiring.use_boto3_session(boto3.session.Session)

    def __enter__(self) -> LocalRuntime:
        try:
            self.start()
        except BaseException:
            # Interrupted or failed half way: `with` calls no __exit__, so stop what started.
            self._on_step("stopping the local stack")
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self._on_step("stopping the local stack")
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
            "INBOUND_WEBHOOK_URL",
            "DEFAULT_REGION",
            "DELIVERY_REPORTS",
            # A user's (or a test's) own read timeout for Twilio, as a deployment may set it.
            "TWILIO_TIMEOUT_SECONDS",
        }
        return {name: os.environ[name] for name in sorted(names) if name in os.environ}

    def submit(
        self,
        path: Path,
        params: Mapping[str, str] | None = None,
        metadata: dict[str, str] | None = None,
    ) -> Submitted:
        """Upload a file as a job; `params` (job-wide parameters) go first, as its manifest;
        `metadata`: its settings, as x-amz-meta-* would give them."""
        bucket = self.env["SOURCE_BUCKET"]
        key = f"{len(self.jobs) + 1:03d}-{path.name}"
        if params:
            manifest = manifest_bytes(JobParams(dict(params)))
            self.client("s3").put_object(Bucket=bucket, Key=key + MANIFEST_SUFFIX, Body=manifest)
        with path.open("rb") as body:
            response = self.client("s3").put_object(
                Bucket=bucket, Key=key, Body=body, Metadata=metadata or {}
            )
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

    def _import_app(self) -> ModuleType:
        if str(self.project_dir) not in sys.path:
            sys.path.insert(0, str(self.project_dir))
        if "app" in sys.modules:
            return importlib.reload(sys.modules["app"])
        return importlib.import_module("app")
