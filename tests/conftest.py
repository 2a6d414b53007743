"""Test set-up for every folder: region, fake credentials and config come before anything
imports app or boto3. The moto-backed fixtures (`stack`, `emulator`) are in tests/stack.py, loaded
by the conftest of each folder that uses in-process moto, so tests/unit loads neither."""

from __future__ import annotations

import os

from hypothesis import settings

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

# Property tests are deterministic: the same examples on every run and machine, so a failure
# in CI is reproducible and a pass is not luck. HYPOTHESIS_PROFILE=explore searches afresh.
settings.register_profile("deterministic", derandomize=True, database=None)
settings.register_profile("explore", derandomize=False)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))
