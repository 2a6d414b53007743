"""Emulated AWS in a process of its own: moto in server mode on loopback.

The runtime keeps the handlers; this process is "AWS". moto's docker-less Lambda backend is
pointed back at the runtime: an Invoke (from the state machine's Task states or the Lambda API)
becomes an HTTP request to the runtime's function host, which runs the real handler and answers
with its result or its error, as Lambda does. Running moto apart keeps its work off the
handlers' interpreter (one GIL), which matters at hundreds of calls per second on two cores.

Usage: python -m callqueue.local.moto_server FUNCTION_HOST_URL
Prints "READY <port>" once serving; stops when its standard input closes.
"""

from __future__ import annotations

import base64
import copy
import functools
import gc
import io
import json
import logging
import os
import re
import sys
import threading
import urllib.parse
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import moto.core.responses
import requests
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import CertificateBuilder
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.botocore_stubber import BotocoreStubber
from moto.core.utils import method_names_from_class, unix_time, unix_time_millis
from moto.dynamodb.comparisons import ConditionExpressionParser, get_filter_expression
from moto.dynamodb.exceptions import (
    ConditionalCheckFailed,
    MultipleTransactionsException,
    TooManyTransactionsException,
    TransactionCanceledException,
    TransactWriteSingleOpException,
)
from moto.dynamodb.models import DynamoDBBackend, dynamodb_backends
from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)
from moto.s3.models import s3_backends
from moto.sns.models import sns_backends
from moto.sqs.exceptions import ReceiptHandleIsInvalid
from moto.sqs.models import Message, Queue, SQSBackend, sqs_backends
from moto.sqs.responses import SQSResponse
from werkzeug.serving import BaseWSGIServer, make_server

FUNCTION_ERROR_HEADER = "X-Amz-Function-Error"
# Lambda's own ceiling on an invocation.
MAX_INVOCATION_SECONDS = 900


# The lock of what no other lock covers: every request takes it but those to one SQS queue, to
# DynamoDB items or to S3.
MAIN = "main"
# S3's buckets and objects (one lock: moto keeps them across regions, as bucket names are).
S3 = "s3"
_DYNAMODB_TARGET = "DynamoDB_20120810."
# DynamoDB's data plane: each of these names the tables it reads or writes.
_DYNAMODB_ITEM_ACTIONS = frozenset(
    {
        "GetItem",
        "PutItem",
        "UpdateItem",
        "DeleteItem",
        "Query",
        "Scan",
        "BatchGetItem",
        "BatchWriteItem",
        "TransactGetItems",
        "TransactWriteItems",
    }
)
_SQS_TARGET = "AmazonSQS."
# SQS requests that name a queue and change no other (a receive may move a message to the
# queue's dead-letter queue, whose lock it takes too).
_SQS_QUEUE_ACTIONS = frozenset(
    {
        "SendMessage",
        "SendMessageBatch",
        "ReceiveMessage",
        "DeleteMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
        "GetQueueAttributes",
    }
)
_CREDENTIAL = re.compile(r"Credential=[^/]+/\d{8}/([^/]+)/([^/]+)/")
# Hosts a path-style S3 request is addressed to (the runtime's endpoints are on loopback).
_PATH_STYLE_HOST = re.compile(r"^(127\.\d+\.\d+\.\d+|localhost)(:\d+)?$")


def _json(body: bytes) -> dict[str, Any]:
    try:
        request = json.loads(body)
    except ValueError:
        return {}
    return request if isinstance(request, dict) else {}


def _queue_keys(account: str, region: str, name: str) -> set[str]:
    keys = {f"sqs:{name}"}
    queue = sqs_backends[account][region].queues.get(name)
    dead_letter = getattr(queue, "dead_letter_queue", None)
    if dead_letter is not None:
        keys.add(f"sqs:{dead_letter.name}")
    return keys


