"""Work around moto gaps in SQS (harness only): calls whose cost grew with the queue's depth, and
answers that took longer to serialize than to make."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from moto.core.utils import unix_time, unix_time_millis
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend
from moto.sqs.responses import SQSResponse


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

    def messages(queue: Queue) -> list[Message]:
        # moto reads the clock twice per message (visible, delayed): once per call is enough.
        now = unix_time_millis()
        return [m for m in queue._messages if now > m.visible_at and not now < m.delayed_until]

    def delete_message(queue: Queue, receipt_handle: str) -> None:
        # moto's scans the queue twice, building each message's list of handles; one pass that
        # compares handles removes the same message and raises the same error.
        if receipt_handle in queue.deleted_messages:
            return
        for i, m in enumerate(queue._messages):
            if m.receipt_handle == receipt_handle or receipt_handle in m._old_receipt_handles:
                queue.pending_messages.discard(m)
                queue.deleted_messages.update(m.all_receipt_handles)  # type: ignore[arg-type]
                queue._messages = queue._messages[:i] + queue._messages[i + 1 :]
                return
        raise ReceiptHandleIsInvalid

    Queue.attributes = property(attributes)  # type: ignore[assignment,method-assign]
    Queue.messages = property(messages)  # type: ignore[assignment,method-assign]
    Queue.delete_message = delete_message  # type: ignore[method-assign,assignment]
    SQSBackend.is_message_valid_based_on_retention_period = retained  # type: ignore[assignment,method-assign]


def speed_up_sqs_receive() -> None:
    """Work around a moto gap (harness only): moto writes every answer through a serializer
    driven by the service's model, value by value, and a ReceiveMessage answer of ten messages
    (the sinks' carry whole Twilio responses) took more of moto's time in serializing than in
    receiving. In SQS's JSON protocol, which boto3 speaks, that answer is the result as JSON with
    binary attribute values in base64: written so here. Other protocols are moto's."""
    receive = SQSResponse.receive_message

    def receive_message(self: SQSResponse) -> Any:
        answer = receive(self)
        if not self.headers.get("Content-Type", "").startswith("application/x-amz-json"):
            return answer
        body = json.dumps(answer.result, default=_base64)
        return body, {"Content-Type": "application/x-amz-json-1.0"}

    SQSResponse.receive_message = receive_message  # type: ignore[method-assign]


def _base64(value: object) -> str:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"not serializable in an answer: {type(value).__name__}")
