"""The local runtime's moto server keeps DynamoDB's transaction semantics with its faster
TransactWriteItems (callqueue.local.moto_patches.dynamodb.speed_up_transactions), conditions
parsed once (speed_up_conditions) and update expressions parsed and checked once
(speed_up_updates), applies concurrent requests one at a time as AWS applies writes to an item
(callqueue.local.moto_patches.locking.BackendLock), and keeps connections open as AWS does
(callqueue.local.moto_server.KeepAliveHandler). The patches refuse another version of moto."""

from __future__ import annotations

import http.client
import io
import json
import subprocess
import sys
import threading
import time
import urllib.parse
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError
from moto import mock_aws

from callqueue.local.moto_patches import (
    PINNED_MOTO_VERSION,
    MotoVersionError,
    check_moto_version,
)
from callqueue.local.moto_patches.lock_keys import lock_keys
from callqueue.local.moto_patches.locking import BackendLock
from callqueue.local.moto_server import _Body
from chalicelib.sending.ledger import CallLedger
from tests.tables import create_ledger_table


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "callqueue.local.moto_server", "http://127.0.0.1:9"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    ready = process.stdout.readline().split()
    assert ready[:1] == ["READY"]
    yield f"http://127.0.0.1:{ready[1]}"
    assert process.stdin is not None
    process.stdin.close()
    process.wait(timeout=10)


def aws(service: str, endpoint: str, connections: int = 10) -> Any:
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id="local",
        aws_secret_access_key="local",
        config=Config(max_pool_connections=connections),
    )


@pytest.fixture(scope="module")
def dynamodb(endpoint: str) -> Any:
    client = aws("dynamodb", endpoint)
    create_ledger_table(client, "t")
    return client


def put(job: str, row: int, value: str, condition: str | None = None) -> dict[str, Any]:
    op: dict[str, Any] = {
        "TableName": "t",
        "Item": {"job_id": {"S": job}, "row": {"N": str(row)}, "v": {"S": value}},
    }
    if condition:
        op["ConditionExpression"] = condition
    return {"Put": op}


def value(dynamodb: Any, job: str, row: int) -> str | None:
    item = dynamodb.get_item(TableName="t", Key={"job_id": {"S": job}, "row": {"N": str(row)}})
    return item["Item"]["v"]["S"] if "Item" in item else None


def test_a_transaction_whose_conditions_hold_writes_every_item(dynamodb: Any) -> None:
    dynamodb.transact_write_items(
        TransactItems=[
            put("a", 1, "x", "attribute_not_exists(job_id)"),
            put("a", 2, "y"),
            {
                "Update": {
                    "TableName": "t",
                    "Key": {"job_id": {"S": "a"}, "row": {"N": "3"}},
                    "UpdateExpression": "SET v = :v",
                    "ExpressionAttributeValues": {":v": {"S": "z"}},
                }
            },
        ]
    )

    assert [value(dynamodb, "a", r) for r in (1, 2, 3)] == ["x", "y", "z"]


def test_a_failed_condition_cancels_the_whole_transaction_with_a_reason_per_item(
    dynamodb: Any,
) -> None:
    dynamodb.transact_write_items(TransactItems=[put("b", 2, "old")])

    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(
            TransactItems=[
                put("b", 1, "new", "attribute_not_exists(job_id)"),
                put("b", 2, "new", "attribute_not_exists(job_id)"),
                put("b", 3, "new"),
            ]
        )

    error = raised.value.response
    assert error["Error"]["Code"] == "TransactionCanceledException"
    assert [r["Code"] for r in error["CancellationReasons"]] == [
        "None",
        "ConditionalCheckFailed",
        "None",
    ]
    assert [value(dynamodb, "b", r) for r in (1, 2, 3)] == [None, "old", None]


def test_a_malformed_update_puts_back_what_the_transaction_wrote(dynamodb: Any) -> None:
    dynamodb.transact_write_items(TransactItems=[put("c", 2, "old")])

    with pytest.raises(ClientError):
        dynamodb.transact_write_items(
            TransactItems=[
                put("c", 1, "new"),
                put("c", 2, "new"),
                {
                    "Update": {
                        "TableName": "t",
                        "Key": {"job_id": {"S": "c"}, "row": {"N": "3"}},
                        "UpdateExpression": "SET v = :missing",
                    }
                },
            ]
        )

    assert [value(dynamodb, "c", r) for r in (1, 2, 3)] == [None, "old", None]