def _s3_keys(environ: dict[str, Any]) -> set[str] | None:
    """An S3 request on one bucket: S3's lock, and the locks of the queues the bucket notifies
    (an object written or deleted sends them an event); None (every lock) for a bucket that
    notifies anything else, or a request not addressed path-style."""
    if not _PATH_STYLE_HOST.match(environ.get("HTTP_HOST", "")):
        return None
    if "notification" in environ.get("QUERY_STRING", ""):
        return None  # setting a bucket's notifications sends its queues a test event
    bucket = environ.get("PATH_INFO", "").lstrip("/").split("/", 1)[0]
    if not bucket:
        return None
    located = s3_backends.bucket_accounts.get(bucket)
    if located is None:
        return {S3}  # no such bucket (yet): creating it notifies nothing
    partition, account = located
    found = s3_backends[account][partition].buckets.get(bucket)
    config = getattr(found, "notification_configuration", None)
    if config is None:
        return {S3}
    if config.cloud_function or config.topic or config.event_bridge is not None:
        return None
    keys = {S3}
    for notification in config.queue:
        try:
            _, _, _, region, queue_account, name = notification.arn.split(":", 5)
        except ValueError:
            return None
        keys |= _queue_keys(queue_account, region, name)
    return keys


def _everything(region: str) -> set[str]:
    keys = {MAIN, S3}
    for account in list(sqs_backends):
        keys.update(f"sqs:{name}" for name in list(sqs_backends[account][region].queues))
    for account in list(dynamodb_backends):
        keys.update(f"dynamodb:{name}" for name in list(dynamodb_backends[account][region].tables))
    return keys


def _published_to(topic_arn: str) -> set[str] | None:
    """The locks of the queues subscribed to a topic (and their dead-letter queues)."""
    try:
        _, _, _, region, account, _ = topic_arn.split(":", 5)
    except ValueError:
        return None
    keys = {MAIN}
    for subscription in list(sns_backends[account][region].subscriptions.values()):
        if subscription.topic.arn != topic_arn:
            continue
        if subscription.protocol != "sqs":
            return None
        try:
            _, _, _, queue_region, queue_account, name = subscription.endpoint.split(":", 5)
        except ValueError:
            return None  # not a queue's ARN: every lock
        keys |= _queue_keys(queue_account, queue_region, name)
    return keys


def lock_keys(environ: dict[str, Any], body: bytes) -> tuple[str, ...]:
    """The locks a request needs, by what in moto's backends it reads or changes:

    - a DynamoDB read or write: its tables' (DynamoDB knows nothing of other services);
    - an SQS request to one queue: that queue's, and its dead-letter queue's;
    - an SNS publish: the main lock, and the locks of the queues it delivers to;
    - an S3 request: S3's lock, and the locks of the queues its bucket notifies;
    - anything else (CloudFormation makes tables and queues): every lock.
    """
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    # Signed in the header, or in the query string (a presigned URL).
    signed = environ.get("HTTP_AUTHORIZATION") or urllib.parse.unquote(
        environ.get("QUERY_STRING", "")
    )
    match = _CREDENTIAL.search(signed)
    region, service = match.groups() if match else ("us-east-1", "")
    keys: set[str] | None = None
    if target.startswith(_DYNAMODB_TARGET):
        if target[len(_DYNAMODB_TARGET) :] in _DYNAMODB_ITEM_ACTIONS:
            request = _json(body)
            tables: set[str] = set()
            if isinstance(request.get("TableName"), str):
                tables.add(request["TableName"])
            if isinstance(request.get("RequestItems"), dict):
                tables.update(str(name) for name in request["RequestItems"])
            for item in request.get("TransactItems") or []:
                for op in item.values() if isinstance(item, dict) else []:
                    if isinstance(op, dict) and isinstance(op.get("TableName"), str):
                        tables.add(op["TableName"])
            # A table may be named by its ARN (arn:aws:dynamodb:...:table/NAME): one lock a table.
            keys = {f"dynamodb:{name.rsplit('table/', 1)[-1]}" for name in tables} or None
    elif target.startswith(_SQS_TARGET):
        action = target[len(_SQS_TARGET) :]
        url = _json(body).get("QueueUrl") if action in _SQS_QUEUE_ACTIONS else None
        if isinstance(url, str) and url.count("/") >= 4:
            account, name = url.rstrip("/").split("/")[-2:]
            keys = _queue_keys(account, region, name)
    elif environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if form.get("Action", [""])[0] in ("Publish", "PublishBatch") and form.get("TopicArn"):
            keys = _published_to(form["TopicArn"][0])
    elif service == "s3":
        keys = _s3_keys(environ)
    return tuple(sorted(keys if keys is not None else _everything(region)))


