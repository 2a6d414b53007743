"""Some of the app's functions served by processes of their own, as Lambda runs each function in
an interpreter of its own (and each of its instances in a sandbox of its own: the runtime starts
a few processes, each invocation going to the least busy).

The local runtime's triggers (callqueue.local.triggers) invoke the sender here over loopback HTTP
instead of in the runtime's own interpreter, which every sink, trigger and poller shares (one
GIL): a sender's threads, each waiting for its slot, then wake without waiting on them.
Measured, with the sinks switched off in the runtime as a stand-in: the tail of the calls'
lateness for their slots halved.

The process gets the runtime's environment (the stack's outputs, the emulator's URL), builds its
clients as the runtime does (AWS requests counted, Twilio responses that carry the `crash` fault
kill the invocation) and imports app.py.

Usage: python -m callqueue.local.worker_process STAGE NAME[,NAME...] [TIMEOUT_SECONDS]
(the handlers' names; their invocations end after TIMEOUT_SECONDS, as Lambda ends them:
callqueue.local.invocation_deadline)
Prints "READY <url> <scheduling>" once serving; stops when its standard input closes.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import boto3
import requests

from callqueue.local import child_process, invocation_deadline
from callqueue.local.faults import FAULT_HEADER
from callqueue.local.invocation_deadline import InvocationTimedOut
from callqueue.local.lambdas import (
    FUNCTION_ERROR_HEADER,
    MAX_INVOCATION_SECONDS,
    UNHANDLED,
    Handler,
    SimulatedCrash,
    function_name,
    run_function,
)
from callqueue.project import PROJECT_DIR
from chalicelib.twilio.gateway import CapturingHttpClient

log = logging.getLogger(__name__)

WORKER = "callqueue.local.worker_process"
CRASHED_HEADER = "X-Callqueue-Crashed"
# Its value when the invocation ran past its timeout (callqueue.local.invocation_deadline).
TIMED_OUT = "timeout"
# A Lambda instance has a share of CPU of its own; here the sender shares two cores with moto,
# the emulator and the runtime, and a thread waking for its slot waited behind them (p90 3.3 ms,
# p99 7.9 ms late at 200 CPS, measured). Where the OS allows it (Linux, as root or within
# RLIMIT_RTPRIO), a thread making a Twilio call runs under the round-robin real-time policy at
# this priority for that call (waiting for its slot, sending, reading the answer): above every
# ordinary process, below the kernel's own threads. Measured with every thread of the sender
# real-time (the earlier form): p90 0.5 ms, p99 2.3 ms.
# Only for the call: once moto answered without Nagle's delay (callqueue.local.moto_server), with
# every thread of the sender real-time (claims, publishing, the batch's own loop) moto, an
# ordinary process, waited behind them; publishing a batch's responses took seconds, the
# sender's invocations outlasted the queue's visibility timeout, and at 200 CPS the calls
# stopped for seconds at a time from the 10th second on (measured here, three runs).
REALTIME_PRIORITY = 10
# And a thread that woke waits at most this long for the GIL (Python's default: 5 ms).
SWITCH_INTERVAL_SECONDS = 0.0005
# The sender's other threads are ordinary but favoured (where allowed): a real-time thread that
# woke for its slot waits for the GIL, and an ordinary thread of its process holding it could
# wait for a CPU behind moto and the runtime meanwhile. With the calls alone real-time, one of
# six runs at 200 CPS made 22 calls in 100 ms; with this too, none of ten (measured here).
NICE = -10
NORMAL = "normal"
RT_RUNTIME = Path("/proc/sys/kernel/sched_rt_runtime_us")


def relax_garbage_collection() -> None:
    """Collect cycles less often in the harness's processes. moto keeps every message and item
    as Python objects and makes a lot of garbage per request; with the default thresholds its
    full collections stopped every request for up to seconds at a time in the rate benchmark.
    Memory is bounded by the run, which ends."""
    gc.set_threshold(50_000, 50, 1_000)


class AwsRequestCounter:
    """Counts every AWS API call the project's code makes, by `service:Operation`."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()

    def session(self) -> boto3.session.Session:
        session = boto3.session.Session()
        session.events.register("before-call.*.*", self._count)
        # Each request, retries included, is first checked against the invocation's deadline.
        session.events.register("before-send.*.*", _past_deadline)
        return session

    def _count(self, event_name: str, model: Any, **_: Any) -> None:
        service = model.service_model.service_id.hyphenize()
        with self._lock:
            self.counts[f"{service}:{model.name}"] += 1


