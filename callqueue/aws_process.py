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
import warnings
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import requests
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.utils import unix_time
from moto.server import ThreadedMotoServer
from moto.sqs.models import Message, Queue, SQSBackend

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


class _LazyQueueAttributes(Mapping[str, Any]):
    """A queue's attributes, computed only when read as a whole.

    moto's SendMessage reads `queue.attributes.get("ContentBasedDeduplication")`, and building
    that dict counts the queue's messages (ApproximateNumberOf*), so every send costs time in
    proportion to the queue's depth: sending a 900-second chunk becomes quadratic. A FIFO-only
    attribute of a standard queue is absent without counting anything; every other read gets
    moto's own dict, unchanged.
    """

    def __init__(self, queue: Queue, compute: Callable[[Queue], dict[str, Any]]) -> None:
        self._queue = queue
        self._compute = compute
        self._full: dict[str, Any] | None = None

    def _all(self) -> dict[str, Any]:
        if self._full is None:
            self._full = self._compute(self._queue)
        return self._full

    def get(self, key: str, default: Any = None) -> Any:
        if key in Queue.FIFO_ATTRIBUTES and not self._queue.fifo_queue:
            return default
        return self._all().get(key, default)

    def __getitem__(self, key: str) -> Any:
        return self._all()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all())

    def __len__(self) -> int:
        return len(self._all())


def speed_up_sqs() -> None:
    """Work around moto gaps (harness only) that make SQS calls cost time in proportion to the
    queue's depth: see _LazyQueueAttributes; and ReceiveMessage checks each message's retention
    by building all the queue's attributes, so it reads the retention period directly."""
    compute = vars(Queue)["attributes"].fget
    assert compute is not None  # noqa: S101

    def attributes(queue: Queue) -> Mapping[str, Any]:
        return _LazyQueueAttributes(queue, compute)

    def retained(backend: SQSBackend, queue_name: str, message: Message) -> bool:
        period = int(backend.get_queue(queue_name).message_retention_period)  # type: ignore[attr-defined]
        return period + message.sent_timestamp / 1000 > unix_time()  # type: ignore[operator]

    Queue.attributes = property(attributes)  # type: ignore[assignment,method-assign]
    SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[assignment,method-assign]


def main(argv: list[str]) -> int:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # moto enforces no IAM or resource policies; it says so about the template's queue policies.
    logging.getLogger("moto.cloudformation.parsing").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Tried to parse AWS::SQS::QueuePolicy")
    forward_invocations(argv[1])
    speed_up_sqs()
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
