"""Lambda adapter: a split's continuation, the splitter's function invoked again, asynchronously,
with the S3 event of the same upload (chalicelib.intake.checkpoint says where it goes on from).

An invocation of itself needs one permission on one resource (lambda:InvokeFunction on its own
function), where a checkpoint object re-triggering the splitter would need a write to the users'
source bucket and a second event filter, and a state machine a new resource
(docs/decisions/split-checkpoints.md). An asynchronous invocation is retried by Lambda, so the
continuation may arrive twice: the job's `split_part` keeps the second from going on.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING
from urllib.parse import quote_plus

from botocore.exceptions import ClientError

from chalicelib.errors import CallqueueError

if TYPE_CHECKING:
    from mypy_boto3_lambda import LambdaClient


class ContinuationFailed(CallqueueError):
    """Lambda refused to start the continuation: the split's event is retried, and its retry
    goes on from the stored checkpoint."""


def upload_event(bucket: str, key: str) -> dict[str, object]:
    """The S3 notification of an upload, as the splitter's handler reads it (key URL-encoded)."""
    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}},
    }
    return {"Records": [record]}


class SplitContinuation:
    def __init__(self, lambda_client: LambdaClient, function_name: str) -> None:
        self._lambda = lambda_client
        self._function = function_name

    def start(self, bucket: str, key: str) -> None:
        try:
            self._lambda.invoke(
                FunctionName=self._function,
                InvocationType="Event",
                Payload=json.dumps(upload_event(bucket, key)).encode(),
            )
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "?")
            raise ContinuationFailed(f"could not start the split's continuation: {code}") from error
