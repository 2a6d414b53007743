"""The worker processes end an invocation at its function's timeout, as Lambda does
(callqueue.local.invocation_deadline): no AWS request and no Twilio call of it after the
deadline, in its own thread or in the pools it started, and the runtime is told it timed out."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests
from hypothesis import given
from hypothesis import strategies as st

from callqueue.local import invocation_deadline
from callqueue.local.invocation_deadline import InvocationTimedOut, check, deadline
from callqueue.local.options import Options
from callqueue.local.worker_process import (
    CRASHED_HEADER,
    TIMED_OUT,
    AwsRequestCounter,
    CrashingHttpClient,
    serve,
)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def unreachable_sqs() -> Any:
    """An SQS client of a worker's session (its requests checked against the deadline) whose
    endpoint nothing listens on: a request that were sent would fail with a connection error."""
    return (
        AwsRequestCounter()
        .session()
        .client(
            "sqs",
            region_name="us-east-1",
            endpoint_url="http://127.0.0.1:9",
            aws_access_key_id="local",
            aws_secret_access_key="local",
        )
    )


@pytest.fixture
def carried(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pools carry their submitter's context, as in a worker process; undone afterwards."""
    monkeypatch.setattr(ThreadPoolExecutor, "submit", ThreadPoolExecutor.submit)
    invocation_deadline.carry_into_pools()
    invocation_deadline.carry_into_pools()  # once is enough: a second call wraps nothing


def test_check_ends_the_invocation_only_once_its_timeout_has_passed() -> None:
    clock = Clock()
    check(clock)  # outside an invocation: never
    with deadline(40.0, clock):
        clock.now += 39.999
        check(clock)
        clock.now += 0.001
        with pytest.raises(InvocationTimedOut, match=r"Task timed out after 40\.00 seconds"):
            check(clock)
    check(clock)  # the invocation is over: its deadline with it
    with deadline(None, clock):
        clock.now += 10_000
        check(clock)


def test_the_pools_an_invocation_starts_keep_its_deadline_and_others_do_not(
    carried: None,
) -> None:
    clock = Clock()
    with ThreadPoolExecutor(2) as outside:
        with deadline(5.0, clock):
            clock.now += 6
            with ThreadPoolExecutor(4) as pool:
                futures = [pool.submit(check, clock) for _ in range(8)]
                # A pool started inside a pool's task: the context goes on down.
                nested = pool.submit(lambda: ThreadPoolExecutor(1).submit(check, clock).result())
            for future in [*futures, nested]:
                with pytest.raises(InvocationTimedOut):
                    future.result()
        # Submitted from outside any invocation: the same threads, no deadline.
        assert outside.submit(check, clock).result() is None


def test_an_aws_request_after_the_deadline_is_never_sent() -> None:
    sqs = unreachable_sqs()
    with deadline(0.0), pytest.raises(InvocationTimedOut):
        sqs.list_queues()


