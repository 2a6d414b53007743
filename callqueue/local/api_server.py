"""The REST API served locally by a real `chalice local` process on loopback.

`chalice local` imports app.py in a process of its own and serves its routes the way API Gateway
would (without checking API keys or IAM credentials, which only API Gateway does); the process
gets the local runtime's environment, so the routes reach the same moto stack and the same
Twilio secret, and Twilio's status callbacks from the emulator arrive here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

STARTUP_SECONDS = 60.0


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the OS's choice for an ephemeral bind)."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


class ApiServer:
    def __init__(
        self,
        project_dir: Path,
        env: Mapping[str, str],
        *,
        port: int,
        stage: str,
        host: str = "127.0.0.1",
        log: Path | None = None,
    ) -> None:
        self._project_dir = project_dir
        self._env = dict(env)
        self._host = host
        self._port = port
        self._stage = stage
        self._log = log
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self._host}:{self._port}"

    def start(self) -> None:
        chalice = Path(sys.executable).with_name("chalice")
        output = self._log.open("ab") if self._log is not None else subprocess.DEVNULL
        self._process = subprocess.Popen(  # noqa: S603 - chalice from this environment, no shell
            [
                str(chalice),
                "local",
                "--host",
                self._host,
                "--port",
                str(self._port),
                "--stage",
                self._stage,
                "--no-autoreload",
            ],
            cwd=self._project_dir,
            env={**os.environ, **self._env},
            stdout=output,
            stderr=subprocess.STDOUT,
            # Out of the terminal's process group (see callqueue.local.child_process): stopped
            # by stop(), never by a Ctrl-C meant for the runtime.
            start_new_session=True,
        )
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            if self._process.poll() is not None:
                raise RuntimeError(f"chalice local exited with {self._process.returncode}")
            try:
                with socket.create_connection((self._host, self._port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("chalice local did not start listening") from None
                time.sleep(0.2)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        # Its whole process group (its session's, by start()): anything it started goes too.
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait()


def _signal_group(process: subprocess.Popen[bytes], signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, signum)