def test_an_item_may_be_written_once_a_transaction(dynamodb: Any) -> None:
    with pytest.raises(ClientError) as raised:
        dynamodb.transact_write_items(TransactItems=[put("d", 1, "x"), put("d", 1, "y")])

    assert raised.value.response["Error"]["Code"] == "ValidationException"
    assert value(dynamodb, "d", 1) is None


def test_a_condition_parsed_once_is_checked_with_each_requests_values_and_names(
    dynamodb: Any,
) -> None:
    dynamodb.transact_write_items(TransactItems=[put("parsed", 1, "old")])

    def newer(v: str, **names: str) -> None:
        dynamodb.put_item(
            TableName="t",
            Item={"job_id": {"S": "parsed"}, "row": {"N": "1"}, "v": {"S": v}},
            ConditionExpression="#v < :v",
            ExpressionAttributeNames={"#v": "v", **names},
            ExpressionAttributeValues={":v": {"S": v}},
        )

    newer("p")  # "old" < "p"
    dynamodb.transact_write_items(TransactItems=[put("parsed", 1, "old")])
    newer("p")  # parsed before: the names it uses are known again, and "old" < "p" still
    for v in ("p", "a"):  # checked against the item as it is now; another value is its own
        with pytest.raises(ClientError) as refused:
            newer(v)
        assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"
    newer("q")
    for _ in range(2):
        with pytest.raises(ClientError) as unused:
            newer("r", **{"#unused": "v"})
        assert unused.value.response["Error"]["Code"] == "ValidationException"
    assert value(dynamodb, "parsed", 1) == "q"


def test_a_condition_with_a_binary_value_is_parsed_and_checked(dynamodb: Any) -> None:
    def put_binary(value: bytes) -> None:
        dynamodb.put_item(
            TableName="t",
            Item={"job_id": {"S": "binary"}, "row": {"N": "1"}, "b": {"B": value}},
            ConditionExpression="attribute_not_exists(b) OR b <> :b",
            ExpressionAttributeValues={":b": {"B": value}},
        )

    put_binary(b"\x01")
    put_binary(b"\x02")
    with pytest.raises(ClientError) as refused:
        put_binary(b"\x02")  # the same again: b <> :b is false
    assert refused.value.response["Error"]["Code"] == "ConditionalCheckFailedException"


def test_an_update_parsed_once_is_applied_and_checked_with_each_requests_names(
    dynamodb: Any,
) -> None:
    """One expression text, several requests: each applied with its own values and names, and
    what its names make of it (the key, one attribute twice) refused every time, even after the
    same text passed with other names."""
    key = {"job_id": {"S": "updated"}, "row": {"N": "1"}}

    def update(a: str, b: str, *, remove: str = "#c", **values: str) -> None:
        dynamodb.update_item(
            TableName="t",
            Key=key,
            UpdateExpression=f"SET #a = :a, #b = :b REMOVE {remove}",
            ExpressionAttributeNames={"#a": a, "#b": b, "#c": "gone"},
            ExpressionAttributeValues={":a": {"S": values["x"]}, ":b": {"S": values["y"]}},
        )

    def item() -> dict[str, Any]:
        found = dynamodb.get_item(TableName="t", Key=key, ConsistentRead=True)["Item"]
        return {k: next(iter(v.values())) for k, v in found.items() if k not in key}

    dynamodb.put_item(TableName="t", Item={**key, "gone": {"S": "soon"}})
    update("v", "w", x="1", y="2")
    assert item() == {"v": "1", "w": "2"}
    update("w", "u", x="3", y="4")  # the same text, other names and values
    assert item() == {"v": "1", "w": "3", "u": "4"}
    for _ in range(2):
        for names, code in (
            (("row", "v"), "ValidationException"),
            (("v", "v"), "ValidationException"),
        ):
            with pytest.raises(ClientError) as refused:
                update(*names, x="5", y="6")
            assert refused.value.response["Error"]["Code"] == code
        with pytest.raises(ClientError) as malformed:
            update("v", "w", remove="#c,", x="5", y="6")
        assert malformed.value.response["Error"]["Code"] == "ValidationException"
    update("v", "w", x="7", y="8")
    assert item() == {"v": "7", "w": "8", "u": "4"}


