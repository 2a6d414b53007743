"""Which of moto's state a request to its server reads or changes, as the names of the locks it
must hold (`locking.Serialized`): read from the request and from moto's backends."""

from __future__ import annotations

import json
import re
import urllib.parse
from typing import Any

from moto.dynamodb.models import dynamodb_backends
from moto.s3.models import s3_backends
from moto.sns.models import sns_backends
from moto.sqs.models import sqs_backends

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
        keys = _dynamodb_keys(target[len(_DYNAMODB_TARGET) :], body)
    elif target.startswith(_SQS_TARGET):
        keys = _sqs_keys(target[len(_SQS_TARGET) :], body, region)
    elif environ.get("CONTENT_TYPE", "").startswith("application/x-www-form-urlencoded"):
        form = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        if form.get("Action", [""])[0] in ("Publish", "PublishBatch") and form.get("TopicArn"):
            keys = _published_to(form["TopicArn"][0])
    elif service == "s3":
        keys = _s3_keys(environ)
    return tuple(sorted(keys if keys is not None else _everything(region)))


def _dynamodb_keys(action: str, body: bytes) -> set[str] | None:
    """The locks of the tables a DynamoDB data-plane request names; None (every lock) for any
    other request, or one that names none."""
    if action not in _DYNAMODB_ITEM_ACTIONS:
        return None
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
    return {f"dynamodb:{name.rsplit('table/', 1)[-1]}" for name in tables} or None


def _sqs_keys(action: str, body: bytes, region: str) -> set[str] | None:
    """The locks of the one queue an SQS request names; None (every lock) for any other."""
    url = _json(body).get("QueueUrl") if action in _SQS_QUEUE_ACTIONS else None
    if isinstance(url, str) and url.count("/") >= 4:
        account, name = url.rstrip("/").split("/")[-2:]
        return _queue_keys(account, region, name)
    return None
