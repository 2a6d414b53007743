"""Test set-up for every folder: region, fake credentials and config come before anything
imports app or boto3. The moto-backed fixtures (`stack`, `emulator`) are in tests/stack.py, loaded
by the conftest of each folder that uses in-process moto, so tests/unit loads neither."""

from __future__ import annotations

import os

os.environ.update(
    {
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SECURITY_TOKEN": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "CALLQUEUE_STAGE": "dev",
    }
)
os.environ.pop("AWS_PROFILE", None)
os.environ.pop("AWS_ENDPOINT_URL", None)