def test_a_received_message_comes_back_as_sent_with_its_attributes(endpoint: str) -> None:
    # The server writes ReceiveMessage's answer itself (speed_up_sqs_receive); boto3 checks the
    # body's and the attributes' MD5s against it.
    sqs = aws("sqs", endpoint)
    url = sqs.create_queue(QueueName="received-whole")["QueueUrl"]
    attributes = {
        "text": {"DataType": "String", "StringValue": "déjà vu"},
        "count": {"DataType": "Number", "StringValue": "5"},
        "raw": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
    }
    body = json.dumps({"row": 1, "Body": 'naïve \u2603 "quoted"'})
    sent = sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)

    [message] = sqs.receive_message(
        QueueUrl=url, AttributeNames=["All"], MessageAttributeNames=["All"]
    )["Messages"]

    assert message["MessageId"] == sent["MessageId"]
    assert message["Body"] == body
    assert message["MessageAttributes"] == attributes
    assert message["Attributes"]["ApproximateReceiveCount"] == "1"
    assert {"SentTimestamp", "ApproximateFirstReceiveTimestamp"} <= set(message["Attributes"])
    assert sqs.receive_message(QueueUrl=url).get("Messages", []) == []  # in flight now
    sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_a_delete_by_an_earlier_receipt_handle_removes_a_message_another_reader_holds(
    endpoint: str,
) -> None:
    """One of the outcomes SQS's DeleteMessage allows ("might not be deleted"), and the one
    this moto always takes: a batch that ran past its visibility timeout deletes the message
    its redelivery is working on (docs/emulator-fidelity.md). Locally a sender batch can
    outlive its claims, so a row taken over from it may be left with its taker's message
    gone (docs/benchmarks.md, the 400-CPS runs)."""
    sqs = aws("sqs", endpoint)
    url = sqs.create_queue(QueueName="deleted-by-an-earlier-handle")["QueueUrl"]
    sqs.send_message(QueueUrl=url, MessageBody="row")
    [first] = sqs.receive_message(QueueUrl=url, VisibilityTimeout=1, WaitTimeSeconds=1)["Messages"]
    deadline = time.monotonic() + 10
    again: list[dict[str, Any]] = []
    while not again and time.monotonic() < deadline:  # visible again after its timeout
        again = sqs.receive_message(QueueUrl=url, VisibilityTimeout=60, WaitTimeSeconds=1).get(
            "Messages", []
        )
    [second] = again
    assert second["ReceiptHandle"] != first["ReceiptHandle"]

    sqs.delete_message(QueueUrl=url, ReceiptHandle=first["ReceiptHandle"])

    attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
    assert attributes["ApproximateNumberOfMessages"] == "0"
    assert attributes["ApproximateNumberOfMessagesNotVisible"] == "0"  # gone from its reader


def test_the_call_ledger_claims_a_batch_on_the_local_server(dynamodb: Any) -> None:
    ledger = CallLedger(dynamodb, "t", in_doubt_after=30.0)
    ledger.claim("e", 2, 1)

    claims = ledger.claim_all([("e", r, 1) for r in (1, 2, 3)])

    assert [c.verdict for c in claims] == ["call", "wait", "call"]


def request(
    connection: http.client.HTTPConnection, body: str, target: str
) -> http.client.HTTPResponse:
    connection.request(
        "POST",
        "/",
        body=body,
        headers={
            "Content-Type": "application/x-amz-json-1.0",
            "X-Amz-Target": f"DynamoDB_20120810.{target}",
            "Authorization": "AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/dynamodb/"
            "aws4_request, SignedHeaders=host, Signature=0",
        },
    )
    return connection.getresponse()


def test_the_server_keeps_a_connection_open_for_the_next_request(dynamodb: Any) -> None:
    url = dynamodb.meta.endpoint_url
    connection = http.client.HTTPConnection(url.split("//")[1], timeout=10)
    try:
        first = request(connection, '{"TableName": "t"}', "DescribeTable")
        assert first.status == 200
        assert first.getheader("Connection") is None
        assert b'"TableName": "t"' in first.read().replace(b'":"', b'": "')
        opened = connection.sock
        assert opened is not None
        # A larger body, then a request that fails: each is read from its own first line.
        second = request(connection, '{"Limit": 5, "Padding": "' + "x" * 5000 + '"}', "ListTables")
        assert second.status == 200
        second.read()
        third = request(connection, '{"TableName": "missing"}', "DescribeTable")
        assert third.status == 400
        assert b"ResourceNotFoundException" in third.read()
        assert connection.sock is opened  # the same connection all along
    finally:
        connection.close()


