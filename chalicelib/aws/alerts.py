"""The alert topic (SNS): what callqueue tells the people who run it (a job paused on systemic
errors, a job stalled), a subject and a JSON message."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sns import SNSClient

# SNS refuses a subject longer than this.
MAX_SUBJECT_CHARS = 100


class Alerts:
    def __init__(self, sns: SNSClient, topic_arn: str) -> None:
        self._sns = sns
        self._topic = topic_arn

    def send(self, subject: str, message: Mapping[str, Any]) -> None:
        self._sns.publish(
            TopicArn=self._topic, Subject=subject[:MAX_SUBJECT_CHARS], Message=json.dumps(message)
        )