def _past_deadline(**_: Any) -> None:
    invocation_deadline.check()


class CrashingHttpClient(CapturingHttpClient):
    """Kills the invocation when the emulator marks a response with the `crash` fault: the call
    reached Twilio, and the function dies before any project code sees the response."""

    def __init__(self, *, scheduling: str = NORMAL, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # How each call's thread is scheduled while it calls (callqueue.local.worker_process).
        self._scheduling = scheduling

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        invocation_deadline.check()
        with realtime(self._scheduling):
            response = super().request(method, url, *args, **kwargs)
        # An invocation that ended while its call was in flight never reads the answer.
        invocation_deadline.check()
        if (response.headers or {}).get(FAULT_HEADER) == "crash":
            raise SimulatedCrash("injected crash after Twilio's response")
        return response


class Worker:
    """The runtime's side: starts the processes, invokes its functions in the least busy one,
    reads their AWS counts."""

    def __init__(
        self,
        stage: str,
        handler_names: list[str],
        project_dir: Path,
        *,
        processes: int = 1,
        timeout_seconds: float | None = None,
    ) -> None:
        self._stage = stage
        self._timeout = timeout_seconds
        self._names = handler_names
        self._project_dir = project_dir
        self._count = processes
        self._processes: list[subprocess.Popen[str]] = []
        self._session = requests.Session()
        self._session.mount("http://", requests.adapters.HTTPAdapter(pool_maxsize=64))
        self.urls: list[str] = []
        # How the processes' threads are scheduled: `SCHED_RR:<priority>` or `normal`.
        self.scheduling = NORMAL
        self._busy: list[int] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        # Started together, each then read for its READY.
        args = [self._stage, ",".join(self._names)]
        if self._timeout is not None:
            args.append(repr(self._timeout))
        self._processes = [
            child_process.spawn(WORKER, *args, cwd=self._project_dir) for _ in range(self._count)
        ]
        for process in self._processes:
            ready = child_process.ready(process)
            if ready is None:
                self.stop()  # the others too: none is left running
                raise RuntimeError("the sender's worker process did not start")
            self.urls.append(ready[0])
            self.scheduling = ready[1] if len(ready) > 1 else NORMAL
        self._busy = [0] * len(self.urls)

    @property
    def url(self) -> str:
        return self.urls[0] if self.urls else ""

    def serves(self, name: str) -> bool:
        return any(name.endswith(f"-{n}") for n in self._names)

    def invoke(self, name: str, event: Any) -> Any:
        """The function's result; its error raised (SimulatedCrash when it was killed)."""
        with self._lock:
            # A process that died (killed, out of memory) would fail every invocation at once,
            # and so look least busy for good: the live ones take them.
            alive = [i for i, process in enumerate(self._processes) if process.poll() is None]
            if not self._busy or not alive:
                raise RuntimeError(f"{name}: the worker processes are not running")
            chosen = min(alive, key=self._busy.__getitem__)
            self._busy[chosen] += 1
            url = self.urls[chosen]
            busy = self._busy
        try:
            response = self._session.post(
                f"{url}/functions/{name}/invocations",
                data=json.dumps(event),
                timeout=MAX_INVOCATION_SECONDS,
            )
        finally:
            with self._lock:
                busy[chosen] -= 1
        response.raise_for_status()
        crashed = response.headers.get(CRASHED_HEADER)
        if crashed == TIMED_OUT:
            raise InvocationTimedOut(f"Task timed out after {self._timeout:.2f} seconds")
        if crashed is not None:
            raise SimulatedCrash(f"{name}: injected crash in the worker process")
        payload = response.json()
        if FUNCTION_ERROR_HEADER in response.headers:
            raise RuntimeError(f"{payload.get('errorType')}: {payload.get('errorMessage')}")
        return payload

    def aws_requests(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for url in self.urls:
            response = self._session.get(f"{url}/aws-requests", timeout=10)
            response.raise_for_status()
            for key, count in response.json().items():
                counts[key] = counts.get(key, 0) + int(count)
        return counts

    def stop(self) -> None:
        with self._lock:
            processes, self._processes, self.urls, self._busy = self._processes, [], [], []
        # A batch still in flight when the timeout runs out is not wanted any more.
        child_process.stop_all(processes)


def serve(
    functions: dict[str, Handler],
    counts: Callable[[], dict[str, int]],
    timeout_seconds: float | None = None,
) -> ThreadingHTTPServer:
    class Invocations(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # connections kept open for the next invocation
        disable_nagle_algorithm = True  # see callqueue.local.moto_server.KeepAliveHandler

        def do_POST(self) -> None:
            name = self.path.strip("/").split("/")[1]
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            handler = functions.get(name)
            if handler is None:
                self._answer(404, b"{}", {})
                return
            try:
                # Lambda's answer: the result, or the error's payload and header.
                with invocation_deadline.deadline(timeout_seconds):
                    payload, failed = run_function(name, handler, body, timeout_seconds)
                    # A request in flight at the deadline completes; if it was the last, the
                    # handler returns late. Lambda never answers past the timeout: the batch
                    # is not deleted. Answered as done, its late delete could remove a
                    # message SQS had meanwhile given another reader (any receipt handle
                    # deletes in moto: docs/emulator-fidelity.md).
                    invocation_deadline.check()
            except InvocationTimedOut as timed_out:
                log.warning("%s: %s, in %s", name, timed_out, invocation_deadline.where(timed_out))
                self._answer(200, b"null", {CRASHED_HEADER: TIMED_OUT})
                return
            except SimulatedCrash:  # a BaseException: the invocation died, nothing answered
                self._answer(200, b"null", {CRASHED_HEADER: "1"})
                return
            self._answer(200, payload, {FUNCTION_ERROR_HEADER: UNHANDLED} if failed else {})

        def do_GET(self) -> None:
            self._answer(200, json.dumps(counts()).encode(), {})

        def _answer(self, status: int, payload: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Invocations)
    server.daemon_threads = True
    return server


def prioritize() -> str:
    """How this process's Twilio calls are scheduled: `SCHED_RR:<priority>` where the OS lets a
    thread take the real-time policy (tried here, then given up), else NORMAL; and its threads
    started from now on favoured (NICE) where allowed. Neither when CALLQUEUE_REALTIME is 0; no
    real-time where the kernel would not keep a share of each second for ordinary processes
    (`sched_rt_runtime_us` -1): a runaway thread could then stall the machine."""
    sys.setswitchinterval(SWITCH_INTERVAL_SECONDS)
    if os.environ.get("CALLQUEUE_REALTIME") == "0":
        return NORMAL
    # Every thread started from now on (Linux's nice is a thread's, and inherited); where not
    # allowed (or not Linux), as any process.
    with suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, 0, NICE)
    if _rt_unthrottled():
        return NORMAL
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(REALTIME_PRIORITY))
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))
    except (AttributeError, OSError):  # not Linux, or not allowed: as any process
        return NORMAL
    return f"SCHED_RR:{REALTIME_PRIORITY}"