def test_the_servers_kept_open_connections_answer_without_nagles_delay() -> None:
    # On a connection kept open, an answer's body (a second small write after its headers)
    # waited for the client's delayed ACK: every request to moto took 48 ms (measured here),
    # 3-5 ms without. The sender's invocations are served on connections kept open too.
    from callqueue.local.moto_server import KeepAliveHandler
    from callqueue.local.worker_process import serve

    assert KeepAliveHandler.disable_nagle_algorithm
    server = serve({}, dict)
    try:
        assert server.RequestHandlerClass.disable_nagle_algorithm
    finally:
        server.server_close()


def test_a_body_is_read_no_further_than_its_length_and_the_rest_drained() -> None:
    # The bytes after a request's body are the next request on a connection kept open: what
    # the application left unread is drained, and nothing past the body is ever read.
    raw = io.BytesIO(b"0123456789POST /next")
    body = _Body(raw, 10)
    assert body.read(4) == b"0123"
    assert body.readline() == b"456789"
    assert body.read() == b""
    assert raw.read() == b"POST /next"
    unread = io.BytesIO(b"0123456789POST /next")
    assert _Body(unread, 10).drain()
    assert unread.read() == b"POST /next"
    assert not _Body(io.BytesIO(b"short"), 10).drain()  # the client went away mid-body


def count_concurrently(client: Any, threads: int) -> list[int]:
    """800 increments of one DynamoDB counter from `threads` threads: the values they got."""
    client.create_table(
        TableName="counter",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )

    def add(_: int) -> int:
        response = client.update_item(
            TableName="counter",
            Key={"pk": {"S": "account#1"}},
            UpdateExpression="SET n = if_not_exists(n, :zero) + :one",
            ExpressionAttributeValues={":zero": {"N": "0"}, ":one": {"N": "1"}},
            ReturnValues="UPDATED_NEW",
        )
        return int(response["Attributes"]["n"]["N"])

    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(add, range(800)))


def test_concurrent_updates_of_one_item_are_applied_one_at_a_time(endpoint: str) -> None:
    # The account's rate counter: every taker must get counters no other taker got. moto alone
    # lost about 2% of such updates to races between its request threads.
    counters = count_concurrently(aws("dynamodb", endpoint, connections=16), 16)
    assert sorted(counters) == list(range(1, 801))


def test_a_long_poll_lets_other_requests_through_while_it_waits(endpoint: str) -> None:
    sqs = aws("sqs", endpoint)
    url = sqs.create_queue(QueueName="long-poll")["QueueUrl"]
    received: list[str] = []

    def poll() -> None:
        response = sqs.receive_message(QueueUrl=url, WaitTimeSeconds=5)
        received.extend(m["Body"] for m in response.get("Messages", []))

    poller = threading.Thread(target=poll)
    poller.start()
    time.sleep(0.3)  # the poll is waiting (were it not yet, the message would still be found)
    sqs.send_message(QueueUrl=url, MessageBody="hello")
    poller.join(timeout=10)
    # Had the poll kept the server to itself, the send would have waited for it to end empty.
    assert received == ["hello"]


CREDENTIAL = "local/20260101/us-east-1/sqs/aws4_request"


def test_a_chunked_body_reaches_moto_whole(endpoint: str) -> None:
    # Read whole before the lock is taken: werkzeug must not take it for a chunked stream.
    host, port = endpoint.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    body = [b'{"QueueName": ', b'"chunked-body"}']
    connection.request(
        "POST",
        "/",
        body=iter(body),
        headers={
            "X-Amz-Target": "AmazonSQS.CreateQueue",
            "Content-Type": "application/x-amz-json-1.0",
            "Authorization": f"AWS4-HMAC-SHA256 Credential={CREDENTIAL}",
        },
        encode_chunked=True,
    )
    response = connection.getresponse()
    assert response.status == 200, response.read()
    response.read()
    connection.close()
    assert aws("sqs", endpoint).get_queue_url(QueueName="chunked-body")["QueueUrl"]