def test_a_twilio_call_is_not_made_after_the_deadline_nor_its_answer_read_past_it() -> None:
    arrived: list[str] = []

    class Slow(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            arrived.append(self.path)
            self.rfile.read(int(self.headers.get("Content-Length", "0")))
            time.sleep(0.3)
            self.send_response(201)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"{}")

        def log_message(self, *_: Any) -> None:
            pass

    twilio = ThreadingHTTPServer(("127.0.0.1", 0), Slow)
    threading.Thread(target=twilio.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{twilio.server_address[1]}"
    client = CrashingHttpClient(base_url=base, timeout=5)
    try:
        with deadline(0.0), pytest.raises(InvocationTimedOut):
            client.request("POST", f"{base}/before", data={"To": "+15005550006"})
        assert arrived == []  # never sent
        with deadline(0.1), pytest.raises(InvocationTimedOut):
            client.request("POST", f"{base}/during", data={"To": "+15005550006"})
        assert arrived == ["/during"]  # it reached Twilio; the invocation died waiting
        with deadline(5.0):
            assert client.request("POST", f"{base}/in-time", data={}).status_code == 201
    finally:
        twilio.shutdown()
        twilio.server_close()


def test_the_worker_answers_an_invocation_past_its_timeout_as_timed_out(
    carried: None, caplog: pytest.LogCaptureFixture
) -> None:
    after: list[str] = []
    sqs = unreachable_sqs()

    def slow(event: Any, context: Any) -> Any:
        assert context.timeout_seconds == 0.2  # what the handler sees of it too
        time.sleep(event["sleep"])
        if event["sleep"]:  # its next request, from a pool it started
            with ThreadPoolExecutor(2) as pool:
                pool.submit(sqs.list_queues).result()
        after.append("ran on")
        return {"ok": True}

    server = serve({"fn": slow}, dict, 0.2)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/functions/fn/invocations"
    try:
        late = requests.post(url, data=json.dumps({"sleep": 0.3}), timeout=10)
        assert late.headers.get(CRASHED_HEADER) == TIMED_OUT
        assert after == []  # nothing of it ran past its next request
        # Said with the step it ended in (here the test's own function: no app frame).
        assert "fn: Task timed out after 0.20 seconds, in outside the app's code" in caplog.text
        in_time = requests.post(url, data=json.dumps({"sleep": 0}), timeout=10)
        assert CRASHED_HEADER not in in_time.headers
        assert in_time.json() == {"ok": True}
    finally:
        server.shutdown()
        server.server_close()


def test_an_invocation_that_returns_after_its_timeout_timed_out(carried: None) -> None:
    """Its last request, in flight at the deadline, completed late and the handler returned:
    Lambda would have ended it first, so the runtime is told it timed out and keeps its batch
    (deleted late, it could take a message another reader holds by then)."""
    served = threading.Event()

    class Late(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            time.sleep(0.8)  # answers after the invocation's 0.5-s deadline
            served.set()  # before the answer: the client may be done before a line after it
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_: Any) -> None:
            pass

    backend = ThreadingHTTPServer(("127.0.0.1", 0), Late)
    threading.Thread(target=backend.serve_forever, daemon=True).start()

    def last_request_late(event: Any, context: Any) -> Any:
        requests.get(f"http://127.0.0.1:{backend.server_address[1]}/", timeout=5)
        return {"ok": True}  # nothing after it would check the deadline

    # 0.5 s: the request must start before the deadline even on a loaded machine.
    server = serve({"fn": last_request_late}, dict, 0.5)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/functions/fn/invocations"
    try:
        answer = requests.post(url, data=json.dumps({}), timeout=10)
        assert served.is_set()  # the request did complete, after the deadline
        assert answer.headers.get(CRASHED_HEADER) == TIMED_OUT
    finally:
        for s in (server, backend):
            s.shutdown()
            s.server_close()


@given(in_doubt=st.floats(1.0, 900.0), visibility=st.integers(1, 43_200))
def test_the_local_sender_ends_before_its_rows_may_be_taken_over(
    in_doubt: float, visibility: int
) -> None:
    # Read from what the handlers and the send queue are given, not from the formula.
    options = Options(in_doubt_after_seconds=in_doubt, visibility_timeout=visibility)
    handlers = options.handler_settings("http://127.0.0.1:1", "callqueue/twilio")
    queue = options.stack_parameters()
    timeout = options.sender_timeout_seconds
    assert 0 < timeout < float(handlers["IN_DOUBT_AFTER_SECONDS"])
    assert timeout <= float(queue["SendVisibilityTimeout"])  # Lambda requires it of a trigger
    # And as long as the deployment's proportion allows: a batch is not ended sooner than need be.
    assert timeout >= min(in_doubt * 2 / 3, float(queue["SendVisibilityTimeout"])) - 1e-9


def test_where_names_the_apps_frames_the_invocation_ended_in(carried: None) -> None:
    def step() -> None:
        check()

    def batch() -> None:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(step).result()

    # As if the app's: the frames of files under chalicelib/ are the ones named.
    code = compile("def send_batch(run):\n    run()\n", "/srv/chalicelib/sending/sender.py", "exec")
    namespace: dict[str, Any] = {}
    exec(code, namespace)  # noqa: S102 - a function compiled under an app file's name
    with deadline(0.0), pytest.raises(InvocationTimedOut) as ended:
        namespace["send_batch"](batch)
    assert invocation_deadline.where(ended.value) == "sender.py:2 send_batch"
