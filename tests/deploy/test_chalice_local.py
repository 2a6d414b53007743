"""Plain `chalice local` in the project, without the local stack and without AWS settings, says
what it needs (503 and a message naming `callqueue up` and AWS_REGION) instead of botocore's
NoRegionError as a bare 500."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.deploy.deployment import project_copy

pytestmark = pytest.mark.e2e


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_plain_chalice_local_without_aws_settings_says_what_it_needs(tmp_path: Path) -> None:
    project = project_copy(tmp_path / "project")
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    # No region, credentials or profile from anywhere, and no instance metadata to ask.
    env |= {
        "AWS_CONFIG_FILE": str(tmp_path / "none"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none"),
        "AWS_EC2_METADATA_DISABLED": "true",
    }
    port = free_port()
    chalice = Path(sys.executable).with_name("chalice")
    process = subprocess.Popen(
        [str(chalice), "local", "--port", str(port), "--no-autoreload"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        answer = _get_when_listening(f"http://127.0.0.1:{port}/jobs", process)
    finally:
        process.terminate()
        process.wait(timeout=30)
    status, body = answer
    assert status == 503
    message = json.loads(body)["Message"]
    assert "no AWS region or credentials" in message
    assert "`callqueue up`" in message and "AWS_DEFAULT_REGION" in message


def _get_when_listening(url: str, process: subprocess.Popen[bytes]) -> tuple[int, bytes]:
    # Started is not a measured time: the loop ends when the server answers, or exits.
    for _ in range(600):
        assert process.poll() is None, "chalice local exited"
        try:
            with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())
        except urllib.error.URLError:
            time.sleep(0.1)
    raise AssertionError("chalice local did not answer")