def test_in_process_moto_applies_concurrent_updates_one_at_a_time() -> None:
    # The tests' mock_aws dispatches on the callers' threads (and the state machine's executions
    # run on threads of their own): tests/stack.py serializes it as the server is.
    with mock_aws():
        counters = count_concurrently(boto3.client("dynamodb", region_name="us-east-1"), 8)
    assert sorted(counters) == list(range(1, 801))


def test_requests_lock_only_what_they_touch() -> None:
    # moto's backends are locked per DynamoDB table, per SQS queue (with its dead-letter queue)
    # and for S3 (with the queues a bucket notifies), so the rate counter's writes and the send
    # queue's receives do not wait behind the sinks' queues or the archive's writes; anything
    # else, which may reach into several services, locks them all.
    with mock_aws():
        sqs = boto3.client("sqs", region_name="us-east-1")
        dlq = sqs.create_queue(QueueName="dlq")["QueueUrl"]
        dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])
        send = sqs.create_queue(
            QueueName="send",
            Attributes={
                "RedrivePolicy": json.dumps(
                    {"deadLetterTargetArn": dlq_arn["Attributes"]["QueueArn"], "maxReceiveCount": 3}
                )
            },
        )["QueueUrl"]
        sink = sqs.create_queue(QueueName="sink")["QueueUrl"]
        sink_arn = sqs.get_queue_attributes(QueueUrl=sink, AttributeNames=["QueueArn"])
        sns = boto3.client("sns", region_name="us-east-1")
        topic = sns.create_topic(Name="responses")["TopicArn"]
        sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=sink_arn["Attributes"]["QueueArn"])
        create_ledger_table(boto3.client("dynamodb", region_name="us-east-1"), "ledger")
        signed = {"HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential=testing/{CREDENTIAL}"}

        def keys(target: str, request: dict[str, Any]) -> tuple[str, ...]:
            environ = {**signed, "HTTP_X_AMZ_TARGET": target}
            return lock_keys(environ, json.dumps(request).encode())

        update = {"TableName": "rate", "Key": {"pk": {"S": "account#next"}}}
        assert keys("DynamoDB_20120810.UpdateItem", update) == ("dynamodb:rate",)
        by_arn = {"TableName": "arn:aws:dynamodb:us-east-1:123456789012:table/rate"}
        assert keys("DynamoDB_20120810.GetItem", by_arn) == ("dynamodb:rate",)
        both = {"TransactItems": [{"Put": {"TableName": "b"}}, {"Update": {"TableName": "a"}}]}
        assert keys("DynamoDB_20120810.TransactWriteItems", both) == ("dynamodb:a", "dynamodb:b")
        receive = {"QueueUrl": send, "MaxNumberOfMessages": 10}
        assert keys("AmazonSQS.ReceiveMessage", receive) == ("sqs:dlq", "sqs:send")
        assert keys("AmazonSQS.DeleteMessageBatch", {"QueueUrl": sink}) == ("sqs:sink",)
        publish = urllib.parse.urlencode({"Action": "PublishBatch", "TopicArn": topic})
        form = {**signed, "CONTENT_TYPE": "application/x-www-form-urlencoded; charset=utf-8"}
        assert lock_keys(form, publish.encode()) == ("main", "sqs:sink")
        everything = ("dynamodb:ledger", "main", "s3", "sqs:dlq", "sqs:send", "sqs:sink")
        assert keys("DynamoDB_20120810.CreateTable", {"TableName": "x"}) == everything
        assert keys("AmazonSQS.CreateQueue", {"QueueName": "y"}) == everything
        assert lock_keys({**signed}, b"<CreateBucketConfiguration/>") == everything

        # S3: its own lock, and the queues a bucket notifies of new objects.
        s3 = boto3.client("s3", region_name="us-east-1")
        for bucket in ("plain", "notifying", "to-topic"):
            s3.create_bucket(Bucket=bucket)
        s3.put_bucket_notification_configuration(
            Bucket="notifying",
            NotificationConfiguration={
                "QueueConfigurations": [
                    {
                        "QueueArn": sink_arn["Attributes"]["QueueArn"],
                        "Events": ["s3:ObjectCreated:*"],
                    }
                ]
            },
        )
        s3.put_bucket_notification_configuration(
            Bucket="to-topic",
            NotificationConfiguration={
                "TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]
            },
        )
        s3_credential = "testing/20260101/us-east-1/s3/aws4_request"
        path_style = {
            "HTTP_AUTHORIZATION": f"AWS4-HMAC-SHA256 Credential={s3_credential}",
            "HTTP_HOST": "127.0.0.1:5000",
        }

        def s3_keys(path: str, **environ: str) -> tuple[str, ...]:
            return lock_keys({**path_style, "PATH_INFO": path, **environ}, b"")

        assert s3_keys("/plain/a/key.json") == ("s3",)
        assert s3_keys("/not-yet") == ("s3",)
        assert s3_keys("/notifying/new.csv") == ("s3", "sqs:sink")
        assert s3_keys("/to-topic/new.csv") == everything  # the topic's subscribers, too
        assert s3_keys("/plain", QUERY_STRING="notification=") == everything
        assert s3_keys("/key.json", HTTP_HOST="plain.s3.amazonaws.com") == everything
        presigned = urllib.parse.urlencode({"X-Amz-Credential": s3_credential})
        assert lock_keys(
            {"HTTP_HOST": "localhost:5000", "PATH_INFO": "/plain/k", "QUERY_STRING": presigned},
            b"",
        ) == ("s3",)


