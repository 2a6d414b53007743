"""Lambda functions of the Chalice app, invoked through moto's Lambda API.

Chalice deploys each handler as a function named `{app}-{stage}-{name}`. Locally, those functions
are created in moto (with a placeholder package) and moto's docker-less Lambda backend is pointed
at the real handlers (callqueue.local.moto_patches.awslambda): over HTTP to a FunctionHost when
moto runs in its own process (the local runtime), or in-process (tests with mock_aws). Either way
the state machine's Task states invoke the real release step through the real Lambda API, errors
included.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
import traceback
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from callqueue.local import cost_log

Handler = Callable[[Any, Any], Any]

# Lambda's header on an invocation whose function raised, and its value for an error the
# function did not handle.
FUNCTION_ERROR_HEADER = "X-Amz-Function-Error"
UNHANDLED = "Unhandled"
# Lambda's own ceiling on an invocation.
MAX_INVOCATION_SECONDS = 900

log = logging.getLogger(__name__)


class SimulatedCrash(BaseException):
    """The invocation dies as a Lambda timeout would: nothing after it runs, no cleanup."""


@dataclass
class LambdaContext:
    """The parts of Lambda's context object that handlers read."""

    function_name: str
    timeout_seconds: float = 60.0
    memory_limit_in_mb: int = 256
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = 0.0

    def get_remaining_time_in_millis(self) -> int:
        return int(max(0.0, self.timeout_seconds - (time.monotonic() - self._started)) * 1000)


def function_name(app_name: str, stage: str, name: str) -> str:
    return f"{app_name}-{stage}-{name}"


def pure_functions(app: Any, stage: str) -> dict[str, Handler]:
    """The app's plain `@app.lambda_function`s by deployed function name."""
    return {
        function_name(app.app_name, stage, f.name): app.handler_map[f.name]
        for f in app.pure_lambda_functions
    }


def invoke_handler(
    name: str, handler: Handler, event: Any, timeout_seconds: float | None = None
) -> Any:
    context = LambdaContext(function_name=name, _started=time.monotonic())
    if timeout_seconds is not None:  # else 60 s, the config's lambda_timeout
        context.timeout_seconds = timeout_seconds
    try:
        return handler(event, context)
    finally:
        cost_log.invoked(name, time.monotonic() - context._started)


def run_function(
    name: str, handler: Handler, body: bytes | str | None, timeout_seconds: float | None = None
) -> tuple[bytes, bool]:
    """Invoke a handler with a JSON event; returns (payload, failed) as the Lambda API does."""
    event = json.loads(body) if body else {}
    try:
        result = invoke_handler(name, handler, event, timeout_seconds)
    except Exception as error:  # noqa: BLE001 - reported to the caller as Lambda does
        log.warning("%s: invocation failed: %s: %s", name, type(error).__name__, error)
        payload = {
            "errorMessage": str(error),
            "errorType": type(error).__name__,
            "stackTrace": traceback.format_tb(error.__traceback__),
        }
        return json.dumps(payload).encode(), True
    return json.dumps(result).encode(), False


class FunctionHost:
    """An HTTP endpoint on loopback that runs the app's functions for moto's Lambda backend
    (callqueue.local.moto_patches.awslambda): POST /functions/{name}/invocations with the event
    as body."""

    def __init__(self, functions: dict[str, Handler]) -> None:
        self._functions = functions
        host = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                name = self.path.strip("/").split("/")[1]
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                handler = host._functions.get(name)
                if handler is None:
                    self.send_response(404)
                    self.end_headers()
                    return
                payload, failed = run_function(name, handler, body)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                if failed:
                    self.send_header(FUNCTION_ERROR_HEADER, UNHANDLED)
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def placeholder_zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "# the real handler runs in-process in the local runtime\n")
    return buffer.getvalue()


def create_functions(lambda_client: Any, iam_client: Any, names: list[str]) -> None:
    """Create the functions in moto so the Lambda API (and the state machine) can find them."""
    role = iam_client.create_role(
        RoleName="callqueue-local-lambda",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    code = placeholder_zip()
    for name in names:
        lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": code},
            Timeout=60,
        )