@contextmanager
def realtime(scheduling: str) -> Iterator[None]:
    """The calling thread under the real-time policy for the block, if `scheduling` says so
    (prioritize's answer); ordinary again afterwards."""
    if scheduling == NORMAL:
        yield
        return
    try:
        os.sched_setscheduler(0, os.SCHED_RR, os.sched_param(REALTIME_PRIORITY))
    except OSError:  # no longer allowed (RLIMIT_RTPRIO lowered meanwhile): the call goes as is
        yield
        return
    try:
        yield
    finally:
        os.sched_setscheduler(0, os.SCHED_OTHER, os.sched_param(0))


def _rt_unthrottled() -> bool:
    try:
        return RT_RUNTIME.read_text().strip() == "-1"
    except OSError:  # not Linux: sched_setscheduler is not there either
        return False


def main(argv: list[str]) -> int:
    scheduling = prioritize()
    from chalicelib import wiring  # noqa: PLC0415

    logging.basicConfig(level=logging.WARNING)
    stage, names = argv[1], argv[2].split(",")
    timeout = float(argv[3]) if len(argv) > 3 else None
    invocation_deadline.carry_into_pools()
    relax_garbage_collection()
    counter = AwsRequestCounter()
    wiring.use_boto3_session(counter.session, max_pool_connections=400)
    wiring.use_twilio_http_client(
        lambda base_url, timeout: CrashingHttpClient(
            base_url=base_url, timeout=timeout, pool_size=512, scheduling=scheduling
        )
    )
    sys.path.insert(0, str(PROJECT_DIR))
    import app as module  # noqa: PLC0415 - the app reads its settings from this environment

    functions = {
        function_name(module.app.app_name, stage, name): module.app.handler_map[name]
        for name in names
    }
    server = serve(functions, lambda: dict(counter.counts), timeout)
    threading.Thread(target=server.serve_forever, name="worker-server", daemon=True).start()
    host, port = server.server_address[:2]
    child_process.serve_until_stdin_closes(f"http://{host!s}:{port}", scheduling)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