class BackendLock:
    """Requests to moto's backends made one at a time where they touch the same state (harness
    only).

    moto's backends take no locks, and its server runs each request on a thread of its own. So
    two concurrent UpdateItems on one item can read the same value and both write it plus one:
    measured here, 20 threads adding 1 to one counter 100 times each lost 39 of 2,000 updates
    and answered one with no attributes. DynamoDB applies each write to an item atomically, and
    a conditional write is checked against the latest state; the account's rate counter and the
    call ledger's claims rely on exactly that. SQS likewise failed a ReceiveMessage ("Set
    changed size during iteration") while a SendMessage changed the same queue.

    Each request runs whole holding the locks of what it touches (`lock_keys`), taken all at
    once or none (`_acquire`). One lock for everything made a queue that AWS does not have: at
    200 calls a second, an UpdateItem of the account's rate counter took about 120 ms (median),
    waiting behind other tables' writes and other services' requests, where DynamoDB answers in
    a few (a slot handed out that late is past); and a receive from the send queue waited about
    50 ms behind the sinks' queues and the topic's deliveries.

    The locks are let go only where a request waits on something outside the backend: a long
    poll waiting for messages, and an Invoke waiting for the runtime's function host (whose
    handler makes requests of its own)."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._local = threading.local()

    def _lock(self, key: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(key, threading.Lock())

    def _acquire(self, locks: list[threading.Lock]) -> None:
        # All or none: a lock found taken is waited for holding none of the others, so a
        # request needing several (a publish: five) does not keep them from everyone else while
        # it waits for the last; and no two requests can wait on each other.
        while True:
            taken: list[threading.Lock] = []
            for lock in locks:
                if not lock.acquire(blocking=False):
                    break
                taken.append(lock)
            else:
                self._local.held = locks
                return
            for lock in reversed(taken):
                lock.release()
            blocked = locks[len(taken)]
            with blocked:
                pass

    def _release(self) -> list[threading.Lock]:
        locks: list[threading.Lock] = self._local.held
        self._local.held = None
        for lock in reversed(locks):
            lock.release()
        return locks

    @contextmanager
    def holding(self, keys: Iterable[str] = (MAIN,)) -> Iterator[None]:
        """Hold these locks (taken in a fixed order, so requests never deadlock)."""
        self._acquire([self._lock(key) for key in sorted(set(keys))])
        try:
            yield
        finally:
            self._release()

    @property
    def held(self) -> bool:
        """Whether this thread holds locks."""
        return bool(getattr(self._local, "held", None))

    @contextmanager
    def released(self) -> Iterator[None]:
        """Let this thread's locks go for a wait, if it holds any."""
        if not self.held:
            yield
            return
        locks = self._release()
        try:
            yield
        finally:
            self._acquire(locks)


BACKENDS = BackendLock()