def test_backend_locks_let_requests_on_different_things_run_side_by_side() -> None:
    locks = BackendLock()
    first_in = threading.Event()
    let_first_go = threading.Event()

    def first() -> None:
        with locks.holding(["sqs:send"]):
            first_in.set()
            let_first_go.wait(5)

    thread = threading.Thread(target=first)
    thread.start()
    assert first_in.wait(5)
    done: list[str] = []

    def other(keys: list[str]) -> None:
        with locks.holding(keys):
            done.append(",".join(keys))

    # Another queue's request is not held up; one that needs the same queue waits.
    side = threading.Thread(target=other, args=(["dynamodb:rate", "sqs:sink"],))
    same = threading.Thread(target=other, args=(["main", "sqs:send"],))
    side.start()
    same.start()
    side.join(5)
    assert done == ["dynamodb:rate,sqs:sink"]
    let_first_go.set()
    same.join(5)
    thread.join(5)
    assert done == ["dynamodb:rate,sqs:sink", "main,sqs:send"]


def test_a_request_waiting_for_one_lock_holds_none_of_the_others() -> None:
    # A publish needs the main lock and its queues'; while one queue is busy, the main lock
    # stays free for others (held while waiting, every publish queued behind the slowest queue).
    locks = BackendLock()
    receiving = threading.Event()
    let_receive_end = threading.Event()

    def receive() -> None:
        with locks.holding(["sqs:archive"]):
            receiving.set()
            let_receive_end.wait(5)

    done: list[str] = []

    def other(keys: list[str]) -> None:
        with locks.holding(keys):
            done.append(",".join(keys))

    receiver = threading.Thread(target=receive)
    receiver.start()
    assert receiving.wait(5)
    publish = threading.Thread(target=other, args=(["main", "sqs:archive", "sqs:results"],))
    publish.start()
    time.sleep(0.2)  # the publish is waiting for the archive queue
    main_only = threading.Thread(target=other, args=(["main", "sqs:results"],))
    main_only.start()
    main_only.join(5)
    assert done == ["main,sqs:results"]
    let_receive_end.set()
    publish.join(5)
    receiver.join(5)
    assert done == ["main,sqs:results", "main,sqs:archive,sqs:results"]


def test_backend_locks_are_let_go_for_a_wait_and_taken_back_after() -> None:
    locks = BackendLock()
    waiting, other_done = threading.Event(), threading.Event()
    seen: list[bool] = []

    def long_poll() -> None:
        with locks.holding(["main", "sqs:send"]):
            with locks.released():
                seen.append(locks.held)
                waiting.set()
                # Had the locks been kept, the other request could not finish meanwhile.
                seen.append(other_done.wait(5))
            seen.append(locks.held)

    poller = threading.Thread(target=long_poll)
    poller.start()
    assert waiting.wait(5)
    with locks.holding(["sqs:send"]):
        other_done.set()
    poller.join(10)
    assert seen == [False, True, True]


def test_the_moto_patches_refuse_another_version_of_moto() -> None:
    check_moto_version(PINNED_MOTO_VERSION)
    with pytest.raises(MotoVersionError, match=r"moto 5\.3\.0 is installed"):
        check_moto_version("5.3.0")
