"""Emulated AWS in a process of its own: moto in server mode on loopback.

The runtime keeps the handlers; this process is "AWS". moto's docker-less Lambda backend is
pointed back at the runtime: an Invoke (from the state machine's Task states or the Lambda API)
becomes an HTTP request to the runtime's function host, which runs the real handler and answers
with its result or its error, as Lambda does. Running moto apart keeps its work off the
handlers' interpreter (one GIL), which matters at hundreds of calls per second on two cores.

Usage: python -m callqueue.aws_process FUNCTION_HOST_URL
Prints "READY <port>" once serving; stops when its standard input closes.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import requests
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.server import ThreadedMotoServer

FUNCTION_ERROR_HEADER = "X-Amz-Function-Error"
# Lambda's own ceiling on an invocation.
MAX_INVOCATION_SECONDS = 900


def forward_invocations(function_host: str) -> None:
    session = requests.Session()

    def invoke(
        self: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        name = function_name.rsplit(":", 1)[-1]
        response = session.post(
            f"{function_host}/functions/{name}/invocations",
            data=body or b"{}",
            timeout=MAX_INVOCATION_SECONDS,
        )
        if FUNCTION_ERROR_HEADER in response.headers:
            response_headers["x-amz-function-error"] = response.headers[FUNCTION_ERROR_HEADER]
        return response.content

    LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign]


def main(argv: list[str]) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    forward_invocations(argv[1])
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    # moto's Step Functions interpreter calls Lambda at localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    print(f"READY {port}", flush=True)
    sys.stdin.read()
    server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