class Serialized:
    """WSGI middleware: the request's body read first, then the application run holding the
    request's locks, its response produced whole before they are let go."""

    def __init__(self, app: Callable[..., Iterable[bytes]], lock: BackendLock) -> None:
        self._app = app
        self._lock = lock

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = environ["wsgi.input"].read()
        environ["wsgi.input"] = io.BytesIO(body)
        environ["CONTENT_LENGTH"] = str(len(body))
        # The body is whole now: neither chunked (werkzeug would read none of it) nor terminated.
        environ.pop("wsgi.input_terminated", None)
        environ.pop("HTTP_TRANSFER_ENCODING", None)
        keys = set(lock_keys(environ, body))
        while True:
            with self._lock.holding(keys):
                # The keys were read from the backends before their locks were held: a queue
                # subscribed or given a dead-letter queue meanwhile needs its lock too.
                now = set(lock_keys(environ, body))
                if now <= keys:
                    result = self._app(environ, start_response)
                    try:
                        return list(result)
                    finally:
                        close = getattr(result, "close", None)
                        if close is not None:
                            close()
            keys |= now


def serialize_long_polls(lock: BackendLock) -> None:
    """A long poll waits for messages with the lock let go, so the sends it waits for can run."""
    wait_for_messages = Queue.wait_for_messages

    def wait_unlocked(self: Queue, timeout: int) -> None:
        with lock.released():
            wait_for_messages(self, timeout)

    Queue.wait_for_messages = wait_unlocked  # type: ignore[method-assign]


def serialize_in_process(lock: BackendLock) -> None:
    """In-process moto (tests' mock_aws) has the same missing locking as its server: a request
    is dispatched on the caller's thread, and the state machine's executions run on threads of
    their own. So every request dispatched there runs whole under the lock too. A request made
    while the thread holds it (a backend calling another) runs as part of the one that holds it."""
    process_request = BotocoreStubber.process_request

    def process_locked(self: BotocoreStubber, request: Any) -> Any:
        if lock.held:
            return process_request(self, request)
        with lock.holding():
            return process_request(self, request)

    BotocoreStubber.process_request = process_locked  # type: ignore[method-assign]
    serialize_long_polls(lock)


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
        # The handler makes requests of its own: the backends are free while it runs.
        with BACKENDS.released():
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


def speed_up_dispatch() -> None:
    """Work around a moto gap (harness only): its server finds each request's backend under one
    lock by listing moto's package directory and matching every service's URL patterns, so
    concurrent requests queue behind file-system calls. The answer depends on the host alone."""
    find = DomainDispatcherApplication.get_backend_for_host
    found: dict[str | None, Any] = {}

    def get_backend_for_host(self: DomainDispatcherApplication, host: str | None) -> Any:
        if host not in found:
            found[host] = find(self, host)
        return found[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def speed_up_sns() -> None:
    """Work around a moto gap (harness only): for every message it delivers to a subscription
    moto builds and signs a new X.509 certificate (milliseconds of CPU each, three
    subscriptions a response). SNS signs with one certificate; so does this, made once per key."""
    sign = CertificateBuilder.sign
    made: dict[bytes, Any] = {}

    def sign_once(builder: CertificateBuilder, key: Any, *args: Any, **kwargs: Any) -> Any:
        public = key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
        if public not in made:
            made[public] = sign(builder, key, *args, **kwargs)
        return made[public]

    CertificateBuilder.sign = sign_once  # type: ignore[method-assign,assignment]


def speed_up_responses() -> None:
    """Work around a moto gap (harness only): every request lists its handler class's methods
    with inspect.getmembers to find the action; a class's methods do not change."""
    responses: Any = moto.core.responses
    responses.method_names_from_class = functools.cache(method_names_from_class)


# Distinct (expression, names, values) parses kept; the harness uses a few dozen.
PARSED_EXPRESSIONS = 4096


def speed_up_conditions() -> None:
    """Work around a moto gap (harness only): every condition is parsed again wherever it is
    used (a transaction's item three times: validated, checked, written), and the lexer costs a
    millisecond or more a parse, most of a 100-row transaction's time. A parse depends on the
    expression and its attribute names and values alone, and its tree is only read afterwards;
    so one parse serves every request that sends the same three, and errors are not kept."""
    parse = ConditionExpressionParser.parse
    parsed: dict[str, tuple[Any, list[str], list[str]]] = {}

    def parse_once(parser: ConditionExpressionParser) -> Any:
        key = json.dumps(
            [
                parser.condition_expression,
                parser.expression_attribute_names,
                parser.expression_attribute_values,
            ],
            sort_keys=True,
            default=repr,  # binary values (bytes, sets of them) keyed by their repr
        )
        found = parsed.get(key)  # one read: another thread may clear the cache meanwhile
        if found is None:
            tree = parse(parser)
            if len(parsed) >= PARSED_EXPRESSIONS:
                parsed.clear()
            # Copies: moto adds other names (projections, keys) to the parser's lists later.
            names, values = list(parser.expr_attr_names_found), list(parser.expr_attr_values_found)
            parsed[key] = (tree, names, values)
            return tree
        tree, names, values = found
        parser.expr_attr_names_found = list(names)
        parser.expr_attr_values_found = list(values)
        return tree

    ConditionExpressionParser.parse = parse_once  # type: ignore[method-assign,assignment]


def speed_up_transactions() -> None:
    """Work around a moto gap (harness only): TransactWriteItems deep-copies every table it
    touches before writing, to roll back on failure, so each transaction costs time in
    proportion to the tables' size (the call ledger's and results' tables grow a row a call).

    The same semantics without the copy: every condition is checked first and, if any fails,
    the transaction is cancelled with a reason per item and nothing is written; otherwise the
    writes are made, and an error while making them (a malformed update) puts back the items
    already written."""

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        if len(transact_items) > 100:
            raise TooManyTransactionsException()
        seen: set[tuple[str, str]] = set()
        ops: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
        for item in transact_items:
            if len(item) > 1:
                raise TransactWriteSingleOpException
            op_type, op = next(iter(item.items()))
            if op_type not in {"ConditionCheck", "Put", "Delete", "Update"}:
                raise ValueError("Unsupported transaction operation")
            table = self.get_table(op["TableName"])
            if op_type == "Put":
                attrs = op["Item"]
                key = {table.hash_key_attr: attrs[table.hash_key_attr]}
                if table.range_key_attr is not None:
                    key[table.range_key_attr] = attrs[table.range_key_attr]
            else:
                key = op["Key"]
            unique = (str(op["TableName"]), str(dict(sorted(key.items()))))
            if unique in seen:
                raise MultipleTransactionsException()
            seen.add(unique)
            ops.append((op_type, op, key))
        errors: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
        for _, op, key in ops:
            current = self.get_item(op["TableName"], key)
            condition = op.get("ConditionExpression")
            if condition is None or get_filter_expression(
                condition, op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            ).expr(current):
                errors.append((None, None, None))
                continue
            old = None
            if op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current:
                old = current.to_json()["Attributes"]
            failed = ConditionalCheckFailed(item=old)
            errors.append(("ConditionalCheckFailed", str(failed.message), old))
        if any(code is not None for code, _, _ in errors):
            raise TransactionCanceledException(errors)
        before: list[tuple[str, dict[str, Any], Any]] = []
        try:
            for op_type, op, key in ops:
                name = op["TableName"]
                if op_type == "ConditionCheck":
                    continue
                before.append((name, key, copy.deepcopy(self.get_item(name, key))))
                if op_type == "Put":
                    self.put_item(name, op["Item"])
                elif op_type == "Delete":
                    self.delete_item(name, key)
                else:
                    self.update_item(
                        name,
                        key,
                        update_expression=op["UpdateExpression"],
                        expression_attribute_names=op.get("ExpressionAttributeNames", {}),
                        expression_attribute_values=op.get("ExpressionAttributeValues", {}),
                    )
        except Exception:
            for name, key, old in reversed(before):
                if old is None:
                    self.delete_item(name, key)
                else:
                    self.put_item(name, old.to_json()["Attributes"])
            raise

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


class _Body(io.RawIOBase):
    """A request's body, read no further than its Content-Length, so the connection can serve
    the next request once what the application left unread is drained."""

    def __init__(self, raw: Any, length: int) -> None:
        super().__init__()
        self._raw = raw
        self.left = length

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(min(len(buffer), self.left)) if self.left else b""
        buffer[: len(data)] = data
        self.left -= len(data)
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        limit = self.left if size is None or size < 0 else min(size, self.left)
        line: bytes = self._raw.readline(limit) if limit else b""
        self.left -= len(line)
        return line

    def drain(self) -> bool:
        while self.left:
            chunk = self._raw.read(min(self.left, 1 << 16))
            if not chunk:
                return False
            self.left -= len(chunk)
        return True


class KeepAliveHandler(MotoRequestHandler):
    """moto's request handler, keeping the connection open after a response, as AWS does.

    werkzeug's server answers every request with `Connection: close` (http.server would not
    know how to skip a body the application left unread), so each request would pay a new TCP
    connection and a new server thread: at hundreds of requests a second that is most of the
    cost, and every client's pool of open connections goes unused. Here a body with a
    Content-Length is read no further than its length and drained before the response; a
    chunked body still closes the connection.
    """

    _body: _Body | None = None
    # TCP_NODELAY on each connection: on one kept open, an answer's body (a small write after
    # its headers) waited for the client's delayed ACK, and every request took 48 ms (measured
    # here; 3-5 ms without).
    disable_nagle_algorithm = True

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        self._body = None
        if "wsgi.input_terminated" not in environ:  # not chunked
            length = self.headers.get("Content-Length") or "0"
            self._body = _Body(self.rfile, int(length) if length.isdigit() else 0)
            environ["wsgi.input"] = self._body
        return environ

    def run_wsgi(self) -> None:
        rfile = self.rfile
        try:
            super().run_wsgi()
        finally:
            self.rfile = rfile

    def send_header(self, keyword: str, value: str) -> None:
        closing = keyword.lower() == "connection" and value.lower() == "close"
        if closing and self._body is not None and self._body.drain():
            # werkzeug reads whatever else is on the socket after a response, which on a
            # connection kept open is the next request: it is shown an empty stream instead.
            self.rfile = io.BytesIO()
            return
        super().send_header(keyword, value)


def serve() -> BaseWSGIServer:
    """moto's application, served on loopback by threads that keep their connections open."""
    app = Serialized(DomainDispatcherApplication(create_backend_app), BACKENDS)
    return make_server("127.0.0.1", 0, app, threaded=True, request_handler=KeepAliveHandler)


def main(argv: list[str]) -> int:
    # As callqueue.local.worker_process.relax_garbage_collection (not imported: it loads boto3).
    gc.set_threshold(50_000, 50, 1_000)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    # moto enforces no IAM or resource policies; it says so about the template's queue policies.
    logging.getLogger("moto.cloudformation.parsing").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="Tried to parse AWS::SQS::QueuePolicy")
    forward_invocations(argv[1])
    speed_up_sqs()
    speed_up_sqs_receive()
    speed_up_dispatch()
    speed_up_sns()
    speed_up_responses()
    speed_up_transactions()
    speed_up_conditions()
    serialize_long_polls(BACKENDS)
    server = serve()
    port = server.server_port
    threading.Thread(target=server.serve_forever, name="aws-server", daemon=True).start()
    # moto's Step Functions interpreter calls Lambda at localhost:$MOTO_PORT.
    os.environ["MOTO_PORT"] = str(port)
    print(f"READY {port}", flush=True)
    sys.stdin.read()
    server.shutdown()
    # Request threads still in a long poll would keep the process alive for up to 20 s more.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
